package sqlload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
)

// TestLoadRefusesUntrusted loads hostile dumps: each must fail with
// ErrNotAllowed (a caller's mistake, sluice.ErrInvalid), leave the
// database as it was, create no file and leave no state on the
// connection.
func TestLoadRefusesUntrusted(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	loadFile(t, other, "CREATE TABLE victim(a); INSERT INTO victim VALUES (1);")
	evil := filepath.Join(dir, "evil.db")
	// want is ErrNotAllowed's text, or SQLite's own refusal where
	// SQLite refuses before the authorizer is asked.
	const sqliteRefuses = "may not be modified"
	tests := []struct {
		name, script string
		want         string
	}{
		{"attach other", "ATTACH DATABASE '" + other + "' AS o; DELETE FROM o.victim;", "not allowed"},
		{"attach new file", "ATTACH '" + evil + "' AS e; CREATE TABLE e.x(a);", "not allowed"},
		{"vacuum into", "VACUUM INTO '" + evil + "';", "VACUUM"},
		{"detach", "DETACH DATABASE temp;", "not allowed"},
		{"writable_schema update", "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = 'CREATE TABLE t(b)' WHERE name = 't';", sqliteRefuses},
		{"writable_schema arbitrary row", "PRAGMA writable_schema=ON; INSERT INTO sqlite_schema VALUES('table','x','x',2,'CREATE TABLE x(a)');", sqliteRefuses},
		{"writable_schema non-virtual row", "PRAGMA writable_schema=ON; INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','x','x',2,'CREATE TABLE x(a)');", sqliteRefuses},
		{"virtual row naming another table", "PRAGMA writable_schema=ON; INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','x','x',0,'CREATE VIRTUAL TABLE t USING fts5(a)'); PRAGMA writable_schema=OFF;", "not allowed"},
		{"virtual row shadowing a table", "PRAGMA writable_schema=ON; INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','t','t',0,'CREATE VIRTUAL TABLE t USING fts5(a)'); PRAGMA writable_schema=OFF;", "not allowed"},
		{"writable_schema reset", "PRAGMA writable_schema=RESET;", "not allowed"},
		{"pragma journal_mode", "PRAGMA journal_mode=OFF;", "not allowed"},
		{"pragma read", "PRAGMA user_version;", "not allowed"},
		{"pragma set", "PRAGMA user_version=7;", "not allowed"},
		{"temp table", "CREATE TEMP TABLE x(a);", "not allowed"},
		{"temp view", "CREATE VIEW temp.v AS SELECT 1;", "not allowed"},
		{"temp trigger on main", "CREATE TEMP TRIGGER tr BEFORE INSERT ON t BEGIN SELECT 1; END;", "not allowed"},
		{"load_extension", "SELECT load_extension('" + evil + "');", "not authorized"},
	}
	for _, tt := range tests {
		for _, atomic := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/atomic=%v", tt.name, atomic), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "db.sqlite")
				loadFile(t, path, "CREATE TABLE t(a); INSERT INTO t VALUES (42);")
				conn := openMem(t, path)
				_, err := Load(context.Background(), conn, strings.NewReader(tt.script), Options{Atomic: atomic, Check: true})
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				if tt.want == "not allowed" && !errors.Is(err, sluice.ErrInvalid) {
					t.Errorf("err = %v, want it to wrap sluice.ErrInvalid", err)
				}
				if got := query(t, conn, "SELECT a FROM t"); !reflect.DeepEqual(got, []string{"INTEGER:42"}) {
					t.Errorf("t = %v after a refused dump", got)
				}
				if got := query(t, conn, "PRAGMA quick_check"); !reflect.DeepEqual(got, []string{"TEXT:ok"}) {
					t.Errorf("quick_check = %v", got)
				}
				if got := query(t, conn, "SELECT count(*) FROM temp.sqlite_schema"); got[0] != "INTEGER:0" {
					t.Errorf("temp schema has %v objects", got)
				}
				if got := query(t, conn, "SELECT name FROM pragma_database_list ORDER BY seq"); !reflect.DeepEqual(got, []string{"TEXT:main"}) && !reflect.DeepEqual(got, []string{"TEXT:main", "TEXT:temp"}) {
					t.Errorf("databases = %v", got)
				}
				if _, err := os.Stat(evil); err == nil {
					t.Fatalf("the dump created %s", evil)
				}
			})
		}
	}
	conn := openMem(t, other)
	if got := query(t, conn, "SELECT a FROM victim"); !reflect.DeepEqual(got, []string{"INTEGER:1"}) {
		t.Errorf("other database changed: %v", got)
	}
}

// TestLoadVirtualTableRows checks the one sqlite_schema write dumps
// make, in both the sqlite_schema and the older sqlite_master spelling.
func TestLoadVirtualTableRows(t *testing.T) {
	for _, tbl := range []string{"sqlite_schema", "sqlite_master"} {
		conn := openMem(t, "")
		script := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nPRAGMA writable_schema=ON;\n" +
			"INSERT INTO " + tbl + "(type,name,tbl_name,rootpage,sql)VALUES('table','r','r',0,'CREATE VIRTUAL TABLE r USING rtree(id, a, b)');\n" +
			"CREATE TABLE IF NOT EXISTS \"r_rowid\"(rowid INTEGER PRIMARY KEY,nodeno);\n" +
			"CREATE TABLE IF NOT EXISTS \"r_node\"(nodeno INTEGER PRIMARY KEY,data);\n" +
			"INSERT INTO r_node VALUES(1,zeroblob(1024));\n" +
			"CREATE TABLE IF NOT EXISTS \"r_parent\"(nodeno INTEGER PRIMARY KEY,parentnode);\n" +
			"PRAGMA writable_schema=OFF;\nCOMMIT;\n"
		if _, err := Load(context.Background(), conn, strings.NewReader(script), Options{Atomic: true, Check: true}); err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		execSimple(conn, "INSERT INTO r VALUES (1, 0, 1)")
		if got := query(t, conn, "SELECT id FROM r WHERE a <= 0.5"); !reflect.DeepEqual(got, []string{"INTEGER:1"}) {
			t.Errorf("%s: rtree = %v", tbl, got)
		}
		if got := query(t, conn, "PRAGMA writable_schema"); got[0] != "INTEGER:0" {
			t.Errorf("writable_schema left %v", got)
		}
	}
}

func TestParseVTableRow(t *testing.T) {
	ok := "INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','f''t','f''t',0,'CREATE VIRTUAL TABLE \"f''t\" USING fts5(a)');"
	if vt, err := parseVTableRow(ok); err != nil || vt.name != "f't" || vt.sql != `CREATE VIRTUAL TABLE "f't" USING fts5(a)` {
		t.Errorf("parse %q = %+v, %v", ok, vt, err)
	}
	for _, bad := range []string{
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','b',0,'CREATE VIRTUAL TABLE a USING fts5(a)')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('index','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',3,'CREATE VIRTUAL TABLE a USING fts5(a)')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',0,'CREATE TABLE a(x)')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)'),('table','b','b',2,'x')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)SELECT 'table','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)'",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)'); DELETE FROM sqlite_schema",
		"INSERT INTO t(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)')",
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','a','a',0,'CREATE VIRTUAL TABLE a USING fts5(a)",
	} {
		if vt, err := parseVTableRow(bad); err == nil {
			t.Errorf("parse %q = %+v, want refused", bad, vt)
		}
	}
}
