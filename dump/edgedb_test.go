package dump

// The edge-case database generator. It is built in t.TempDir() at test
// time (no binary in the repository) and covers every item under
// "Fidelity" in issue 2.

import (
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
)

// edgeSchema is the schema of the edge-case database.
const edgeSchema = `
CREATE TABLE mixed(id INTEGER PRIMARY KEY, v);
CREATE TABLE reals(id INTEGER PRIMARY KEY, r REAL, n NUMERIC, u);
CREATE TABLE strict_any(id INTEGER PRIMARY KEY, a ANY, i INTEGER, t TEXT, b BLOB, r REAL) STRICT;
CREATE TABLE wr(k TEXT COLLATE NOCASE, n INTEGER, v, PRIMARY KEY(k, n)) WITHOUT ROWID;
CREATE TABLE wr_blob(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE gen(a INTEGER, b TEXT, c AS (a * 2), d TEXT GENERATED ALWAYS AS (upper(b)) STORED, e);
CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
CREATE VIRTUAL TABLE docs USING fts5(title, body);
CREATE TABLE "odd ""name"" [x]"("select", "a b", "é", [from], "with""quote");
CREATE TABLE "order"("group" INTEGER, "values" TEXT);
CREATE TABLE données(clé TEXT, valeur);
CREATE TABLE sparse(x TEXT, y);
CREATE TABLE shadowed(rowid TEXT, _rowid_ TEXT, z);
CREATE TABLE allshadowed(rowid TEXT, _rowid_ TEXT, oid TEXT);
CREATE TABLE ipkdesc(id INTEGER PRIMARY KEY DESC, v);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB, t TEXT, x);
CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT /* a comment */ -- another
);
CREATE INDEX mixed_partial ON mixed(v) WHERE typeof(v) = 'text';
CREATE UNIQUE INDEX "odd index" ON "odd ""name"" [x]"("a b");
CREATE INDEX child_parent ON child(parent_id) -- trailing comment
;
CREATE TRIGGER auto_log AFTER INSERT ON auto BEGIN INSERT INTO sparse(x, y) VALUES ('trigger', new.id); END;
CREATE VIEW v_base AS SELECT id, v FROM mixed WHERE typeof(v) = 'integer';
CREATE VIEW v_top AS SELECT id FROM v_base WHERE v > 0;
CREATE VIEW "v on v on v" AS SELECT count(*) AS n FROM v_top;
`

// edgeTexts are TEXT values that stress quoting and encoding.
var edgeTexts = []string{
	"", "plain", "it's", "''", "line\nbreak", "cr\ronly", "crlf\r\n", "\n", "\r",
	`has \n marker` + "\n", `both \n and \012` + "\n", `all \n \012 (\n0)` + "\n",
	`\r marker` + "\r", "nul\x00inside", "\x00", "trailing nul\x00", "\x00\n\r'",
	"\xff\xfe invalid utf-8", "truncated \xc3", "héllo ✓ 𝄞", "tab\there", "ctl\x01\x1f\x7f",
	"semi;colon", "dash -- not a comment", "/* not a comment */", "\u2028", strings.Repeat("long ", 2000),
}

// buildEdgeDB writes the edge-case database to a new file in dir.
func buildEdgeDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "edge.db")
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, "PRAGMA journal_mode=DELETE")
	mustExec(t, c, "BEGIN")
	for _, stmt := range splitSQL(edgeSchema) {
		mustExec(t, c, stmt)
	}
	reals := []float64{0, math.Copysign(0, -1), 1, -1, 2, 1e15, 1e16, 1 << 53, -(1 << 62), 9.2e18, 1e19, 1e300,
		0.1, 1.0 / 3, -2.5, 1e-7, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
		math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), 6.488487418099843e-307,
		5.634704915631237e-148, 1.837920744950592e-18, 123456.789, 9007199254740993}
	r := rand.New(rand.NewSource(2))
	for range 300 {
		f := math.Float64frombits(r.Uint64())
		if !math.IsNaN(f) {
			reals = append(reals, f)
		}
	}
	ints := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1<<53 + 1, -(1<<53 + 1), 1 << 62, math.MaxInt32}
	blobs := [][]byte{{}, {0}, []byte("text-like blob"), allBytesEdge()}

	ins := c.Prep("INSERT INTO mixed(v) VALUES(?1)")
	insStrict := c.Prep("INSERT INTO strict_any(a) VALUES(?1)")
	each := func(f func(st *sqlite.Stmt)) {
		for _, st := range []*sqlite.Stmt{ins, insStrict} {
			f(st)
			stepReset(t, st)
		}
	}
	each(func(st *sqlite.Stmt) { st.BindNull(1) })
	for _, i := range ints {
		each(func(st *sqlite.Stmt) { st.BindInt64(1, i) })
	}
	for _, f := range reals {
		each(func(st *sqlite.Stmt) { st.BindFloat(1, f) })
	}
	for _, s := range edgeTexts {
		each(func(st *sqlite.Stmt) { bindRawText(st, 1, s) })
	}
	for _, b := range blobs {
		each(func(st *sqlite.Stmt) { st.BindBytes(1, b) })
	}
	insR := c.Prep("INSERT INTO reals(r, n, u) VALUES(?1, ?1, ?1)")
	for _, f := range reals {
		insR.BindFloat(1, f)
		stepReset(t, insR)
	}
	mustExec(t, c, `INSERT INTO strict_any(i, t, b, r) VALUES(9223372036854775807, 'x', X'00ff', -0.0), (-9223372036854775808, '', X'', 1.0)`)
	for i, s := range edgeTexts[:12] {
		st := c.Prep("INSERT INTO wr(k, n, v) VALUES(?1, ?2, ?3)")
		bindRawText(st, 1, s)
		st.BindInt64(2, int64(i))
		st.BindFloat(3, float64(i)+0.5)
		stepReset(t, st)
	}
	mustExec(t, c, `INSERT INTO wr(k, n, v) VALUES('Key', 1, 1), ('kez', -5, NULL), (CAST(X'ff41' AS TEXT), 0, 'invalid key')`)
	mustExec(t, c, `INSERT INTO wr_blob VALUES(X'', 'empty'), (X'00', 'nul'), (X'ff', 'ff'), (X'0001', 2)`)
	mustExec(t, c, `INSERT INTO gen(a, b, e) VALUES(1, 'one', 1.5), (NULL, NULL, NULL), (-7, 'neg''ative', X'01')`)
	mustExec(t, c, `INSERT INTO auto(name) VALUES('a'), ('b'), ('c'); DELETE FROM auto WHERE name = 'c'`)
	mustExec(t, c, `INSERT INTO docs(title, body) VALUES('hello', 'hello world'), ('quote''s', 'text with
newline'), ('uni', 'données ✓')`)
	mustExec(t, c, `INSERT INTO "odd ""name"" [x]" VALUES(1, 'a', 'é', 'from', 'q"q'), (2, 'b', NULL, X'00', 0.5)`)
	mustExec(t, c, `INSERT INTO "order" VALUES(1, 'select'), (2, 'from')`)
	mustExec(t, c, `INSERT INTO données VALUES('clé', 'valeur'), ('ß', 3)`)
	mustExec(t, c, `INSERT INTO sparse(rowid, x, y) VALUES(-9223372036854775808, 'min', 1), (-1, 'neg', 2), (5, 'five', 3), (9223372036854775807, 'max', 4)`)
	mustExec(t, c, `INSERT INTO shadowed VALUES('r', '_r', 'z'), ('r2', '_r2', 'z2')`)
	mustExec(t, c, `DELETE FROM shadowed WHERE z = 'z'`)
	mustExec(t, c, `INSERT INTO allshadowed VALUES('a', 'b', 'c'), ('d', 'e', 'f')`)
	mustExec(t, c, `INSERT INTO ipkdesc VALUES(3, 'c'), (1, 'a'), (2, 'b')`)
	mustExec(t, c, `INSERT INTO parent VALUES(1, 'p1'), (2, 'p2'); INSERT INTO child VALUES(1, 1, 'c1'), (2, 2, NULL)`)
	// Large values: after the first pages the reader switches to blob I/O.
	insBig := c.Prep("INSERT INTO big(b, t, x) VALUES(?1, ?2, ?3)")
	for i := 0; i < 40; i++ {
		big := make([]byte, 33<<10+i*100)
		for j := range big {
			big[j] = byte(j*31 + i)
		}
		insBig.BindBytes(1, big)
		text := strings.Repeat("large text ' with\nnewlines ", 1300) + string(rune('a'+i%26))
		if i%5 == 0 {
			text += "\x00nul and \xff invalid"
		}
		bindRawText(insBig, 2, text)
		switch i % 4 {
		case 0:
			insBig.BindNull(3)
		case 1:
			insBig.BindFloat(3, 0.1*float64(i))
		case 2:
			insBig.BindBytes(3, big[:100])
		case 3:
			bindRawText(insBig, 3, text[:33000])
		}
		stepReset(t, insBig)
	}
	mustExec(t, c, "COMMIT")
	mustExec(t, c, "ANALYZE")
	return path
}

func allBytesEdge() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// bindRawText binds s as TEXT with its exact bytes (NULs and invalid
// UTF-8 included).
func bindRawText(st *sqlite.Stmt, i int, s string) { st.BindText(i, s) }

func stepReset(t *testing.T, st *sqlite.Stmt) {
	t.Helper()
	if _, err := st.Step(); err != nil {
		t.Fatal(err)
	}
	if err := st.Reset(); err != nil {
		t.Fatal(err)
	}
	st.ClearBindings()
}

// mustExec runs one or more statements separated by ";\n"-free splitting.
func mustExec(t *testing.T, c *sqlite.Conn, sql string) {
	t.Helper()
	for _, stmt := range splitSQL(sql) {
		st, _, err := c.PrepareTransient(stmt)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		for {
			ok, err := st.Step()
			if err != nil {
				st.Finalize()
				t.Fatalf("%s: %v", stmt, err)
			}
			if !ok {
				break
			}
		}
		st.Finalize()
	}
}

// splitSQL splits a script into complete statements using SQLite's own
// notion of completeness (a trigger body holds semicolons).
func splitSQL(script string) []string {
	var out []string
	var cur strings.Builder
	for _, part := range strings.SplitAfter(script, ";") {
		cur.WriteString(part)
		s := strings.TrimSpace(cur.String())
		if s == "" {
			cur.Reset()
			continue
		}
		if sqliteComplete(s) {
			out = append(out, s)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// sqliteComplete is a small stand-in for sqlite3_complete, good enough for
// the scripts in these tests: a statement is complete at a ';' outside
// quotes and comments, unless it is a CREATE TRIGGER whose body has not
// reached END.
func sqliteComplete(s string) bool {
	if !strings.HasSuffix(s, ";") || endsInComment(s) != 0 {
		return false
	}
	u := strings.ToUpper(s)
	if strings.HasPrefix(u, "CREATE TRIGGER") || strings.HasPrefix(u, "CREATE TEMP TRIGGER") {
		return strings.HasSuffix(strings.TrimSpace(strings.TrimSuffix(u, ";")), "END")
	}
	// an odd number of quotes means the ';' is inside a literal
	return strings.Count(s, "'")%2 == 0
}
