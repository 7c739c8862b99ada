package dump

import (
	"bytes"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
)

// plainDB builds a database without REALs, NUL-bearing text or -0.0 but
// with everything else .dump has rules for: quoted and keyword
// identifiers, newlines and CRs in text, BLOBs, WITHOUT ROWID, STRICT,
// generated columns, AUTOINCREMENT, FTS5, indexes, triggers and views.
func plainDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "plain.db")
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, "PRAGMA journal_mode=DELETE")
	mustExec(t, c, `BEGIN;
CREATE TABLE t(a INTEGER PRIMARY KEY AUTOINCREMENT, b TEXT, c BLOB, d);
CREATE TABLE "we ird""t"(x, "y z" TEXT, "select", g AS (x * 2), h GENERATED ALWAYS AS (x + 1) STORED);
CREATE TABLE wr(k TEXT, j INT, v, PRIMARY KEY(k, j)) WITHOUT ROWID;
CREATE TABLE s(id INTEGER PRIMARY KEY, v ANY) STRICT;
CREATE VIRTUAL TABLE ft USING fts5(body);
CREATE TABLE "order"("group", "values");
CREATE TABLE données(clé, valeur);
CREATE TABLE rid(rowid TEXT, _rowid_ TEXT, q);
CREATE TABLE norowid(a, b);
CREATE INDEX ti ON t(b) WHERE d > 0;
CREATE VIEW v1 AS SELECT * FROM t;
CREATE VIEW v2 AS SELECT a FROM v1;
CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET d = 1 WHERE a = new.a; END;
INSERT INTO t(b, c, d) VALUES('x''y
z' || char(13), X'00ff', 9223372036854775807), ('\n and
newline', X'', -9223372036854775808), (NULL, NULL, 'text'), ('crlf' || char(13) || char(10), X'0102', X'03');
INSERT INTO "we ird""t"(x, "y z", "select") VALUES(1, 'a', 'b'), (2, NULL, X'ee');
INSERT INTO wr VALUES('a', 1, 2), ('b', -1, 'x');
INSERT INTO s(v) VALUES(1), ('t'), (X'01'), (NULL);
INSERT INTO ft VALUES('hello world'), ('second row');
INSERT INTO "order" VALUES(1, 'select');
INSERT INTO données VALUES('é', 'ü');
INSERT INTO rid VALUES('a', 'b', 'c');
INSERT INTO norowid(rowid, a, b) VALUES(10, 'ten', 1), (3, 'three', 2), (7, 'seven', 3);
DELETE FROM t WHERE a = 3;
COMMIT`)
	return path
}

// TestIdenticalToSQLite3Dump: for databases without REALs, NUL-bearing
// text or -0.0, the sql format is byte-identical to sqlite3 .dump.
func TestIdenticalToSQLite3Dump(t *testing.T) {
	dir := t.TempDir()
	chinook := withoutReals(t, testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), dir))
	northwind := withoutReals(t, northwindDB(t, dir))
	cases := []struct {
		name     string
		db       string
		preserve bool
	}{
		{"plain", plainDB(t, dir), false},
		{"plain/preserve-rowids", filepath.Join(dir, "plain.db"), true},
		{"chinook-without-reals", chinook, false},
		{"northwind-without-reals", northwind, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := runCLI(t, tc.db, nil, ".dump")
			if tc.preserve {
				want = runCLI(t, tc.db, nil, ".dump --preserve-rowids")
			}
			got := dumpAll(t, tc.db, Options{PreserveRowids: tc.preserve, ChunkSize: 2})
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				lo := max(0, i-200)
				t.Fatalf("differs from sqlite3 .dump at byte %d:\n got: %q\nwant: %q", i, got[lo:min(len(got), i+200)], want[lo:min(len(want), i+200)])
			}
		})
	}
}

// withoutReals turns every REAL of db into an INTEGER (x100), so that the
// corpus databases can be compared byte for byte with sqlite3 .dump.
func withoutReals(t *testing.T, db string) string {
	t.Helper()
	c, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var updates []string
	st := c.Prep(`SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	for {
		ok, err := st.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		tab, col := quoteIdent(st.ColumnText(0)), quoteIdent(st.ColumnText(1))
		updates = append(updates, "UPDATE "+tab+" SET "+col+" = CAST(round("+col+" * 100) AS INTEGER) WHERE typeof("+col+") = 'real'")
	}
	st.Reset()
	mustExec(t, c, "PRAGMA ignore_check_constraints=ON")
	for _, u := range updates {
		mustExec(t, c, u)
	}
	return db
}
