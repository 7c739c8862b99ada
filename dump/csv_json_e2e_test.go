package dump

// End-to-end tests of the csv, json and ndjson formats through Open/Dump on
// the chinook corpus database.

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"

	"github.com/sluice-dev/sluice"
)

func corpusCopy(t *testing.T, name string) string {
	t.Helper()
	return testsupport.CorpusCopy(t, name, t.TempDir())
}

// sourceTable is a table of the source database read directly, as the
// expected content of a dump.
type sourceTable struct {
	name    string
	sql     string
	columns []string
	rows    [][]Value
}

func readSourceTables(t *testing.T, path string) []sourceTable {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	var tabs []sourceTable
	stmt, _, err := conn.PrepareTransient("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	for {
		ok, err := stmt.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		tabs = append(tabs, sourceTable{name: stmt.ColumnText(0), sql: stmt.ColumnText(1)})
	}
	stmt.Finalize()
	for i := range tabs {
		st, _, err := conn.PrepareTransient("SELECT * FROM " + sqlName(tabs[i].name) + " LIMIT 0")
		if err != nil {
			t.Fatal(err)
		}
		for c := range st.ColumnCount() {
			tabs[i].columns = append(tabs[i].columns, st.ColumnName(c))
		}
		st.Finalize()
	}
	conn.Close()
	for i := range tabs {
		tabs[i].rows = readTypedRows(t, path, "SELECT * FROM "+sqlName(tabs[i].name)+" ORDER BY rowid")
	}
	return tabs
}

func TestChinookCSV(t *testing.T) {
	path := corpusCopy(t, "chinook.sqlite")
	want := readSourceTables(t, path)
	out := dumpAll(t, path, Options{Format: sluice.FormatCSV})
	files := openZip(t, out)
	if len(files) != len(want) {
		t.Fatalf("%d entries, want %d tables", len(files), len(want))
	}
	for i, f := range files {
		tab := want[i]
		if f.Comment != tab.name || f.Name != escapeEntryName(tab.name)+".csv" {
			t.Errorf("entry %d: %q (comment %q), want table %q", i, f.Name, f.Comment, tab.name)
		}
		data := readZipEntry(t, f)
		recs, err := parseCSVStrict(data)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		var header []string
		for _, h := range recs[0] {
			header = append(header, h.s)
		}
		if strings.Join(header, ",") != strings.Join(tab.columns, ",") {
			t.Errorf("%s: header %q, want %q", f.Name, header, tab.columns)
		}
		var rows [][]Value
		for _, rec := range recs[1:] {
			var row []Value
			for _, fld := range rec {
				v, err := csvValue(fld)
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				row = append(row, v)
			}
			rows = append(rows, row)
		}
		compareTypedRows(t, f.Name, rows, tab.rows)
		checkEncodingCSV(t, f.Name, data, fixtureTable{meta: tableMeta{Name: tab.name, Columns: tab.columns}, rows: tab.rows})
	}

	dir := t.TempDir()
	zipPath := filepath.Join(dir, "chinook.zip")
	if err := os.WriteFile(zipPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(requireTool(t, "unzip"), "-t", zipPath).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}

	// Reload every table with sqlite3 .import into its original CREATE
	// TABLE; NULL comes back as '' (.import does not see quoting), every
	// other value as itself.
	dbPath := filepath.Join(dir, "reload.db")
	args := []string{"-bail", dbPath}
	for i, f := range files {
		csvPath := filepath.Join(dir, f.Name)
		if err := os.WriteFile(csvPath, readZipEntry(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, want[i].sql, ".import --csv --skip 1 '"+csvPath+"' "+sqlName(want[i].name))
	}
	if out, err := exec.Command(requireTool(t, "sqlite3"), args...).CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("sqlite3 .import: %v\n%s", err, out)
	}
	for _, tab := range want {
		expect := make([][]Value, len(tab.rows))
		for i, r := range tab.rows {
			expect[i] = make([]Value, len(r))
			for j, v := range r {
				if v.Type == TypeNull {
					v = tvText("")
				}
				expect[i][j] = v
			}
		}
		compareTypedRows(t, "reloaded "+tab.name, readTypedRows(t, dbPath, "SELECT * FROM "+sqlName(tab.name)+" ORDER BY rowid"), expect)
	}
}

func TestChinookJSON(t *testing.T) {
	path := corpusCopy(t, "chinook.sqlite")
	want := readSourceTables(t, path)
	jq := requireTool(t, "jq")
	for _, ndjson := range []bool{false, true} {
		format := sluice.FormatJSONTyped
		if ndjson {
			format = sluice.FormatNDJSON
		}
		t.Run(string(format), func(t *testing.T) {
			out := dumpAll(t, path, Options{Format: format})
			args := []string{"-c", "[.tables[] | [.name, (.rows | length)]]"}
			if ndjson {
				args = []string{"-R", "-c", "fromjson | .table"}
			}
			cmd := exec.Command(jq, args...)
			cmd.Stdin = bytes.NewReader(out)
			if _, err := cmd.Output(); err != nil {
				t.Fatalf("jq: %v", err)
			}

			got := map[string][][]Value{}
			if ndjson {
				for n, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
					var rec struct {
						Table string          `json:"table"`
						Row   json.RawMessage `json:"row"`
					}
					if err := json.Unmarshal(line, &rec); err != nil {
						t.Fatalf("line %d: %v", n+1, err)
					}
					cols := columnsOf(want, rec.Table)
					if cols == nil {
						t.Fatalf("line %d: unknown table %q", n+1, rec.Table)
					}
					row, err := jsonRow(rec.Row, cols)
					if err != nil {
						t.Fatalf("line %d: %v", n+1, err)
					}
					got[rec.Table] = append(got[rec.Table], row)
				}
			} else {
				var doc jsonDoc
				if err := json.Unmarshal(out, &doc); err != nil {
					t.Fatal(err)
				}
				if len(doc.Tables) != len(want) {
					t.Fatalf("%d tables, want %d", len(doc.Tables), len(want))
				}
				for i, tab := range doc.Tables {
					if tab.Name != want[i].name || strings.Join(tab.Columns, ",") != strings.Join(want[i].columns, ",") {
						t.Errorf("table %d: %q %q, want %q %q", i, tab.Name, tab.Columns, want[i].name, want[i].columns)
					}
					for _, raw := range tab.Rows {
						row, err := jsonRow(raw, want[i].columns)
						if err != nil {
							t.Fatalf("table %s: %v", tab.Name, err)
						}
						got[tab.Name] = append(got[tab.Name], row)
					}
				}
			}
			for _, tab := range want {
				compareTypedRows(t, tab.name, got[tab.name], tab.rows)
			}
		})
	}
}

func columnsOf(tabs []sourceTable, name string) []string {
	for _, t := range tabs {
		if t.name == name {
			return t.columns
		}
	}
	return nil
}

// TestChinookResume stops a csv, json and ndjson dump at chosen
// checkpoints (see below), persists the cursor as JSON, resumes it from a new Source and
// checks that the two parts make the uninterrupted output. Stopping at
// every boundary is tested on the formatters directly
// (TestFormatterResumeEveryBoundary); a whole dump per stop is too slow
// under -race to repeat at every checkpoint here.
func TestChinookResume(t *testing.T) {
	path := corpusCopy(t, "chinook.sqlite")
	ctx := context.Background()
	for _, format := range []sluice.Format{sluice.FormatCSV, sluice.FormatJSON, sluice.FormatJSONTyped, sluice.FormatNDJSON} {
		t.Run(string(format), func(t *testing.T) {
			opts := Options{Format: format, ChunkSize: 1000}

			// Record the checkpoints of an uninterrupted run and pick the
			// stops: the first inside a table and the first between two
			// tables; for csv also the first, the last inside a table and
			// the last.
			src, err := Open(ctx, path, opts, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			var seen []Cursor
			var whole bytes.Buffer
			if _, err := src.Dump(ctx, &whole, Cursor{}, func(b *Boundary) error { seen = append(seen, b.Progress()); return nil }); err != nil {
				t.Fatal(err)
			}
			src.Close()
			full := whole.Bytes()
			stops := map[int]bool{}
			firstMid, firstBetween, lastMid := 0, 0, 0
			for i, c := range seen {
				switch {
				case c.After != nil:
					if firstMid == 0 {
						firstMid = i + 1
					}
					lastMid = i + 1
				case c.TablesDone > 0 && firstBetween == 0:
					firstBetween = i + 1
				}
			}
			if firstMid == 0 || firstBetween == 0 {
				t.Fatalf("no checkpoint inside a table (%d) or between tables (%d) among %d", firstMid, firstBetween, len(seen))
			}
			stops[firstMid], stops[firstBetween] = true, true
			if format == sluice.FormatCSV { // the format with the most state
				stops[1], stops[lastMid], stops[len(seen)] = true, true, true
			}
			for stopAt := range len(seen) + 1 {
				if !stops[stopAt] {
					continue
				}
				var part bytes.Buffer
				src, err := Open(ctx, path, opts, testsupport.Logger(t))
				if err != nil {
					t.Fatal(err)
				}
				calls := 0
				cur, err := src.Dump(ctx, &part, Cursor{}, func(*Boundary) error {
					if calls++; calls == stopAt {
						return ErrStop
					}
					return nil
				})
				src.Close()
				if err != nil {
					t.Fatalf("stop at %d: %v", stopAt, err)
				}
				if cur.Done {
					continue // the last checkpoint may be the end
				}
				if cur.Bytes != int64(part.Len()) {
					t.Fatalf("stop at %d: cursor says %d bytes, %d written", stopAt, cur.Bytes, part.Len())
				}
				enc, err := json.Marshal(cur)
				if err != nil {
					t.Fatal(err)
				}
				var from Cursor
				if err := json.Unmarshal(enc, &from); err != nil {
					t.Fatal(err)
				}
				src, err = Open(ctx, path, opts, testsupport.Logger(t))
				if err != nil {
					t.Fatal(err)
				}
				end, err := src.Dump(ctx, &part, from, func(*Boundary) error { return nil })
				src.Close()
				if err != nil {
					t.Fatalf("resume after checkpoint %d: %v", stopAt, err)
				}
				if !end.Done || !bytes.Equal(part.Bytes(), full) {
					t.Fatalf("resume after checkpoint %d: output differs at byte %d of %d (done %v)",
						stopAt, diffAt(part.Bytes(), full), len(full), end.Done)
				}
			}
		})
	}
}

// sqlName quotes an identifier for the test's own queries.
func sqlName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// decodedDump is a csv, json or ndjson dump read back: per table, its
// columns and its rows with their storage classes.
type decodedDump struct {
	order   []string
	columns map[string][]string
	rows    map[string][][]Value
}

func decodeDump(t *testing.T, format sluice.Format, out []byte) decodedDump {
	t.Helper()
	d := decodedDump{columns: map[string][]string{}, rows: map[string][][]Value{}}
	add := func(table string, cols []string, row []Value) {
		if _, ok := d.columns[table]; !ok {
			d.order = append(d.order, table)
			d.columns[table] = cols
		}
		if row != nil {
			d.rows[table] = append(d.rows[table], row)
		}
	}
	switch format {
	case sluice.FormatCSV:
		for _, f := range openZip(t, out) {
			recs, err := parseCSVStrict(readZipEntry(t, f))
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			var cols []string
			for _, h := range recs[0] {
				cols = append(cols, h.s)
			}
			add(f.Comment, cols, nil)
			for _, rec := range recs[1:] {
				var row []Value
				for _, fld := range rec {
					v, err := csvValue(fld)
					if err != nil {
						t.Fatalf("%s: %v", f.Name, err)
					}
					row = append(row, v)
				}
				add(f.Comment, cols, row)
			}
		}
	case sluice.FormatJSON:
		// {"<table>": [rows], …}, tables in dump order.
		dec := json.NewDecoder(bytes.NewReader(out))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("json: want an object: %v %v", tok, err)
		}
		for dec.More() {
			name, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			var rows []json.RawMessage
			if err := dec.Decode(&rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 {
				add(name.(string), nil, nil)
			}
			for _, raw := range rows {
				keys, row, err := jsonRowKeys(raw)
				if err != nil {
					t.Fatalf("table %s: %v", name, err)
				}
				add(name.(string), keys, row)
			}
		}
	case sluice.FormatJSONTyped:
		var doc jsonDoc
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		for _, tab := range doc.Tables {
			add(tab.Name, tab.Columns, nil)
			for _, raw := range tab.Rows {
				row, err := jsonRow(raw, tab.Columns)
				if err != nil {
					t.Fatalf("table %s: %v", tab.Name, err)
				}
				add(tab.Name, tab.Columns, row)
			}
		}
	case sluice.FormatNDJSON:
		for n, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var rec struct {
				Table string          `json:"table"`
				Row   json.RawMessage `json:"row"`
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			keys, row, err := jsonRowKeys(rec.Row)
			if err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			add(rec.Table, keys, row)
		}
	}
	return d
}

// canonRows renders rows as sorted strings, so that tables compare
// whatever their dump order.
func canonRows(rows [][]Value) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		var b strings.Builder
		for _, v := range r {
			b.WriteString(describeValue(v))
			b.WriteString(" | ")
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out
}

// TestEdgeDBCSVJSON dumps the edge-case database (mixed storage classes,
// NUL and invalid UTF-8 text, -0.0, ±Inf, int64 limits, WITHOUT ROWID,
// STRICT, generated columns, FTS5, odd identifiers) as csv, json and
// ndjson, reads each back and compares every value and storage class with
// the source.
func TestEdgeDBCSVJSON(t *testing.T) {
	path := buildEdgeDB(t, t.TempDir())
	// The user tables: not sqlite_*, not FTS5 shadow tables (a virtual
	// table's rows are read through the table itself).
	var want []string
	for _, r := range readTypedRows(t, path, `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`) {
		want = append(want, string(r[0].Bytes))
	}
	for _, format := range []sluice.Format{sluice.FormatCSV, sluice.FormatJSON, sluice.FormatJSONTyped, sluice.FormatNDJSON} {
		t.Run(string(format), func(t *testing.T) {
			out := dumpAll(t, path, Options{Format: format})
			if format != sluice.FormatCSV {
				args := []string{"-e", ".tables | length > 0"}
				if format == sluice.FormatJSON {
					args = []string{"-e", "type == \"object\" and length > 0"}
				}
				if format == sluice.FormatNDJSON {
					args = []string{"-R", "-e", "fromjson | .row | type == \"object\""}
				}
				cmd := exec.Command(requireTool(t, "jq"), args...)
				cmd.Stdin = bytes.NewReader(out)
				if msg, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("jq %q: %v\n%.500s", args, err, msg)
				}
			}
			d := decodeDump(t, format, out)
			got := slices.Clone(d.order)
			slices.Sort(got)
			if format == sluice.FormatNDJSON {
				// Tables without rows have no line; compare the rest.
				want := slices.DeleteFunc(slices.Clone(want), func(name string) bool {
					return len(readTypedRows(t, path, "SELECT 1 FROM "+sqlName(name)+" LIMIT 1")) == 0
				})
				if !slices.Equal(got, want) {
					t.Errorf("tables with rows %q, want %q", got, want)
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("tables %q, want %q", got, want)
			}
			for _, name := range d.order {
				var sel []string
				for _, c := range d.columns[name] {
					sel = append(sel, sqlName(c))
				}
				src := readTypedRows(t, path, "SELECT "+strings.Join(sel, ", ")+" FROM "+sqlName(name))
				g, w := canonRows(d.rows[name]), canonRows(src)
				if len(g) != len(w) {
					t.Errorf("%s: %d rows, want %d", name, len(g), len(w))
					continue
				}
				for i := range w {
					if g[i] != w[i] {
						t.Errorf("%s: row differs\n got %.300s\nwant %.300s", name, g[i], w[i])
						break
					}
				}
			}
		})
	}
}
