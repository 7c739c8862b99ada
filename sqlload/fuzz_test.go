package sqlload

import (
	"errors"
	"io"
	"strings"
	"testing"

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
