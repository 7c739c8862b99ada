package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/jobs"
	"github.com/sluice-dev/sluice/objstore/file"
	"github.com/sluice-dev/sluice/state"
)

// The StarbaseDB conformance suite: every assertion of StarbaseDB PR
// #251's route tests (src/export/streaming-dump-route.test.ts) and the
// shapes of its legacy handlers (src/export, src/import), replayed
// against the real server with the real job service and file store. One
// row per rule of the contract in docs/api.md ("StarbaseDB
// compatibility").

const (
	admin  = "conformance-admin"
	client = "conformance-client"
)

// sbServer is a running sluice API with a real job service.
type sbServer struct {
	t   *testing.T
	url string
	srv *api.Server
}

func startConformance(t *testing.T, mutate func(*api.Config)) *sbServer {
	t.Helper()
	dir := t.TempDir()
	log := testsupport.Logger(t)
	ctx := context.Background()
	dbPath := filepath.Join(dir, "main.db")

	cfg := api.NewConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Databases = []api.Database{{Name: "main", Path: dbPath}}
	cfg.AdminTokens = []string{admin}
	cfg.ClientTokens = []string{client}
	cfg.MaxBodyBytes = 64 << 10
	if mutate != nil {
		mutate(&cfg)
	}
	files := &api.Files{}
	srv, err := api.New(cfg, api.Deps{Files: files}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	store, err := file.New(filepath.Join(dir, "exports"), file.Options{SigningKey: []byte("k"), BaseURL: srv.PublicURL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	files.Store = store
	files.Verify, files.Version = store.VerifyQuery, file.Version
	st, err := state.Open(ctx, filepath.Join(dir, state.FileName), log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := jobs.New(ctx, jobs.Config{
		DataDir: dir, Databases: map[string]string{"main": dbPath}, DefaultDatabase: "main",
		TickBudget: time.Second, Poll: 20 * time.Millisecond, Lease: 3 * time.Second,
	}, st, store, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetJobs(svc)
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close(context.Background())
		srv.Close()
		st.Close()
	})
	s := &sbServer{t: t, url: srv.URL(), srv: srv}
	s.mustQuery(`CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
		INSERT INTO users(name) VALUES ('ann'),('bob');
		CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);
		INSERT INTO orders VALUES (1, 1, 9.5)`)
	return s
}

// req sends a request; token "" sends none, a token starting with "!"
// is sent bare (without "Bearer ").
func (s *sbServer) req(method, path, token, ctype string, body []byte, hdr ...string) (*http.Response, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(token, "!"):
		r.Header.Set("Authorization", token[1:])
	case token != "":
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, b
}

func (s *sbServer) mustQuery(sql string) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"sql": sql})
	if resp, body := s.req("POST", "/query", admin, "application/json", b); resp.StatusCode != 200 {
		s.t.Fatalf("query: %d %s", resp.StatusCode, body)
	}
}

// result decodes a success body's "result" as a generic JSON value.
func result(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	res, ok := env["result"].(map[string]any)
	if !ok || len(env) != 1 {
		t.Fatalf("not a {\"result\": {...}} envelope: %s", b)
	}
	return res
}

// errorMessage checks StarbaseDB's error shape, {"error": "<string>"},
// and returns the message.
func errorMessage(t *testing.T, b []byte) string {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	msg, ok := env["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("error is not a string: %s", b)
	}
	return msg
}

func (s *sbServer) submit(query, ctype, body string) (string, map[string]any) {
	s.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	resp, out := s.req("POST", "/export/dump"+query, admin, ctype, b)
	if resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("submit: %d %s", resp.StatusCode, out)
	}
	res := result(s.t, out)
	id, _ := res["jobId"].(string)
	return id, res
}

func (s *sbServer) wait(id string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b := s.req("GET", "/export/dump/status/"+id, admin, "", nil)
		if resp.StatusCode != 200 {
			s.t.Fatalf("status: %d %s", resp.StatusCode, b)
		}
		res := result(s.t, b)
		switch res["status"] {
		case "completed":
			return res
		case "failed", "cancelled":
			s.t.Fatalf("job ended %v: %s", res["status"], b)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job not done: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func multipartBody(t *testing.T, field, name, content string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, content)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func TestStarbaseDBConformance(t *testing.T) {
	s := startConformance(t, nil)
	origin := s.url

	tests := []struct {
		rule string
		run  func(t *testing.T)
	}{
		{"1 envelope: /query answers {result}", func(t *testing.T) {
			resp, b := s.req("POST", "/query", admin, "application/json", []byte(`{"sql":"SELECT 1 AS one"}`))
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), `{"result":[{"one":1}]}`) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		}},
		{"1 envelope: every error status has a string error", func(t *testing.T) {
			big := `{"sql":"` + strings.Repeat("x", 70<<10) + `"}`
			for _, c := range []struct {
				method, path, token, ctype, body string
				status                           int
			}{
				{"POST", "/query", admin, "application/json", `{`, 400},
				{"POST", "/query", "", "application/json", `{"sql":"SELECT 1"}`, 401},
				{"POST", "/export/dump", client, "", "", 403},
				{"GET", "/nope", admin, "", "", 404},
				{"PUT", "/query", admin, "", "", 405},
				{"POST", "/export/dump", admin, "application/json", `{"key":"taken.sql"}`, 409},
				{"POST", "/query", admin, "application/json", big, 413},
				{"POST", "/query", admin, "text/plain", `{"sql":"SELECT 1"}`, 415},
			} {
				if c.status == 409 {
					s.submit("", "application/json", `{"key":"taken.sql"}`)
					deadline := time.Now().Add(30 * time.Second)
					for {
						resp, _ := s.req("POST", "/export/dump", admin, c.ctype, []byte(c.body))
						if resp.StatusCode == 409 || time.Now().After(deadline) {
							break
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
				var body []byte
				if c.body != "" {
					body = []byte(c.body)
				}
				resp, b := s.req(c.method, c.path, c.token, c.ctype, body)
				if resp.StatusCode != c.status {
					t.Errorf("%s %s: %d, want %d: %.200s", c.method, c.path, resp.StatusCode, c.status, b)
					continue
				}
				errorMessage(t, b)
			}
		}},
		{"2 submit: JSON body, 202, Location, result fields", func(t *testing.T) {
			resp, b := s.req("POST", "/export/dump", admin, "application/json", []byte(`{"format":"sql"}`))
			if resp.StatusCode != 202 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			res := result(t, b)
			id, _ := res["jobId"].(string)
			if id == "" || res["status"] != "queued" || res["format"] != "sql" || res["objectKey"] == "" || res["progress"] == nil {
				t.Errorf("result %s", b)
			}
			if got := resp.Header.Get("Location"); !strings.Contains(got, "/export/dump/status/"+id) {
				t.Errorf("Location %q", got)
			}
			if res["statusUrl"] != origin+"/export/dump/status/"+id || res["downloadUrl"] != origin+"/export/dump/download/"+id {
				t.Errorf("statusUrl %v downloadUrl %v", res["statusUrl"], res["downloadUrl"])
			}
		}},
		{"issue 10.9: a reserved key is refused at submit", func(t *testing.T) {
			for _, key := range []string{".sluice/x", ".sluice", ".sluice/uploads/y.sql"} {
				b, _ := json.Marshal(map[string]string{"key": key})
				resp, out := s.req("POST", "/export/dump", admin, "application/json", b)
				if resp.StatusCode != 400 || !strings.Contains(errorMessage(t, out), "reserved") {
					t.Errorf("key %q: %d %s", key, resp.StatusCode, out)
				}
			}
		}},
		{"2 submit: format from the query string, no body", func(t *testing.T) {
			_, res := s.submit("?format=csv&table=users&chunkSize=500", "", "")
			if res["format"] != "csv" {
				t.Errorf("format %v", res["format"])
			}
		}},
		{"2 submit: form body", func(t *testing.T) {
			_, res := s.submit("", "application/x-www-form-urlencoded", "format=json&table=orders")
			if res["format"] != "json" {
				t.Errorf("format %v", res["format"])
			}
		}},
		{"3+4 status values and progress from submit, epoch ms", func(t *testing.T) {
			before := time.Now().UnixMilli()
			_, res := s.submit("", "application/json", `{"tables":["orders","users"]}`)
			p, _ := res["progress"].(map[string]any)
			tables, _ := p["tables"].([]any)
			// Dump order; a SQL dump also carries sqlite_sequence.
			if len(tables) < 2 || tables[0] != "users" || tables[1] != "orders" || p["currentTableIndex"] != float64(0) || p["currentTable"] != tables[0] {
				t.Errorf("progress at submit %v", p)
			}
			for _, k := range []string{"rowOffset", "rowsDumped", "bytesWritten", "partsUploaded"} {
				if _, ok := p[k].(float64); !ok {
					t.Errorf("progress.%s = %v", k, p[k])
				}
			}
			if ms, _ := p["startedAt"].(float64); int64(ms) < before-1000 || int64(ms) > time.Now().UnixMilli() {
				t.Errorf("startedAt %v is not epoch ms", p["startedAt"])
			}
			done := s.wait(res["jobId"].(string))
			p = done["progress"].(map[string]any)
			if _, ok := p["completedAt"].(float64); !ok || p["currentTable"] != nil {
				t.Errorf("completed progress %v", p)
			}
		}},
		{"3 running is processing on the wire", func(t *testing.T) {
			resp, b := s.req("GET", "/export/dump/jobs?status=processing", admin, "", nil)
			if resp.StatusCode != 200 || strings.Contains(string(b), `"running"`) {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"5 status: downloadUrl only once completed, direct link apart, 404 text", func(t *testing.T) {
			id, _ := s.submit("", "application/json", `{"table":"users"}`)
			res := s.wait(id)
			if res["downloadUrl"] != origin+"/export/dump/download/"+id {
				t.Errorf("downloadUrl %v", res["downloadUrl"])
			}
			if d, _ := res["directUrl"].(string); d == "" || res["directUrlExpiresAt"] == nil {
				t.Errorf("directUrl %v", res["directUrl"])
			}
			resp, b := s.req("GET", "/export/dump/status/nope", admin, "", nil)
			if resp.StatusCode != 404 || errorMessage(t, b) != "Job 'nope' not found." {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"6 download: headers, quoted filename, 404 text", func(t *testing.T) {
			id, _ := s.submit("", "application/json", `{"key":"dump.sql","table":"users"}`)
			s.wait(id)
			resp, b := s.req("GET", "/export/dump/download/"+id, admin, "", nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename="dump.sql"` ||
				resp.Header.Get("Content-Length") != fmt.Sprint(len(b)) || resp.Header.Get("Content-Type") != "application/sql" {
				t.Errorf("%d %v", resp.StatusCode, resp.Header)
			}
			resp, b = s.req("GET", "/export/dump/download/nope", admin, "", nil)
			if resp.StatusCode != 404 || errorMessage(t, b) != "Dump for job 'nope' is not available yet." {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"7 DELETE: ended job unchanged, idempotent, unknown 404", func(t *testing.T) {
			id, _ := s.submit("", "application/json", `{"table":"orders"}`)
			s.wait(id)
			for i := 0; i < 2; i++ {
				resp, b := s.req("DELETE", "/export/dump/"+id, admin, "", nil)
				if resp.StatusCode != 200 || result(t, b)["status"] != "completed" {
					t.Errorf("%d %s", resp.StatusCode, b)
				}
			}
			if resp, b := s.req("DELETE", "/export/dump/nope", admin, "", nil); resp.StatusCode != 404 {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"8 json: tables-keyed object, exact integers, dump order", func(t *testing.T) {
			s.mustQuery(`CREATE TABLE big(n INTEGER); INSERT INTO big VALUES (9223372036854775807)`)
			id, _ := s.submit("", "application/json", `{"format":"json","tables":["users","big"]}`)
			s.wait(id)
			_, b := s.req("GET", "/export/dump/download/"+id, admin, "", nil)
			want := "{\n\"users\":[\n{\"id\":1,\"name\":\"ann\"},\n{\"id\":2,\"name\":\"bob\"}"
			if !strings.HasPrefix(string(b), want) || !strings.Contains(string(b), `"big":[`+"\n"+`{"n":9223372036854775807}`) {
				t.Errorf("json dump:\n%s", b)
			}
		}},
		{"8 csv: one table is plain text/csv, several a zip", func(t *testing.T) {
			id, _ := s.submit("?format=csv&table=orders", "", "")
			s.wait(id)
			resp, b := s.req("GET", "/export/dump/download/"+id, admin, "", nil)
			if resp.Header.Get("Content-Type") != "text/csv" || string(b) != "\"id\",\"user_id\",\"total\"\r\n1,1,9.5\r\n" {
				t.Errorf("%v %q", resp.Header, b)
			}
			id, _ = s.submit("", "application/json", `{"format":"csv","tables":["orders","users"]}`)
			s.wait(id)
			resp, b = s.req("GET", "/export/dump/download/"+id, admin, "", nil)
			if resp.Header.Get("Content-Type") != "application/zip" || !bytes.HasPrefix(b, []byte("PK")) {
				t.Errorf("%v %.20q", resp.Header, b)
			}
		}},
		{"8 table: an array selects names with commas", func(t *testing.T) {
			s.mustQuery(`CREATE TABLE "a,b"(x); INSERT INTO "a,b" VALUES (1)`)
			_, res := s.submit("", "application/json", `{"format":"json","table":["a,b"]}`)
			p := res["progress"].(map[string]any)
			if tables := p["tables"].([]any); len(tables) != 1 || tables[0] != "a,b" {
				t.Errorf("tables %v", tables)
			}
		}},
		{"12 a table-filtered dump carries only its tables' sqlite_sequence rows", func(t *testing.T) {
			for table, want := range map[string]string{"orders": "", "users": "users"} {
				resp, b := s.req("GET", "/export/dump?table="+table, admin, "", nil)
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				fresh := filepath.Join(t.TempDir(), "fresh.db")
				cmd := exec.Command(testsupport.SQLite3(t), "-bail", fresh)
				cmd.Stdin = bytes.NewReader(b)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("table %s: sqlite3 -bail: %v %s\n%s", table, err, out, b)
				}
				out, _ := exec.Command(testsupport.SQLite3(t), fresh,
					"SELECT coalesce((SELECT group_concat(name) FROM sqlite_sequence), '') WHERE EXISTS (SELECT 1 FROM sqlite_schema WHERE name='sqlite_sequence') UNION ALL SELECT '' LIMIT 1").Output()
				if got := strings.TrimSpace(string(out)); got != want {
					t.Errorf("table %s: sqlite_sequence %q, want %q", table, got, want)
				}
			}
		}},
		{"9 legacy GET /export/dump: attachment, source= ignored", func(t *testing.T) {
			resp, b := s.req("GET", "/export/dump?source=internal", admin, "", nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename="database_dump.sql"` ||
				!strings.Contains(string(b), "CREATE TABLE users") {
				t.Errorf("%d %v %.200s", resp.StatusCode, resp.Header, b)
			}
		}},
		{"9 legacy table exports", func(t *testing.T) {
			resp, b := s.req("GET", "/export/json/users?source=internal", admin, "", nil)
			var rows []map[string]any
			if resp.StatusCode != 200 || json.Unmarshal(b, &rows) != nil || len(rows) != 2 || rows[0]["name"] != "ann" {
				t.Errorf("json %d %s", resp.StatusCode, b)
			}
			resp, b = s.req("GET", "/export/csv/users", admin, "", nil)
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "id,name\n") ||
				resp.Header.Get("Content-Disposition") != `attachment; filename="users_export.csv"` {
				t.Errorf("csv %d %v %s", resp.StatusCode, resp.Header, b)
			}
			resp, b = s.req("GET", "/export/json/nope", admin, "", nil)
			if resp.StatusCode != 404 || errorMessage(t, b) != "Table 'nope' does not exist." {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"9 legacy import of StarbaseDB's own dump text, multipart sqlFile", func(t *testing.T) {
			legacy := "SQLite format 3\x00\n-- Table: pets\nCREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT);\n\nINSERT INTO pets VALUES (1, 'rex');\n\n"
			ct, body := multipartBody(t, "sqlFile", "database_dump.sql", legacy)
			resp, b := s.req("POST", "/import/dump", admin, ct, body)
			if resp.StatusCode != 200 || !strings.Contains(result(t, b)["message"].(string), "statements succeeded") {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			resp, b = s.req("POST", "/query", admin, "application/json", []byte(`{"sql":"SELECT name FROM pets"}`))
			if !strings.Contains(string(b), "rex") {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"9 legacy JSON import with data and columnMapping", func(t *testing.T) {
			resp, b := s.req("POST", "/import/json/users", admin, "application/json",
				[]byte(`{"data":[{"who":"cy"},{"who":"di"}],"columnMapping":{"who":"name"}}`))
			if resp.StatusCode != 200 || result(t, b)["message"] != "Imported 2 out of 2 records successfully. 0 records failed." {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"9 legacy CSV import as JSON {data}", func(t *testing.T) {
			resp, b := s.req("POST", "/import/csv/users", admin, "application/json",
				[]byte(`{"data":"who\nel\n","columnMapping":{"who":"name"}}`))
			if resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
			resp, b = s.req("POST", "/import/csv/users", admin, "text/csv", []byte("name\nfay\n"))
			if resp.StatusCode != 200 {
				t.Errorf("text/csv %d %s", resp.StatusCode, b)
			}
		}},
		{"10 bare token", func(t *testing.T) {
			if resp, b := s.req("GET", "/export/dump/jobs", "!"+admin, "", nil); resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}},
		{"11 CORS preflight and headers", func(t *testing.T) {
			resp, _ := s.req("OPTIONS", "/export/dump", "", "", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
			h := resp.Header
			if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" ||
				h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
				h.Get("Access-Control-Expose-Headers") != "Content-Disposition, Location, ETag, Content-Length" {
				t.Errorf("%d %v", resp.StatusCode, h)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.rule, tc.run)
	}
}

// TestClientExportSwitch checks the config switch that lets client
// tokens export, as StarbaseDB does.
func TestClientExportSwitch(t *testing.T) {
	s := startConformance(t, func(c *api.Config) { c.ClientExport = true })
	if resp, b := s.req("POST", "/export/dump", client, "", nil); resp.StatusCode != 202 {
		t.Errorf("client submit: %d %s", resp.StatusCode, b)
	}
	if resp, b := s.req("POST", "/import/csv/users", client, "text/csv", []byte("name\nx\n")); resp.StatusCode != 403 {
		t.Errorf("client import: %d %s", resp.StatusCode, b)
	}
}
