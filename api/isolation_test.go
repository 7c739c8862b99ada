package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// errText returns the message of an error response, whatever the shape
// of the error envelope.
func errText(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("error body is not JSON: %q", b)
	}
	return string(b)
}

// wantError checks a response's status and that its error mentions want.
func wantError(t *testing.T, what string, code int, b []byte, wantCode int, want string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("%s: %d %s, want %d", what, code, b, wantCode)
	}
	if msg := errText(t, b); !strings.Contains(msg, want) {
		t.Fatalf("%s: error %s does not mention %q", what, msg, want)
	}
}

// pollute runs a client request on every pooled connection at once, so
// that whatever it leaves behind would be on each of them.
func (e *testEnv) pollute(body string) {
	e.t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < 2*e.srv.cfg.PoolSize; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b, _ := e.call("POST", "/query", clientToken, body, "Content-Type", "application/json")
			if code != http.StatusOK {
				e.t.Errorf("client %s: %d %s", body, code, b)
			}
		}()
	}
	wg.Wait()
}

// TestRequestIsolation reproduces the findings of issue 10 item 1: what
// one request does to a pooled connection must not be seen by the next,
// whatever the roles.
func TestRequestIsolation(t *testing.T) {
	t.Run("client temp view does not shadow a table for admin", func(t *testing.T) {
		e := newEnv(t)
		e.query("/query", `{"sql":"CREATE TABLE Artist(ArtistId INTEGER PRIMARY KEY, Name TEXT); INSERT INTO Artist VALUES (1, 'AC/DC')"}`)
		e.pollute(`{"sql":"CREATE TEMP VIEW IF NOT EXISTS Artist AS SELECT 1 AS ArtistId, 'PWNED' AS Name"}`)
		for i := 0; i < 2*e.srv.cfg.PoolSize; i++ {
			if got := mustJSON(e.query("/query", `{"sql":"SELECT Name FROM Artist"}`)); got != `[{"Name":"AC/DC"}]` {
				t.Fatalf("admin sees %s", got)
			}
		}
	})

	t.Run("client temp trigger does not swallow admin writes", func(t *testing.T) {
		e := newEnv(t)
		e.query("/query", `{"sql":"CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)"}`)
		e.pollute(`{"sql":"CREATE TEMP VIEW IF NOT EXISTS orders AS SELECT * FROM main.orders; CREATE TEMP TRIGGER IF NOT EXISTS swallow INSTEAD OF INSERT ON orders BEGIN SELECT 1; END"}`)
		for i := 0; i < 2; i++ {
			e.query("/query", `{"sql":"INSERT INTO orders(item) VALUES ('q')"}`)
			if code, b, _ := e.call("POST", "/import/csv/orders", adminToken, "item\ncsv\n", "Content-Type", "text/csv"); code != 200 {
				t.Fatalf("csv import: %d %s", code, b)
			}
			if code, b, _ := e.call("POST", "/import/json/orders", adminToken, `[{"item":"json"}]`, "Content-Type", "application/json"); code != 200 {
				t.Fatalf("json import: %d %s", code, b)
			}
			if code, b, _ := e.call("POST", "/import/dump", adminToken, "INSERT INTO orders(item) VALUES('dump');", "Content-Type", "application/sql"); code != 200 {
				t.Fatalf("dump import: %d %s", code, b)
			}
		}
		if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n FROM main.orders"}`)); got != `[{"n":8}]` {
			t.Fatalf("main.orders after 8 admin inserts: %s", got)
		}
	})

	t.Run("an attached database does not outlive its request", func(t *testing.T) {
		e := newEnv(t)
		side := filepath.Join(e.dir, "side.db")
		e.query("/query", `{"sql":"ATTACH DATABASE '`+side+`' AS side; CREATE TABLE side.secret(x); INSERT INTO side.secret VALUES ('s')"}`)
		// An import may not attach at all.
		code, b, _ := e.call("POST", "/import/dump", adminToken, "ATTACH DATABASE '"+side+"' AS side2;", "Content-Type", "application/sql")
		wantError(t, "import with ATTACH", code, b, 400, "ATTACH")
		for i := 0; i < 2*e.srv.cfg.PoolSize; i++ {
			code, b, _ := e.call("POST", "/query", clientToken, `{"sql":"SELECT x FROM side.secret"}`)
			wantError(t, "client reads the attached database", code, b, 400, "no such table")
			if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n FROM pragma_database_list WHERE name NOT IN ('main', 'temp')"}`)); got != `[{"n":0}]` {
				t.Fatalf("databases: %s", got)
			}
		}
	})

	t.Run("pragmas and transactions do not outlive their request", func(t *testing.T) {
		e := newEnv(t)
		e.query("/query", `{"sql":"CREATE TABLE t(a)"}`)
		for i := 0; i < 2*e.srv.cfg.PoolSize; i++ {
			e.query("/query", `{"sql":"PRAGMA query_only=1"}`)
			e.query("/query", `{"sql":"BEGIN; INSERT INTO t VALUES (0)"}`)
		}
		for i := 0; i < 2*e.srv.cfg.PoolSize; i++ {
			if code, b, _ := e.call("POST", "/query", clientToken, `{"sql":"INSERT INTO t VALUES (1)"}`); code != 200 {
				t.Fatalf("client write after admin PRAGMA query_only: %d %s", code, b)
			}
		}
		if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n, sum(a) AS s FROM t"}`)); got != fmt.Sprintf(`[{"n":%d,"s":%d}]`, 2*e.srv.cfg.PoolSize, 2*e.srv.cfg.PoolSize) {
			t.Fatalf("t: %s", got)
		}
	})
}

// TestQueryValueLimit: a value larger than a response may be is refused
// before SQLite builds it, at once, even several at a time.
func TestQueryValueLimit(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b, _ := e.call("POST", "/query", clientToken, `{"sql":"SELECT zeroblob(900000000)"}`)
			if code != 400 || !strings.Contains(errText(t, b), "too big") {
				t.Errorf("zeroblob: %d %s, want 400 too big", code, b)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three zeroblob(900000000) took %v", d)
	}
	// A value within the limit but over what is left of the response.
	code, b, _ := e.call("POST", "/query", adminToken, `{"sql":"SELECT randomblob(700000) AS a, randomblob(700000) AS b"}`)
	wantError(t, "two values over the budget", code, b, 400, "over the configured limit")
}

// TestQueryMemoryShared: concurrent queries draw on one memory budget;
// a query that finds it spent gets 503, and gets its answer once the
// memory is free again.
func TestQueryMemoryShared(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.MaxQueryMemory = 2 << 20 })
	held := e.srv.cfg.MaxQueryMemory - 512<<10
	if !e.srv.queryMem.reserve(held) {
		t.Fatal("reserve")
	}
	body := `{"sql":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) SELECT i, hex(randomblob(200)) AS h FROM n"}`
	code, b, _ := e.call("POST", "/query", clientToken, body)
	wantError(t, "query while memory is held", code, b, 503, "memory")
	e.srv.queryMem.release(held)
	if code, b, _ := e.call("POST", "/query", clientToken, body); code != 200 {
		t.Fatalf("query with memory free: %d %.200s", code, b)
	}
	if u := e.srv.queryMem.used.Load(); u != 0 {
		t.Errorf("%d bytes still reserved after the queries", u)
	}
}

// TestImportStalled: an import whose body stops arriving is aborted
// after StallTimeout (the minimum body rate's window), and releases the
// write lock it holds.
func TestImportStalled(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.StallTimeout = 500 * time.Millisecond })
	e.query("/query", `{"sql":"CREATE TABLE t(a)"}`)
	for _, path := range []string{"/import/dump", "/import/csv/t"} {
		t.Run(path, func(t *testing.T) {
			pr, pw := io.Pipe()
			done := make(chan int, 1)
			go func() {
				req, _ := http.NewRequest("POST", e.url+path, pr)
				req.Header.Set("Authorization", "Bearer "+adminToken)
				req.Header.Set("Content-Type", "application/sql")
				if strings.Contains(path, "csv") {
					req.Header.Set("Content-Type", "text/csv")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			first := "INSERT INTO t VALUES (1);\n"
			if strings.Contains(path, "csv") {
				first = "a\n1\n"
			}
			pw.Write([]byte(first + strings.Repeat(" ", 70<<10)))
			// The import now holds the write lock and the body stalls.
			start := time.Now()
			code, b, _ := e.call("POST", "/query", clientToken, `{"sql":"INSERT INTO t VALUES (2)"}`)
			if code != 200 {
				t.Fatalf("client write during a stalled import: %d %s", code, b)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("client write waited %v", d)
			}
			select {
			case code := <-done:
				t.Logf("stalled import answered %d after %v", code, time.Since(start))
				if code != http.StatusRequestTimeout && code != 0 {
					t.Errorf("stalled import answered %d", code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the stalled import did not end")
			}
			pw.Close()
		})
	}
	if got := mustJSON(e.query("/query", `{"sql":"SELECT group_concat(a) AS a FROM t"}`)); got != `[{"a":"2,2"}]` {
		t.Errorf("t = %s: a stalled import committed", got)
	}
}

// TestImportStatementLimit: a statement of /import/dump, or a row of
// /import/csv and /import/json, over MaxImportStatementBytes is refused
// with 413 and nothing is imported.
func TestImportStatementLimit(t *testing.T) {
	const limit = 256 << 10
	e := newEnv(t, func(c *Config, _ *Deps) { c.MaxImportStatementBytes = limit })
	e.query("/query", `{"sql":"CREATE TABLE t(a)"}`)
	big := strings.Repeat("x", 2*limit)
	// A row is refused once twice the limit has been read since the
	// previous one (decoders read ahead).
	huge := strings.Repeat("x", 3*limit)
	tests := []struct{ path, ctype, body string }{
		{"/import/dump", "application/sql", "INSERT INTO t VALUES ('small');\nINSERT INTO t VALUES ('" + big + "');\n"},
		{"/import/dump", "application/sql", "INSERT INTO t VALUES (length(zeroblob(" + fmt.Sprint(2*limit) + ")));\n"},
		{"/import/csv/t", "text/csv", "a\nsmall\n" + huge + "\n"},
		{"/import/json/t", "application/json", `[{"a":"small"},{"a":"` + huge + `"}]`},
	}
	for _, tt := range tests {
		code, b, _ := e.call("POST", tt.path, adminToken, tt.body, "Content-Type", tt.ctype)
		want := 413
		if strings.Contains(tt.body, "zeroblob") {
			want = 400 // a value built over the limit: SQLite's "too big"
		}
		wantError(t, tt.path, code, b, want, "")
	}
	if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n FROM t"}`)); got != `[{"n":0}]` {
		t.Errorf("t = %s after refused imports", got)
	}
	// Just under the limit loads.
	ok := strings.Repeat("y", limit-100)
	if code, b, _ := e.call("POST", "/import/dump", adminToken, "INSERT INTO t VALUES ('"+ok+"');", "Content-Type", "application/sql"); code != 200 {
		t.Fatalf("statement under the limit: %d %s", code, b)
	}
}

// TestImportDumpUntrusted: /import/dump refuses what a dump never needs
// and never commits a database that fails quick_check.
func TestImportDumpUntrusted(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE t(a); INSERT INTO t VALUES (1)"}`)
	evil := filepath.Join(e.dir, "evil.db")
	tests := []struct{ name, dump, want string }{
		{"attach", "ATTACH DATABASE '" + evil + "' AS e; CREATE TABLE e.x(a);", "ATTACH"},
		{"vacuum into", "VACUUM INTO '" + evil + "';", "VACUUM"},
		{"writable_schema", "PRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema VALUES('table','t2','t2',2,'CREATE TABLE t2(a)');\n", "sqlite_master"},
		{"writable_schema row that does not load", "PRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','t','t',0,'CREATE VIRTUAL TABLE t USING fts5(a)');\nPRAGMA writable_schema=OFF;\n", "sqlite_schema"},
		{"pragma", "PRAGMA journal_mode=OFF;", "journal_mode"},
		{"temp trigger", "CREATE TEMP TRIGGER tr BEFORE INSERT ON t BEGIN SELECT 1; END;", "TEMP"},
	}
	for _, tt := range tests {
		code, b, _ := e.call("POST", "/import/dump", adminToken, tt.dump, "Content-Type", "application/sql")
		wantError(t, tt.name, code, b, 400, tt.want)
		if got := mustJSON(e.query("/query", `{"sql":"PRAGMA integrity_check"}`)); got != `[{"integrity_check":"ok"}]` {
			t.Fatalf("%s: integrity_check %s", tt.name, got)
		}
		if got := mustJSON(e.query("/query", `{"sql":"SELECT a FROM t"}`)); got != `[{"a":1}]` {
			t.Fatalf("%s: t = %s", tt.name, got)
		}
	}
	if _, err := os.Stat(evil); err == nil {
		t.Fatalf("a dump created %s", evil)
	}
	// What sluice dump and sqlite3 .dump write for a virtual table loads.
	vt := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nPRAGMA writable_schema=ON;\n" +
		"INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','ft','ft',0,'CREATE VIRTUAL TABLE ft USING fts5(body)');\n" +
		"CREATE TABLE IF NOT EXISTS 'ft_data'(id INTEGER PRIMARY KEY, block BLOB);\nINSERT INTO ft_data VALUES(1,X'0101');\nINSERT INTO ft_data VALUES(10,X'000000000101010001010101');\nINSERT INTO ft_data VALUES(137438953473,X'0000000b0330686901020204');\n" +
		"CREATE TABLE IF NOT EXISTS 'ft_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;\nINSERT INTO ft_idx VALUES(1,X'',2);\n" +
		"CREATE TABLE IF NOT EXISTS 'ft_content'(id INTEGER PRIMARY KEY, c0);\nINSERT INTO ft_content VALUES(1,'hi');\n" +
		"CREATE TABLE IF NOT EXISTS 'ft_docsize'(id INTEGER PRIMARY KEY, sz BLOB);\nINSERT INTO ft_docsize VALUES(1,X'01');\n" +
		"CREATE TABLE IF NOT EXISTS 'ft_config'(k PRIMARY KEY, v) WITHOUT ROWID;\nINSERT INTO ft_config VALUES('version',4);\n" +
		"PRAGMA writable_schema=OFF;\nCOMMIT;\n"
	if code, b, _ := e.call("POST", "/import/dump", adminToken, vt, "Content-Type", "application/sql"); code != 200 {
		t.Fatalf("virtual table dump: %d %s", code, b)
	}
	if got := mustJSON(e.query("/query", `{"sql":"SELECT body FROM ft WHERE ft MATCH 'hi'"}`)); got != `[{"body":"hi"}]` {
		t.Errorf("fts: %s", got)
	}
}

func TestJournalSizeLimit(t *testing.T) {
	e := newEnv(t)
	want := fmt.Sprintf(`[{"journal_size_limit":%d}]`, DefaultJournalSizeLimit)
	for i := 0; i < 3; i++ {
		if got := mustJSON(e.query("/query", `{"sql":"PRAGMA journal_size_limit"}`)); got != want {
			t.Fatalf("journal_size_limit = %s, want %s", got, want)
		}
		// Changed by a request, it is back for the next one.
		e.query("/query", `{"sql":"PRAGMA journal_size_limit=5"}`)
	}
}

// TestQueryTimeoutWhileBuildingValue: the query timeout interrupts
// SQLite while it builds a value, however long that would take.
func TestQueryTimeoutWhileBuildingValue(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.QueryTimeout = 300 * time.Millisecond })
	start := time.Now()
	// Quadratic: each row copies the string of the one before.
	code, b, _ := e.call("POST", "/query", clientToken, `{"sql":"WITH RECURSIVE c(i, s) AS (SELECT 1, '' UNION ALL SELECT i + 1, s || printf('%.*c', 100, 'x') FROM c WHERE i < 300000) SELECT length(max(s)) AS n FROM c"}`)
	wantError(t, "slow value", code, b, 503, "timed out")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 300ms query timeout answered after %v", d)
	}
}
