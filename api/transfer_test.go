package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice/sqlload"
	"zombiezen.com/go/sqlite"
)

const testDump = `PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, note);
INSERT INTO people VALUES(1,'Ann','semi;colon');
INSERT INTO people VALUES(2,'Bob',X'0001');
CREATE TRIGGER people_ai AFTER INSERT ON people BEGIN
  UPDATE people SET note = 'trig; ' || new.name WHERE id = new.id;
END;
COMMIT;
`

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func zstded(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func multipartBody(t *testing.T, field, name, content string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("comment", "ignored")
	fw, err := mw.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(content))
	mw.Close()
	return b.String(), mw.FormDataContentType()
}

func TestImportDump(t *testing.T) {
	mp, mpType := multipartBody(t, "sqlFile", "dump.sql", testDump)
	tests := []struct {
		name, body string
		hdr        []string
	}{
		{"raw", testDump, []string{"Content-Type", "application/sql"}},
		{"gzip by magic", gzipped(t, testDump), nil},
		{"gzip by header", gzipped(t, testDump), []string{"Content-Encoding", "gzip"}},
		{"zstd", zstded(t, testDump), nil},
		{"multipart", mp, []string{"Content-Type", mpType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			code, b, _ := e.call("POST", "/db/other/import/dump", adminToken, tt.body, tt.hdr...)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, b)
			}
			var res struct{ Result importResult }
			json.Unmarshal(b, &res)
			if res.Result.Statements != 5 { // PRAGMA, CREATE, 2 INSERT, TRIGGER
				t.Errorf("statements = %d: %s", res.Result.Statements, b)
			}
			got := mustJSON(e.query("/db/other/query", `{"sql":"SELECT id, name, note FROM people ORDER BY id"}`))
			if want := `[{"id":1,"name":"Ann","note":"semi;colon"},{"id":2,"name":"Bob","note":"AAE="}]`; got != want {
				t.Errorf("got %s", got)
			}
			e.query("/db/other/query", `{"sql":"INSERT INTO people(id, name) VALUES (3, 'Cy')"}`)
			if got := mustJSON(e.query("/db/other/query", `{"sql":"SELECT note FROM people WHERE id = 3"}`)); got != `[{"note":"trig; Cy"}]` {
				t.Errorf("trigger not loaded: %s", got)
			}
		})
	}
}

func TestImportCSVAndJSON(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE t(a INTEGER, b TEXT, c)"}`)
	csvBody := "a,b,c\n1,\"x, \"\"quoted\"\"\",\n2,,3.5\n"
	code, b, _ := e.call("POST", "/import/csv/t", adminToken, csvBody, "Content-Type", "text/csv")
	if code != 200 || !strings.Contains(string(b), `"rows":2`) {
		t.Fatalf("csv: %d %s", code, b)
	}
	code, b, _ = e.call("POST", "/import/json/t", adminToken, `[{"a":3,"b":"y","c":{"k":[1]}},{"a":4}]`, "Content-Type", "application/json")
	if code != 200 || !strings.Contains(string(b), `"rows":2`) {
		t.Fatalf("json: %d %s", code, b)
	}
	mp, mpType := multipartBody(t, "file", "rows.json", `{"data":[{"a":5,"b":null}]}`)
	code, b, _ = e.call("POST", "/import/json/t", adminToken, mp, "Content-Type", mpType)
	if code != 200 {
		t.Fatalf("json multipart: %d %s", code, b)
	}
	got := mustJSON(e.query("/query", `{"sql":"SELECT a, typeof(a) AS ta, b, c, typeof(c) AS tc FROM t ORDER BY a"}`))
	want := `[{"a":1,"b":"x, \"quoted\"","c":null,"ta":"integer","tc":"null"},` +
		`{"a":2,"b":null,"c":"3.5","ta":"integer","tc":"text"},` +
		`{"a":3,"b":"y","c":"{\"k\":[1]}","ta":"integer","tc":"text"},` +
		`{"a":4,"b":null,"c":null,"ta":"integer","tc":"null"},` +
		`{"a":5,"b":null,"c":null,"ta":"integer","tc":"null"}]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A failing row rolls back the whole import.
	code, _, _ = e.call("POST", "/import/json/t", adminToken, `[{"a":6},{"zz":1}]`, "Content-Type", "application/json")
	if code != 400 {
		t.Fatalf("bad column: %d", code)
	}
	if got := mustJSON(e.query("/query", `{"sql":"SELECT count(*) AS n FROM t"}`)); got != `[{"n":5}]` {
		t.Errorf("partial import kept: %s", got)
	}
}

// TestTableExports streams tables as CSV and JSON and checks the values.
func TestTableExports(t *testing.T) {
	e := newEnv(t)
	e.query("/db/other/query", `{"sql":"CREATE TABLE \"we,ird\"(a, b); INSERT INTO \"we,ird\" VALUES (1, 'x,y'), (2.5, NULL), (X'01', 'l\"q')"}`)

	resp := e.do("GET", "/db/other/export/csv/we,ird", clientToken, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %s %s", resp.StatusCode, resp.Header, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "we,ird_export.csv") {
		t.Errorf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(recs), `[["a","b"],["1","x,y"],["2.5",""],["AQ==","l\"q"]]`; got != want {
		t.Errorf("csv rows %s, want %s", got, want)
	}

	code, b, _ := e.call("GET", "/db/other/export/json/we,ird", clientToken, "")
	if code != 200 {
		t.Fatalf("json: %d %s", code, b)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("json export does not parse: %v\n%s", err, b)
	}
	if got, want := mustJSON(rows), `[{"a":1,"b":"x,y"},{"a":2.5,"b":null},{"a":"AQ==","b":"l\"q"}]`; got != want {
		t.Errorf("json rows %s, want %s", got, want)
	}
}

// TestExportDoesNotBlockWrites holds a table export open mid-stream and
// writes through /query meanwhile.
func TestExportDoesNotBlockWrites(t *testing.T) {
	// The table (16 MB) is larger than the socket buffers, so each
	// export is still reading, its transaction open, while we write.
	e := newEnv(t, func(c *Config, d *Deps) { c.QueryTimeout = 10 * time.Minute })
	e.query("/query", `{"sql":"CREATE TABLE big(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200000) INSERT INTO big SELECT printf('%080d', i) FROM c"}`)
	t.Run("legacy dump", func(t *testing.T) {
		resp := e.do("GET", "/export/dump", adminToken, nil)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if _, err := br.Peek(1024); err != nil {
			t.Fatal(err)
		}
		code, b, _ := e.call("POST", "/query", adminToken, `{"sql":"INSERT INTO big VALUES ('during dump')"}`)
		if code != 200 {
			t.Fatalf("write during dump: %d %s", code, b)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(rest), "during dump") || !strings.HasSuffix(string(rest), "COMMIT;\n") {
			t.Errorf("dump is not the snapshot from its start (%d bytes, tail %q)", len(rest), rest[len(rest)-20:])
		}
		e.query("/query", `{"sql":"DELETE FROM big WHERE x = 'during dump'"}`)
	})
	resp := e.do("GET", "/export/json/big", adminToken, nil)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.Peek(1024); err != nil {
		t.Fatal(err)
	}
	// The export's read transaction is open; writes must go through.
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "POST", e.url+"/query", strings.NewReader(`{"sql":"INSERT INTO big VALUES ('new')"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		r2, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Fatalf("write during export: %v", err)
		}
		r2.Body.Close()
		if r2.StatusCode != 200 {
			t.Fatalf("write during export: %d", r2.StatusCode)
		}
	}
	// The export is one snapshot: it has none of the new rows.
	var rows []map[string]string
	if err := json.NewDecoder(br).Decode(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 200000 {
		t.Errorf("export has %d rows, want the snapshot's 200000", len(rows))
	}
}

// TestLegacyDump streams the synchronous dump and reloads it.
func TestLegacyDump(t *testing.T) {
	e := newEnv(t)
	e.query("/query", `{"sql":"CREATE TABLE a(id INTEGER PRIMARY KEY, v); INSERT INTO a VALUES (1, 'x;y'), (2, 1.0), (3, X'00'); CREATE TABLE b(z); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO b SELECT randomblob(16) FROM c"}`)
	for _, tt := range []struct {
		query, ctype, name string
		decode             func(io.Reader) io.Reader
	}{
		{"", "application/sql", "database_dump.sql", func(r io.Reader) io.Reader { return r }},
		{"?compress=gzip&tables=a&tables=b", "application/gzip", ".sql.gz", func(r io.Reader) io.Reader {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			return zr
		}},
		{"?compress=zstd", "application/zstd", ".sql.zst", func(r io.Reader) io.Reader {
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			return zr
		}},
	} {
		t.Run(tt.query, func(t *testing.T) {
			resp := e.do("GET", "/export/dump"+tt.query, adminToken, nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, tt.name) {
				t.Errorf("Content-Disposition %q, want %q", cd, tt.name)
			}
			if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("not chunked: %v (Content-Length %d)", resp.TransferEncoding, resp.ContentLength)
			}
			path := filepath.Join(t.TempDir(), "reload.db")
			conn, err := sqlite.OpenConn(path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := sqlload.Load(context.Background(), conn, tt.decode(resp.Body), sqlload.Options{Atomic: true}); err != nil {
				t.Fatal(err)
			}
			stmt, _, err := conn.PrepareTransient("SELECT group_concat(id || ':' || typeof(v) || ':' || quote(v), ',') FROM a")
			if err != nil {
				t.Fatal(err)
			}
			defer stmt.Finalize()
			stmt.Step()
			if got, want := stmt.ColumnText(0), "1:text:'x;y',2:real:1.0,3:blob:X'00'"; got != want {
				t.Errorf("reloaded a = %q, want %q", got, want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(e.dir, "main.db-wal")); err != nil {
		t.Errorf("database not in WAL mode: %v", err)
	}
}
