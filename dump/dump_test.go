package dump

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
)

// runCLI runs the sqlite3 CLI on db with stdin; any output on stderr or a
// non-zero exit fails the test. It returns stdout.
func runCLI(t *testing.T, db string, stdin io.Reader, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testsupport.SQLite3(t), append([]string{"-batch", "-bail", db}, args...)...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("sqlite3 %s %v: %v\n%s", db, args, err, errb.Bytes())
	}
	return out.Bytes()
}

// northwindDB builds northwind from its SQL script with the sqlite3 CLI.
func northwindDB(t *testing.T, dir string) string {
	t.Helper()
	script, err := os.Open(testsupport.Corpus(t, "northwind.sql"))
	if err != nil {
		t.Fatal(err)
	}
	defer script.Close()
	path := filepath.Join(dir, "northwind.db")
	// The script commits row by row; skip the fsyncs, not the content.
	runCLI(t, path, io.MultiReader(strings.NewReader("PRAGMA synchronous=OFF;\nPRAGMA journal_mode=MEMORY;\n"), script))
	return path
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// dumpAll dumps db in one go, checking that the file is unchanged.
func dumpAll(t *testing.T, db string, opts Options) []byte {
	t.Helper()
	before := fileHash(t, db)
	src, err := Open(context.Background(), db, opts, testsupport.Logger(t))
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	var buf bytes.Buffer
	cur, err := src.Dump(context.Background(), &buf, Cursor{}, nil)
	if err != nil {
		t.Fatalf("dump %s: %v", db, err)
	}
	if !cur.Done || cur.Bytes != int64(buf.Len()) {
		t.Fatalf("final cursor %+v, wrote %d bytes", cur, buf.Len())
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if fileHash(t, db) != before {
		t.Fatalf("dump modified %s", db)
	}
	return buf.Bytes()
}

// restore loads a SQL dump into a new database with the sqlite3 CLI.
func restore(t *testing.T, dumpSQL []byte, path string) {
	t.Helper()
	runCLI(t, path, bytes.NewReader(dumpSQL))
}

// dbContent is a database's schema and rows, each value tagged with its
// storage class and exact bytes (REALs as bits), in a canonical order.
type dbContent struct {
	schema []string
	tables map[string][]string
}

func readContent(t *testing.T, path string, withRowids bool) dbContent {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var dc dbContent
	dc.tables = map[string][]string{}
	var tables []string
	st := c.Prep("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
	for {
		ok, err := st.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if n := st.ColumnText(1); n == "sqlite_stat2" || n == "sqlite_stat3" || n == "sqlite_stat4" {
			continue // build-specific optimizer statistics; see plan.go
		}
		dc.schema = append(dc.schema, strings.Join([]string{st.ColumnText(0), st.ColumnText(1), st.ColumnText(2), st.ColumnText(3)}, "|"))
		if st.ColumnText(0) == "table" {
			tables = append(tables, st.ColumnText(1))
		}
	}
	st.Reset()
	for _, name := range tables {
		sel := "SELECT * FROM " + quoteIdent(name)
		if withRowids {
			if r := rowidAlias(t, c, name); r != "" {
				sel = "SELECT " + r + ", * FROM " + quoteIdent(name)
			}
		}
		q, _, err := c.PrepareTransient(sel)
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		var rows []string
		for {
			ok, err := q.Step()
			if err != nil {
				t.Fatalf("%s: %v", sel, err)
			}
			if !ok {
				break
			}
			var b strings.Builder
			for i := 0; i < q.ColumnCount(); i++ {
				b.WriteString(canonValue(q, i))
				b.WriteByte('|')
			}
			rows = append(rows, b.String())
		}
		q.Finalize()
		slices.Sort(rows)
		dc.tables[name] = rows
	}
	return dc
}

// rowidAlias returns how to select a rowid table's rowid, or "".
func rowidAlias(t *testing.T, c *sqlite.Conn, table string) string {
	t.Helper()
	for _, cand := range []string{"rowid", "_rowid_", "oid"} {
		q, _, err := c.PrepareTransient("SELECT count(*) FROM pragma_table_xinfo(?1) WHERE name = ?2 COLLATE NOCASE")
		if err != nil {
			t.Fatal(err)
		}
		q.BindText(1, table)
		q.BindText(2, cand)
		q.Step()
		n := q.ColumnInt(0)
		q.Finalize()
		if n == 0 {
			q, _, err := c.PrepareTransient("SELECT " + cand + " FROM " + quoteIdent(table) + " LIMIT 0")
			if err != nil {
				return "" // WITHOUT ROWID or virtual
			}
			q.Finalize()
			return cand
		}
	}
	return ""
}

func canonValue(q *sqlite.Stmt, i int) string {
	switch q.ColumnType(i) {
	case sqlite.TypeInteger:
		return fmt.Sprintf("i:%d", q.ColumnInt64(i))
	case sqlite.TypeFloat:
		f := q.ColumnFloat(i)
		return fmt.Sprintf("r:%016x(%g)", math.Float64bits(f), f)
	case sqlite.TypeText:
		// ColumnText converts a UTF-16 database's text to UTF-8 and
		// returns a UTF-8 database's bytes unchanged (NULs included).
		return fmt.Sprintf("t:%q", q.ColumnText(i))
	case sqlite.TypeBlob:
		b := make([]byte, q.ColumnLen(i))
		q.ColumnBytes(i, b)
		return fmt.Sprintf("b:%x", b)
	}
	return "null"
}

// compareContent fails the test with the first differences.
func compareContent(t *testing.T, what string, got, want dbContent) {
	t.Helper()
	if !slices.Equal(normalizeSchema(got.schema), normalizeSchema(want.schema)) {
		t.Errorf("%s: schema differs\n got: %q\nwant: %q", what, got.schema, want.schema)
	}
	for name, rows := range want.tables {
		g, ok := got.tables[name]
		if !ok {
			t.Errorf("%s: table %q missing after restore", what, name)
			continue
		}
		if len(g) != len(rows) {
			t.Errorf("%s: table %q: %d rows, want %d", what, name, len(g), len(rows))
			continue
		}
		for i := range rows {
			if g[i] != rows[i] {
				t.Errorf("%s: table %q row %d:\n got %.300s\nwant %.300s", what, name, i, g[i], rows[i])
				break
			}
		}
	}
	for name := range got.tables {
		if _, ok := want.tables[name]; !ok {
			t.Errorf("%s: unexpected table %q after restore", what, name)
		}
	}
}

// normalizeSchema drops what a restore legitimately changes: the "IF NOT
// EXISTS" that .dump adds to quoted CREATE TABLEs is not stored anyway.
func normalizeSchema(s []string) []string {
	out := slices.Clone(s)
	for i := range out {
		out[i] = strings.Replace(out[i], "CREATE TABLE IF NOT EXISTS ", "CREATE TABLE ", 1)
	}
	return out
}

func TestRoundTripSQL(t *testing.T) {
	dir := t.TempDir()
	dbs := map[string]string{
		"chinook":   testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), dir),
		"northwind": northwindDB(t, dir),
		"edge":      buildEdgeDB(t, dir),
		"utf16":     utf16DB(t, dir),
	}
	for _, name := range []string{"chinook", "northwind", "edge", "utf16"} {
		for _, preserve := range []bool{false, true} {
			for _, chunk := range []int{0, 7} {
				t.Run(fmt.Sprintf("%s/preserve=%v/chunk=%d", name, preserve, chunk), func(t *testing.T) {
					db := dbs[name]
					out := dumpAll(t, db, Options{PreserveRowids: preserve, ChunkSize: chunk})
					restored := filepath.Join(t.TempDir(), "restored.db")
					restore(t, out, restored)
					compareContent(t, name, readContent(t, restored, preserve), readContent(t, db, preserve))
				})
			}
		}
	}
}

// TestEdgeDBCoversFidelity keeps the generator honest: every item under
// Fidelity is present in the source database.
func TestEdgeDBCoversFidelity(t *testing.T) {
	db := buildEdgeDB(t, t.TempDir())
	c, err := sqlite.OpenConn(db, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checks := map[string]string{
		"text with NUL":          "SELECT count(*) FROM mixed WHERE typeof(v)='text' AND instr(CAST(v AS BLOB), X'00') > 0",
		"+Inf and -Inf":          "SELECT count(*) = 2 FROM (SELECT DISTINCT v FROM mixed WHERE typeof(v)='real' AND abs(v) > 1.7976931348623157e308)",
		"integral REAL":          "SELECT count(*) FROM mixed WHERE typeof(v)='real' AND v = 1",
		"int64 extremes":         "SELECT count(*) = 2 FROM mixed WHERE v IN (9223372036854775807, -9223372036854775808) AND typeof(v)='integer'",
		"invalid UTF-8":          "SELECT count(*) FROM mixed WHERE typeof(v)='text' AND instr(CAST(v AS BLOB), X'ff') > 0",
		"mixed untyped":          "SELECT count(DISTINCT typeof(v)) = 5 FROM mixed",
		"mixed ANY":              "SELECT count(DISTINCT typeof(a)) = 5 FROM strict_any",
		"WITHOUT ROWID":          "SELECT count(*) FROM pragma_table_list WHERE wr = 1 AND schema = 'main'",
		"STRICT":                 "SELECT count(*) FROM pragma_table_list WHERE strict = 1 AND schema = 'main'",
		"generated columns":      "SELECT count(*) FROM pragma_table_xinfo('gen') WHERE hidden IN (2, 3)",
		"AUTOINCREMENT":          "SELECT count(*) FROM sqlite_sequence",
		"FTS5 + shadow":          "SELECT count(*) FROM pragma_table_list WHERE type = 'shadow' AND name LIKE 'docs_%'",
		"partial index":          "SELECT count(*) FROM pragma_index_list('mixed') WHERE partial = 1",
		"trigger":                "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'",
		"view on view":           "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND sql LIKE '%FROM v_%'",
		"quote/space/unicode/kw": "SELECT count(*) = 3 FROM sqlite_schema WHERE name IN ('odd \"name\" [x]', 'données', 'order')",
	}
	for what, q := range checks {
		st, _, err := c.PrepareTransient(q)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		st.Step()
		if st.ColumnInt(0) == 0 {
			t.Errorf("edge database lacks %s", what)
		}
		st.Finalize()
	}
	st := c.Prep("SELECT v FROM mixed WHERE typeof(v) = 'real' AND v = 0")
	negZero := false
	for {
		ok, err := st.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		negZero = negZero || math.Signbit(st.ColumnFloat(0))
	}
	if !negZero {
		t.Error("edge database lacks -0.0")
	}
}

// utf16DB is a small UTF-16le database: its text must come out as the
// same characters (the restored database is UTF-8, as with sqlite3 .dump).
func utf16DB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "utf16.db")
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, "PRAGMA encoding='UTF-16le'")
	mustExec(t, c, `CREATE TABLE "tëxt"(id INTEGER PRIMARY KEY, v, w TEXT);
INSERT INTO "tëxt"(v, w) VALUES('héllo ✓ 𝄞', 'plain'), ('nul' || char(0) || 'inside', 'a''b
c'), (1.5, X'00ff'), (NULL, '')`)
	return path
}
