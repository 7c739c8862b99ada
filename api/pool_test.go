package api

import (
	"context"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
)

// TestPoolReusesOnlyCleanConnections: a request that only reads and
// writes main gives its connection back for reuse; one that leaves any
// connection state gets its connection closed, and the next request a
// new one.
func TestPoolReusesOnlyCleanConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	opens := 0
	p := newConnPool("test", 1, func() (*sqlite.Conn, error) {
		opens++
		return sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	})
	t.Cleanup(func() { p.close() })
	run := func(sql string, client bool) {
		t.Helper()
		conn, err := p.take(context.Background(), connUse{client: client})
		if err != nil {
			t.Fatal(err)
		}
		// The error does not matter: refused statements change nothing.
		_ = exec(conn, sql)
		p.put(conn)
	}
	run("CREATE TABLE t(a)", false)
	tests := []struct {
		sql    string
		client bool
		reused bool
	}{
		{"INSERT INTO t VALUES (1)", true, true},
		{"SELECT * FROM t; PRAGMA table_info(t); PRAGMA user_version", true, true},
		{"BEGIN; INSERT INTO t VALUES (2)", false, true}, // rolled back
		{"CREATE TEMP TABLE x(a)", true, false},
		{"CREATE TEMP TRIGGER tr AFTER INSERT ON main.t BEGIN SELECT 1; END", true, false},
		{"ATTACH ':memory:' AS m", false, false},
		{"ATTACH ':memory:' AS m", true, true}, // refused for a client
		{"PRAGMA cache_size=10", false, false},
		{"PRAGMA user_version=3", false, false},
		{"PRAGMA user_version=3", true, true}, // refused for a client
	}
	for _, tt := range tests {
		before := opens
		run(tt.sql, tt.client)
		run("SELECT 1", false)
		if reused := opens == before; reused != tt.reused {
			t.Errorf("%q (client %v): reused = %v, want %v", tt.sql, tt.client, reused, tt.reused)
		}
	}
}
