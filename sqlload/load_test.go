package sqlload

import (
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"zombiezen.com/go/sqlite"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"simple", "SELECT 1; SELECT 2;", []string{"SELECT 1;", " SELECT 2;"}},
		{"semicolon in string", "INSERT INTO t VALUES('a;b','it''s;');", []string{"INSERT INTO t VALUES('a;b','it''s;');"}},
		{"semicolon in identifiers", `CREATE TABLE "a;b"([c;d], ` + "`e;f`" + `);`, []string{`CREATE TABLE "a;b"([c;d], ` + "`e;f`" + `);`}},
		{"line comment", "-- a; b\nSELECT 1; -- c;\n", []string{"-- a; b\nSELECT 1;"}},
		{"block comment", "/* x; */ SELECT /*;*/ 1;/**/", []string{"/* x; */ SELECT /*;*/ 1;"}},
		{"comment opener is not closer", "/*/ ; */SELECT 1;", []string{"/*/ ; */SELECT 1;"}},
		{"empty statements skipped", ";;  ;\n SELECT 1;;", []string{"\n SELECT 1;"}},
		{"minus and slash", "SELECT 4-2/1;", []string{"SELECT 4-2/1;"}},
		{
			"trigger",
			"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES(1); UPDATE t SET a = CASE WHEN a>0 THEN 1 ELSE 2 END; END; SELECT 2;",
			[]string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES(1); UPDATE t SET a = CASE WHEN a>0 THEN 1 ELSE 2 END; END;", " SELECT 2;"},
		},
		{
			"temp trigger with comments before end",
			"create temporary trigger tr after delete on t begin delete from u; /* ; */ -- ;\n end ; select 1;",
			[]string{"create temporary trigger tr after delete on t begin delete from u; /* ; */ -- ;\n end ;", " select 1;"},
		},
		{"create table named trigger", "CREATE TABLE trigger(a); SELECT 1;", []string{"CREATE TABLE trigger(a);", " SELECT 1;"}},
		{"end is a word", "SELECT 'END;'; SELECT 1 AS endx;", []string{"SELECT 'END;';", " SELECT 1 AS endx;"}},
		{"blob literal", "INSERT INTO t VALUES(X'3B3B');", []string{"INSERT INTO t VALUES(X'3B3B');"}},
		{"trailing whitespace only", "SELECT 1;\n\n-- done\n", []string{"SELECT 1;"}},
		{"star runs in comments", "/***/SELECT 1/* a ** b */;/** ; **/SELECT 2;", []string{"/***/SELECT 1/* a ** b */;", "/** ; **/SELECT 2;"}},
		{"first keyword after comment", "-- c\n/* d */ BEGIN; END;", []string{"-- c\n/* d */ BEGIN;", " END;"}},
		{"explain create trigger", "EXPLAIN CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 3;", []string{"EXPLAIN CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;", " SELECT 3;"}},
	}
	for _, tt := range tests {
		// Whole and one byte at a time, so that every token also
		// straddles a read boundary.
		for _, mode := range []string{"whole", "bytewise"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.in)
				if mode == "bytewise" {
					r = iotest.OneByteReader(r)
				}
				sp := newSplitter(r, 1<<20)
				var got []string
				for {
					s, _, err := sp.next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("next: %v", err)
					}
					got = append(got, string(s))
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got  %q\nwant %q", got, tt.want)
				}
				if sp.n != int64(len(tt.in)) {
					t.Errorf("consumed %d bytes, want %d", sp.n, len(tt.in))
				}
			})
		}
	}
}

func TestSplitIncomplete(t *testing.T) {
	for _, in := range []string{
		"SELECT 1",
		"INSERT INTO t VALUES(1),(2)",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
		"SELECT 'abc;",
	} {
		sp := newSplitter(strings.NewReader(in), 1<<20)
		if _, _, err := sp.next(); err == nil || err == io.EOF {
			t.Errorf("%q: err = %v, want incomplete SQL", in, err)
		}
	}
}

func TestSplitTooLong(t *testing.T) {
	sp := newSplitter(strings.NewReader("SELECT '"+strings.Repeat("x", 100)+"';"), 50)
	if _, _, err := sp.next(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
}

func openMem(t *testing.T, path string) *sqlite.Conn {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "db.sqlite")
	}
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func query(t *testing.T, conn *sqlite.Conn, sql string) []string {
	t.Helper()
	var out []string
	stmt, _, err := conn.PrepareTransient(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer stmt.Finalize()
	for {
		row, err := stmt.Step()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if !row {
			return out
		}
		var cols []string
		for i := 0; i < stmt.ColumnCount(); i++ {
			cols = append(cols, strings.TrimPrefix(stmt.ColumnType(i).String(), "SQLITE_")+":"+stmt.ColumnText(i))
		}
		out = append(out, strings.Join(cols, "|"))
	}
}

func TestLoadTricky(t *testing.T) {
	script := `PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE t(a, b TEXT);
-- a comment; with a semicolon
INSERT INTO t VALUES(1,'x;y'), (2, 'it''s; fine'); /* trailing; comment */
CREATE TABLE log(msg);
CREATE TRIGGER tr AFTER INSERT ON t BEGIN
  INSERT INTO log VALUES('inserted; ' || new.b);
  UPDATE t SET a = CASE WHEN new.a > 10 THEN -1 ELSE new.a END WHERE rowid = new.rowid;
END;
INSERT INTO t VALUES(11, 'big');
SELECT * FROM t;
PRAGMA writable_schema=ON;
INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft USING fts5(body)');
CREATE TABLE IF NOT EXISTS 'ft_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO ft_data VALUES(1,X'0102');
INSERT INTO ft_data VALUES(10,X'000000000101010001010101');
INSERT INTO ft_data VALUES(137438953473,X'00000018063068656c6c6f0102020105776f726c64010203040a');
CREATE TABLE IF NOT EXISTS 'ft_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO ft_idx VALUES(1,X'',2);
CREATE TABLE IF NOT EXISTS 'ft_content'(id INTEGER PRIMARY KEY, c0);
INSERT INTO ft_content VALUES(1,'hello world');
CREATE TABLE IF NOT EXISTS 'ft_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO ft_docsize VALUES(1,X'02');
CREATE TABLE IF NOT EXISTS 'ft_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO ft_config VALUES('version',4);
PRAGMA writable_schema=OFF;
COMMIT;
`
	for _, atomic := range []bool{false, true} {
		conn := openMem(t, "")
		if err := execSimple(conn, "PRAGMA foreign_keys=ON"); err != nil {
			t.Fatal(err)
		}
		st, err := Load(context.Background(), conn, strings.NewReader(script), Options{Atomic: atomic})
		if err != nil {
			t.Fatalf("atomic=%v: %v", atomic, err)
		}
		wantStmts := int64(24)
		if atomic {
			wantStmts = 22 // BEGIN and COMMIT skipped
		}
		if st.Statements != wantStmts || st.Bytes != int64(len(script)) {
			t.Errorf("atomic=%v: stats = %+v, want %d statements, %d bytes", atomic, st, wantStmts, len(script))
		}
		if got, want := query(t, conn, "SELECT a, b FROM t ORDER BY rowid"), []string{"INTEGER:1|TEXT:x;y", "INTEGER:2|TEXT:it's; fine", "INTEGER:-1|TEXT:big"}; !reflect.DeepEqual(got, want) {
			t.Errorf("t = %q, want %q", got, want)
		}
		if got := query(t, conn, "SELECT msg FROM log"); len(got) != 1 || got[0] != "TEXT:inserted; big" {
			t.Errorf("log = %q", got)
		}
		// The virtual table works on the loading connection itself.
		if got := query(t, conn, "SELECT body FROM ft WHERE ft MATCH 'hello'"); len(got) != 1 || got[0] != "TEXT:hello world" {
			t.Errorf("fts match = %q", got)
		}
		if got := query(t, conn, "PRAGMA foreign_keys"); got[0] != "INTEGER:1" {
			t.Errorf("foreign_keys not restored: %q", got)
		}
		if got := query(t, conn, "PRAGMA integrity_check"); got[0] != "TEXT:ok" {
			t.Errorf("integrity_check: %q", got)
		}
	}
}

func TestLoadAtomicAllOrNothing(t *testing.T) {
	tests := []struct {
		name, script string
		wantStmt     int64
		wantIs       error
		wantMsg      string
	}{
		{"sql error", "BEGIN;\nCREATE TABLE a(x);\nINSERT INTO a VALUES(1);\nINSERT INTO nope VALUES(2);\nCOMMIT;\n", 4, nil, "no such table: nope"},
		{"rollback in script", "BEGIN;\nCREATE TABLE a(x);\nROLLBACK; -- due to errors\n", 3, ErrRollback, ""},
		{"truncated", "CREATE TABLE a(x);\nINSERT INTO a VALUES(1),(2", 2, nil, "incomplete SQL"},
		{"constraint", "CREATE TABLE a(x UNIQUE);\nINSERT INTO a VALUES(1);\nINSERT INTO a VALUES(1);\n", 3, nil, "UNIQUE constraint failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := openMem(t, "")
			_, err := Load(context.Background(), conn, strings.NewReader(tt.script), Options{Atomic: true})
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if le.Statement != tt.wantStmt {
				t.Errorf("statement = %d, want %d (%v)", le.Statement, tt.wantStmt, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
			if got := query(t, conn, "SELECT count(*) FROM sqlite_schema"); got[0] != "INTEGER:0" {
				t.Errorf("schema not rolled back: %q", got)
			}
			if !conn.AutocommitEnabled() {
				t.Error("transaction left open")
			}
		})
	}
}

func TestLoadNonAtomicKeepsPrefix(t *testing.T) {
	conn := openMem(t, "")
	_, err := Load(context.Background(), conn, strings.NewReader("CREATE TABLE a(x);\nINSERT INTO a VALUES(1);\nINSERT INTO nope VALUES(1);\n"), Options{})
	if err == nil {
		t.Fatal("want error")
	}
	if got := query(t, conn, "SELECT x FROM a"); len(got) != 1 {
		t.Errorf("a = %q, want the first row kept", got)
	}
}

func TestLoadCancelled(t *testing.T) {
	conn := openMem(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Load(ctx, conn, strings.NewReader("CREATE TABLE a(x);"), Options{Atomic: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func sqlite3CLI(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command(testsupport.SQLite3(t), args...)
	cmd.Stdin = stdin
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqlite3 %v: %v: %s", args, err, stderr.String())
	}
	return string(out)
}

func loadFile(t *testing.T, path, script string) Stats {
	t.Helper()
	conn := openMem(t, path)
	st, err := Load(context.Background(), conn, strings.NewReader(script), Options{Atomic: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestLoadCorpus reloads real dumps and compares the result with what the
// sqlite3 shell makes of the same input, via the shell's own .dump.
func TestLoadCorpus(t *testing.T) {
	testsupport.SQLite3(t)
	corpus := testsupport.CorpusDir(t)
	dir := t.TempDir()

	t.Run("chinook", func(t *testing.T) {
		src := filepath.Join(dir, "chinook.sqlite")
		data, err := os.ReadFile(filepath.Join(corpus, "chinook.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		dump := sqlite3CLI(t, nil, src, ".dump")
		dst := filepath.Join(dir, "chinook-loaded.sqlite")
		st := loadFile(t, dst, dump)
		if st.Bytes != int64(len(dump)) || st.Statements < 1000 {
			t.Errorf("stats = %+v", st)
		}
		if got := sqlite3CLI(t, nil, dst, ".dump"); got != dump {
			t.Errorf("reloaded chinook differs from the source (%d vs %d bytes of dump)", len(got), len(dump))
		}
	})

	t.Run("northwind", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(corpus, "northwind.sql"))
		if err != nil {
			t.Fatal(err)
		}
		// The file has CRLF line ends, and the shell drops the CR of
		// every input line, even inside string literals, where sqlload
		// keeps the bytes as written. Compare both on the CR-less text.
		script := strings.ReplaceAll(string(raw), "\r", "")
		ref := filepath.Join(dir, "northwind-ref.sqlite")
		// synchronous=OFF: the script has no transaction, and the shell
		// would otherwise sync after every statement.
		sqlite3CLI(t, strings.NewReader("PRAGMA synchronous=OFF;\n"+script), ref)
		dst := filepath.Join(dir, "northwind-loaded.sqlite")
		loadFile(t, dst, script)
		want := sqlite3CLI(t, nil, ref, ".dump")
		if got := sqlite3CLI(t, nil, dst, ".dump"); got != want {
			t.Errorf("loaded northwind differs from the sqlite3 shell's load (%d vs %d bytes of dump)", len(got), len(want))
		}
		if !strings.Contains(want, "INSERT INTO Orders") {
			t.Error("reference load looks empty")
		}

		// The original, CRLF text loads with its CRs kept in values.
		crlf := filepath.Join(dir, "northwind-crlf.sqlite")
		loadFile(t, crlf, string(raw))
		if got := sqlite3CLI(t, nil, crlf, "SELECT hex(Address) FROM Suppliers WHERE SupplierID=4"); !strings.Contains(got, "0D0A") {
			t.Errorf("CRLF inside a literal not kept: %s", got)
		}
	})
}

// TestSplitTooLongMemory: refusing a statement over the limit allocates
// about twice the limit, not the statement's size.
func TestSplitTooLongMemory(t *testing.T) {
	const max = 8 << 20
	in := io.MultiReader(strings.NewReader("INSERT INTO t VALUES('"), &repeatReader{b: 'x', n: 5 * max})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := newSplitter(in, max).next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*max+max/4 {
		t.Errorf("allocated %d bytes to refuse a statement over %d", got, max)
	}
}

// repeatReader reads n copies of b.
type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= len(p)
	return len(p), nil
}
