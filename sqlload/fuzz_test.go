package sqlload

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteComplete calls SQLite's own sqlite3_complete.
func sqliteComplete(tls *libc.TLS, s string) bool {
	cs, err := libc.CString(s)
	if err != nil {
		panic(err)
	}
	defer libc.Xfree(tls, cs)
	return sqlite3.Xsqlite3_complete(tls, cs) != 0
}

// FuzzSplit checks the splitter against sqlite3_complete: when the
// splitter reports the input incomplete, SQLite must agree; when it
// returns statements, each must be complete for SQLite and the input
// as a whole too.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"SELECT 1;",
		"INSERT INTO t VALUES('a;b'); -- c;\n",
		"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;",
		"CREATE TEMP TRIGGER t BEFORE DELETE ON x BEGIN SELECT CASE WHEN 1 THEN 2 END; END ;",
		"EXPLAIN CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END;",
		"SELECT [a;b], \"c;d\", `e;f` FROM t /* ; */;",
		"/*/ ; */ SELECT 1;",
		"SELECT 1 -",
		"SELECT 1 /",
		"create trigger end begin; end;",
		"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;\vEND;",
		"SELECT 1; /* unterminated",
	} {
		f.Add(s)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	f.Fuzz(func(t *testing.T, in string) {
		if strings.IndexByte(in, 0) >= 0 {
			return // C strings stop at NUL; the splitter does not
		}
		sp := newSplitter(strings.NewReader(in), 1<<20)
		var stmts []string
		for {
			s, _, err := sp.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if errors.Is(err, ErrTooLong) {
					return
				}
				if sqliteComplete(tls, in) {
					t.Fatalf("splitter says incomplete, sqlite3_complete says complete: %q", in)
				}
				return
			}
			stmts = append(stmts, string(s))
		}
		if sp.n != int64(len(in)) {
			t.Fatalf("consumed %d of %d bytes", sp.n, len(in))
		}
		for _, s := range stmts {
			if !sqliteComplete(tls, s) {
				t.Fatalf("statement %q of %q is not complete for SQLite", s, in)
			}
		}
		// What follows the last statement is only whitespace and
		// comments (an unterminated /* too, which sqlite3_complete
		// calls incomplete but holds nothing to run), so the statements
		// together must be complete.
		if all := strings.Join(stmts, ""); len(stmts) > 0 && !sqliteComplete(tls, all) {
			t.Fatalf("splitter found complete statements %q, sqlite3_complete disagrees on %q", stmts, all)
		}
	})
}

// FuzzSplitChunks checks that the splitter's statements do not depend on
// how the input arrives: read whole, in chunks of a fuzzed size, or one
// byte at a time, the statements and the bytes consumed are the same;
// and that the limit is exact: one byte under the longest statement
// refuses it. (Whitespace and comments between statements count towards
// the next one, so the longest statement is not always enough.)
func FuzzSplitChunks(f *testing.F) {
	for _, s := range []string{
		"SELECT 1; SELECT 2;",
		"INSERT INTO t VALUES('a;b', X'3B', \"c;d\", [e;f], `g;h`); -- ;\n/* ; */",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2;",
		"PRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft USING fts5(a)');\nPRAGMA writable_schema=OFF;",
		"SELECT 'unterminated",
		"EXPLAIN CREATE TEMP TRIGGER x BEFORE DELETE ON t BEGIN DELETE FROM u; END ; ;;",
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		split := func(r io.Reader, max int) ([]string, int64, error) {
			sp := newSplitter(r, max)
			var out []string
			for {
				s, _, err := sp.next()
				if err == io.EOF {
					return out, sp.n, nil
				}
				if err != nil {
					return out, sp.n, err
				}
				out = append(out, string(s))
			}
		}
		want, wantN, wantErr := split(strings.NewReader(in), 1<<20)
		for _, r := range []io.Reader{
			iotest.OneByteReader(strings.NewReader(in)),
			&chunkReader{s: in, n: int(chunk%64) + 1},
		} {
			got, n, err := split(r, 1<<20)
			if !reflect.DeepEqual(got, want) || n != wantN || (err == nil) != (wantErr == nil) {
				t.Fatalf("chunked: %q, %d, %v; whole: %q, %d, %v", got, n, err, want, wantN, wantErr)
			}
		}
		longest := 0
		for _, s := range want {
			longest = max(longest, len(s))
		}
		if wantErr != nil || longest == 0 {
			return
		}
		if got, _, err := split(strings.NewReader(in), len(in)); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("limit %d (the whole input): %q, %v", len(in), got, err)
		}
		if _, _, err := split(strings.NewReader(in), longest-1); !errors.Is(err, ErrTooLong) {
			t.Fatalf("limit %d (under the longest statement): %v, want ErrTooLong", longest-1, err)
		}
	})
}

// chunkReader returns s n bytes at a time.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}

// FuzzLoadUntrusted loads arbitrary scripts, as restore and /import/dump
// do: whatever the script, no file but the database (and its journal)
// appears, no database stays attached, the temp schema stays empty, and
// a load that succeeds leaves a database quick_check calls ok.
func FuzzLoadUntrusted(f *testing.F) {
	for _, s := range []string{
		"CREATE TABLE t(a); INSERT INTO t VALUES(1);",
		"ATTACH 'x.db' AS x; CREATE TABLE x.t(a);",
		"VACUUM INTO 'copy.db';",
		"PRAGMA writable_schema=ON; INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft USING fts5(a)'); PRAGMA writable_schema=OFF;",
		"PRAGMA writable_schema=ON; UPDATE sqlite_schema SET rootpage=1;",
		"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
		"BEGIN; CREATE TABLE u(a); COMMIT; ROLLBACK;",
		"PRAGMA foreign_keys=ON; PRAGMA journal_mode=OFF;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		dir := t.TempDir()
		conn := openMem(t, filepath.Join(dir, "db.sqlite"))
		_, err := Load(context.Background(), conn, strings.NewReader(script), Options{Atomic: true, Check: true, MaxStatementBytes: 1 << 16})
		if err == nil {
			if got := query(t, conn, "PRAGMA quick_check"); !reflect.DeepEqual(got, []string{"TEXT:ok"}) {
				t.Fatalf("quick_check = %v after loading %q", got, script)
			}
		}
		if got := query(t, conn, "SELECT count(*) FROM temp.sqlite_schema"); got[0] != "INTEGER:0" {
			t.Fatalf("temp objects left by %q", script)
		}
		if got := query(t, conn, "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main','temp')"); got[0] != "INTEGER:0" {
			t.Fatalf("databases attached by %q", script)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "db.sqlite") {
				t.Fatalf("%q created %s", script, e.Name())
			}
		}
	})
}
