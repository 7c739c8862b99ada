package verify

import (
	"fmt"
	"io"
	"slices"

	"github.com/sluice-dev/sluice/dump"
)

// TableResult is the outcome for one table.
type TableResult struct {
	Name     string `json:"name"`
	Rows     int64  `json:"rows"`     // rows found in the dump
	WantRows int64  `json:"wantRows"` // rows expected
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

// Mismatch names the first difference found.
type Mismatch struct {
	Table  string `json:"table"`
	Key    string `json:"key,omitempty"` // key of the first differing row, where it could be found
	Reason string `json:"reason"`
}

// Report is the outcome of comparing a dump's digests with the expected
// ones.
type Report struct {
	Tables        []TableResult `json:"tables"`
	Rows          int64         `json:"rows"`
	SchemaChecked bool          `json:"schemaChecked"`
	Mismatch      *Mismatch     `json:"mismatch,omitempty"`
}

// OK reports whether everything matched.
func (r *Report) OK() bool { return r.Mismatch == nil }

// Compare compares got (from the dump) with want (the manifest or the
// live database), table by table in want's order. A schema digest is
// compared only when got has one (the SQL format). A table of want that
// got lacks counts as empty with want's columns when emptyMissing is set
// (ndjson writes no line for an empty table).
func Compare(want, got dump.Digests, emptyMissing bool) *Report {
	r := &Report{}
	fail := func(table, reason string) {
		if r.Mismatch == nil {
			r.Mismatch = &Mismatch{Table: table, Reason: reason}
		}
	}
	byName := map[string]dump.TableDigest{}
	for _, t := range got.Tables {
		byName[t.Name] = t
	}
	h := dump.NewTableHasher()
	for _, w := range want.Tables {
		g, ok := byName[w.Name]
		if !ok && emptyMissing {
			h.Begin(w.Name, w.Columns)
			g, ok = h.End(), true
		}
		tr := TableResult{Name: w.Name, WantRows: w.Rows}
		switch {
		case !ok:
			tr.Problem = "missing from the dump"
		case !slices.Equal(g.Columns, w.Columns):
			tr.Rows = g.Rows
			tr.Problem = fmt.Sprintf("columns differ: %q, want %q", g.Columns, w.Columns)
		case g.Rows != w.Rows:
			tr.Rows = g.Rows
			tr.Problem = fmt.Sprintf("%d rows, want %d", g.Rows, w.Rows)
		case g.Digest != w.Digest:
			tr.Rows = g.Rows
			tr.Problem = "digest differs: a value, its storage class or the row order changed"
		default:
			tr.Rows, tr.OK = g.Rows, true
		}
		if !tr.OK {
			fail(w.Name, tr.Problem)
		}
		delete(byName, w.Name)
		r.Rows += tr.Rows
		r.Tables = append(r.Tables, tr)
	}
	for _, g := range got.Tables {
		if _, extra := byName[g.Name]; extra {
			tr := TableResult{Name: g.Name, Rows: g.Rows, Problem: "not expected (absent from the source)"}
			fail(g.Name, tr.Problem)
			r.Rows += g.Rows
			r.Tables = append(r.Tables, tr)
		}
	}
	if got.Schema != "" && want.Schema != "" {
		r.SchemaChecked = true
		if got.Schema != want.Schema && r.Mismatch == nil {
			r.Mismatch = &Mismatch{Table: "(schema)", Reason: "schema digest differs: a CREATE statement changed"}
		}
	}
	return r
}

// Print writes one line per table, then the verdict.
func (r *Report) Print(w io.Writer, format string) {
	for _, t := range r.Tables {
		status := "ok"
		if !t.OK {
			status = "MISMATCH"
		}
		line := fmt.Sprintf("%-8s %-30q rows=%d", status, t.Name, t.Rows)
		if t.Problem != "" {
			line += "  " + t.Problem
		}
		fmt.Fprintln(w, line)
	}
	switch {
	case r.SchemaChecked && (r.Mismatch == nil || r.Mismatch.Table != "(schema)"):
		fmt.Fprintln(w, "ok       schema")
	case r.SchemaChecked:
		fmt.Fprintln(w, "MISMATCH schema  "+r.Mismatch.Reason)
	default:
		fmt.Fprintf(w, "-        schema   not checked: the %s format carries no schema\n", format)
	}
	if r.Mismatch == nil {
		fmt.Fprintf(w, "verified: %d tables, %d rows match\n", len(r.Tables), r.Rows)
		return
	}
	msg := fmt.Sprintf("FAILED: first difference in table %q", r.Mismatch.Table)
	if r.Mismatch.Key != "" {
		msg += fmt.Sprintf(" at key %s", r.Mismatch.Key)
	}
	fmt.Fprintf(w, "%s: %s\n", msg, r.Mismatch.Reason)
}
