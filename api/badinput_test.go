package api

import (
	"bytes"

	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

// TestBadInput checks that each documented client mistake gets its
// status and a JSON {error: {code, message}} body, never a 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		c.MaxResultBytes = 64 << 10
		c.MaxImportBytes = 256 << 10
	})
	e.query("/query", `{"sql":"CREATE TABLE t(a, b UNIQUE); INSERT INTO t VALUES (1, 'x')"}`)
	e.query("/query", `{"sql":"CREATE TABLE big(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO big SELECT printf('%050d', i) FROM c"}`)
	running, _ := e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main"})

	var gz bytes.Buffer
	gz.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3})

	json := "application/json"
	tests := []struct {
		name         string
		method, path string
		body         string
		ctype        string
		hdr          []string
		status       int
		code         string
		msgHas       string
	}{
		{"bad json", "POST", "/query", `{"sql":`, json, nil, 400, "bad_json", ""},
		{"empty body", "POST", "/query", ``, json, nil, 400, "bad_json", "empty"},
		{"json array body", "POST", "/query", `[1]`, json, nil, 400, "bad_json", ""},
		{"unknown field", "POST", "/query", `{"sql":"SELECT 1","parms":[1]}`, json, nil, 400, "bad_json", "parms"},
		{"trailing data", "POST", "/query", `{"sql":"SELECT 1"} {}`, json, nil, 400, "bad_json", ""},
		{"missing sql", "POST", "/query", `{"params":[1]}`, json, nil, 400, "invalid_query", "sql"},
		{"sql and transaction", "POST", "/query", `{"sql":"SELECT 1","transaction":[{"sql":"SELECT 2"}]}`, json, nil, 400, "invalid_query", ""},
		{"empty transaction", "POST", "/query", `{"transaction":[]}`, json, nil, 400, "invalid_query", ""},
		{"sql syntax error", "POST", "/query", `{"sql":"SELEC 1"}`, json, nil, 400, "sql_error", "syntax error"},
		{"no such table", "POST", "/query/raw", `{"sql":"SELECT * FROM nope"}`, json, nil, 400, "sql_error", "no such table: nope"},
		{"constraint", "POST", "/query", `{"sql":"INSERT INTO t VALUES (2, 'x')"}`, json, nil, 400, "sql_error", "UNIQUE constraint failed"},
		{"param count", "POST", "/query", `{"sql":"SELECT ?, ?","params":[1]}`, json, nil, 400, "invalid_params", "2 parameters"},
		{"missing named param", "POST", "/query", `{"sql":"SELECT :a","params":{"b":1}}`, json, nil, 400, "invalid_params", ":a"},
		{"object param", "POST", "/query", `{"sql":"SELECT ?","params":[{"x":1}]}`, json, nil, 400, "invalid_params", ""},
		{"params not array", "POST", "/query", `{"sql":"SELECT ?","params":"x"}`, json, nil, 400, "invalid_params", ""},
		{"params with two statements", "POST", "/query", `{"sql":"SELECT ?; SELECT 2","params":[1]}`, json, nil, 400, "invalid_params", "single statement"},
		{"transaction error names item", "POST", "/query", `{"transaction":[{"sql":"SELECT 1"},{"sql":"SELEC"}]}`, json, nil, 400, "sql_error", "transaction[1]"},
		{"body over limit", "POST", "/query", `{"sql":"SELECT '` + strings.Repeat("x", 70<<10) + `'"}`, json, nil, 413, "too_large", ""},
		{"result over limit", "POST", "/query", `{"sql":"SELECT * FROM big"}`, json, nil, 400, "result_too_large", ""},
		{"unknown database", "POST", "/db/nope/query", `{"sql":"SELECT 1"}`, json, nil, 404, "unknown_database", "nope"},
		{"unknown format", "POST", "/export/dump", `{"format":"xml"}`, json, nil, 400, "invalid_argument", "xml"},
		{"unknown format legacy", "GET", "/export/dump?format=xml", ``, "", nil, 400, "invalid_argument", ""},
		{"unknown compression", "POST", "/export/dump?compress=lz4", ``, "", nil, 400, "invalid_argument", ""},
		{"chunk size zero", "POST", "/export/dump", `{"chunkSize":0}`, json, nil, 400, "invalid_argument", ""},
		{"chunk size too large", "POST", "/export/dump?chunkSize=1000001", ``, "", nil, 400, "invalid_argument", ""},
		{"chunk size not a number", "POST", "/export/dump?chunkSize=ten", ``, "", nil, 400, "invalid_argument", ""},
		{"preserveRowids not a boolean", "POST", "/export/dump?preserveRowids=maybe", ``, "", nil, 400, "invalid_argument", ""},
		{"unknown table in legacy export", "GET", "/export/dump?tables=nope", ``, "", nil, 404, "unknown_table", ""},
		{"unknown export field", "POST", "/export/dump", `{"formt":"sql"}`, json, nil, 400, "invalid_argument", "formt"},
		{"bad callback", "POST", "/export/dump", `{"callbackUrl":"ftp://x"}`, json, nil, 400, "invalid_argument", "callbackUrl"},
		{"bad consistency", "POST", "/export/dump", `{"consistency":"eventual"}`, json, nil, 400, "invalid_argument", ""},
		{"export body bad json", "POST", "/export/dump", `{`, json, nil, 400, "bad_json", ""},
		{"export body wrong type", "POST", "/export/dump", `{"format":7}`, json, nil, 400, "invalid_argument", "format"},
		{"export body media type", "POST", "/export/dump", `x`, "text/plain", nil, 415, "unsupported_media_type", ""},
		{"unknown table csv", "GET", "/export/csv/nope", ``, "", nil, 404, "unknown_table", ""},
		{"unknown table json", "GET", "/export/json/sqlite_schema", ``, "", nil, 404, "unknown_table", ""},
		{"unknown job", "GET", "/export/dump/status/nope", ``, "", nil, 404, "not_found", ""},
		{"job of another db", "GET", "/db/other/export/dump/status/" + running.ID, ``, "", nil, 404, "not_found", ""},
		{"download not completed", "GET", "/export/dump/download/" + running.ID, ``, "", nil, 404, "not_available", "not available yet"},
		{"cancel unknown job", "DELETE", "/export/dump/nope", ``, "", nil, 404, "not_found", ""},
		{"list bad limit", "GET", "/export/dump/jobs?limit=0", ``, "", nil, 400, "invalid_argument", "limit"},
		{"list bad state", "GET", "/export/dump/jobs?state=done", ``, "", nil, 400, "invalid_argument", "done"},
		{"import bad sql", "POST", "/import/dump", "CREATE TABLE z(x);\nINSERT INTO nope VALUES(1);\n", "application/sql", nil, 400, "sql_error", "statement 2"},
		{"import truncated", "POST", "/import/dump", "CREATE TABLE z(x);\nINSERT INTO z VALUES(1", "application/sql", nil, 400, "sql_error", "incomplete"},
		{"import over limit", "POST", "/import/dump", strings.Repeat("SELECT 1;\n", 30<<10), "application/sql", nil, 413, "too_large", ""},
		{"import over limit once decompressed", "POST", "/import/dump", gzipped(t, strings.Repeat("SELECT 1;\n", 30<<10)), "application/sql", nil, 413, "too_large", "decompressed"},
		{"import corrupt gzip", "POST", "/import/dump", gz.String(), "application/sql", nil, 400, "invalid_argument", ""},
		{"import unknown encoding", "POST", "/import/dump", "SELECT 1;", "application/sql", []string{"Content-Encoding", "br"}, 415, "unsupported_encoding", ""},
		{"import multipart without file", "POST", "/import/dump", "--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--B--\r\n", "multipart/form-data; boundary=B", nil, 400, "bad_multipart", ""},
		{"csv unknown table", "POST", "/import/csv/nope", "a\n1\n", "text/csv", nil, 404, "unknown_table", ""},
		{"csv unknown column", "POST", "/import/csv/t", "a,zz\n1,2\n", "text/csv", nil, 400, "unknown_column", "zz"},
		{"csv ragged", "POST", "/import/csv/t", "a,b\n1,2,3\n", "text/csv", nil, 400, "bad_csv", ""},
		{"csv empty", "POST", "/import/csv/t", "", "text/csv", nil, 400, "bad_csv", ""},
		{"csv constraint", "POST", "/import/csv/t", "a,b\n5,x\n", "text/csv", nil, 400, "sql_error", "row 1"},
		{"json import bad", "POST", "/import/json/t", `[{"a":1},`, json, nil, 400, "bad_json", ""},
		{"json import not array", "POST", "/import/json/t", `"x"`, json, nil, 400, "bad_json", ""},
		{"json import row not object", "POST", "/import/json/t", `[1]`, json, nil, 400, "bad_json", ""},
		{"no route", "GET", "/nope", ``, "", nil, 404, "not_found", ""},
		{"wrong method", "PUT", "/query", ``, "", nil, 405, "method_not_allowed", ""},
		{"range not satisfiable", "GET", "/export/dump/download/DONE", ``, "", []string{"Range", "bytes=1000-"}, 416, "range_not_satisfiable", ""},
	}
	done, _ := e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main"})
	e.jobs.complete(done.ID, []byte("0123456789"), true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.ReplaceAll(tt.path, "DONE", done.ID)
			hdr := tt.hdr
			if tt.ctype != "" {
				hdr = append(hdr, "Content-Type", tt.ctype)
			}
			code, b, h := e.call(tt.method, path, adminToken, tt.body, hdr...)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %.300s", code, tt.status, b)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			c, msg := errorCode(t, b)
			if c != tt.code {
				t.Errorf("code %q, want %q (%s)", c, tt.code, msg)
			}
			if !strings.Contains(msg, tt.msgHas) {
				t.Errorf("message %q, want it to contain %q", msg, tt.msgHas)
			}
		})
	}

	// Nothing of the failed imports was applied.
	res := e.query("/query", `{"sql":"SELECT count(*) AS n FROM sqlite_schema WHERE name = 'z'"}`)
	if got := mustJSON(res); got != `[{"n":0}]` {
		t.Errorf("failed import left schema behind: %s", got)
	}
	res = e.query("/query", `{"sql":"SELECT count(*) AS n FROM t"}`)
	if got := mustJSON(res); got != `[{"n":1}]` {
		t.Errorf("failed imports changed t: %s", got)
	}
}

// TestPanicIsJSON500 checks that a panicking handler answers a JSON 500
// and the server keeps serving.
func TestPanicIsJSON500(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Dumper = DumperFunc(func(ctx context.Context, w io.Writer, path string, opts dump.Options) error {
			panic("boom")
		})
	})
	code, b, _ := e.call("GET", "/export/dump", adminToken, "")
	if code != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", code, b)
	}
	if c, _ := errorCode(t, b); c != "internal" {
		t.Errorf("code %q", c)
	}
	if code, _, _ := e.call("GET", "/healthz", "", ""); code != http.StatusOK {
		t.Errorf("healthz after panic: %d", code)
	}
}

// TestLegacyDumpErrorMidStream checks that an error after the first
// byte cuts the response short instead of ending it cleanly.
func TestLegacyDumpErrorMidStream(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) {
		d.Dumper = DumperFunc(func(ctx context.Context, w io.Writer, path string, opts dump.Options) error {
			w.Write(bytes.Repeat([]byte("x"), 200<<10))
			return io.ErrUnexpectedEOF
		})
	})
	resp := e.do("GET", "/export/dump", adminToken, nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a failed stream read as complete")
	}
}

// TestCloseCancelsRequests checks that request contexts derive from the
// server's: Close cancels a request that outlives the shutdown timeout.
func TestCloseCancelsRequests(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	e := newEnv(t, func(c *Config, d *Deps) {
		c.ShutdownTimeout = 200 * time.Millisecond
		d.Dumper = DumperFunc(func(ctx context.Context, w io.Writer, path string, opts dump.Options) error {
			w.Write([]byte("partial"))
			close(started)
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		})
	})
	go func() {
		req, _ := http.NewRequest("GET", e.url+"/export/dump", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("dump never started")
	}
	t0 := time.Now()
	e.srv.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("request context not cancelled by Close")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Close took %s", d)
	}
}
