package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
)

func TestSubmitStatusListCancel(t *testing.T) {
	e := newEnv(t)
	e.query("/db/other/query", `{"sql":"CREATE TABLE t(a); CREATE TABLE u(b)"}`)

	code, b, h := e.call("POST", "/db/other/export/dump?format=csv", adminToken,
		`{"tables":["t","u"],"exclude":"u","chunkSize":500,"compress":true,"consistency":"strict","callbackUrl":"https://example.com/cb"}`,
		"Content-Type", "application/json")
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", code, b)
	}
	var sub jobView
	if err := decodeResult(b, &sub); err != nil {
		t.Fatal(err)
	}
	if sub.JobID == "" || sub.Status != "queued" || !strings.HasSuffix(sub.StatusURL, "/db/other/export/dump/status/"+sub.JobID) {
		t.Errorf("submit response %+v", sub)
	}
	if h.Get("Location") != sub.StatusURL || !strings.HasPrefix(sub.StatusURL, e.url) {
		t.Errorf("Location %q, statusUrl %q", h.Get("Location"), sub.StatusURL)
	}
	spec := e.jobs.specs[len(e.jobs.specs)-1]
	want := sluice.JobSpec{Database: "other", Format: sluice.FormatCSV, Compression: sluice.CompressGzip, Tables: []string{"t", "u"},
		Exclude: []string{"u"}, ChunkSize: 500, Consistency: sluice.ConsistencyStrict, CallbackURL: "https://example.com/cb"}
	if mustJSON(spec) != mustJSON(want) {
		t.Errorf("spec %s\nwant %s", mustJSON(spec), mustJSON(want))
	}

	// A form body works too, and query parameters alone.
	code, b, _ = e.call("POST", "/export/dump", adminToken, "format=ndjson&compress=zstd", "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusAccepted {
		t.Fatalf("form submit: %d %s", code, b)
	}
	if s := e.jobs.specs[len(e.jobs.specs)-1]; s.Format != sluice.FormatNDJSON || s.Compression != sluice.CompressZstd || s.Database != "main" {
		t.Errorf("form spec %+v", s)
	}

	// JSON labelled as a form (curl -d's default) is refused: a JSON
	// body needs its Content-Type.
	code, b, _ = e.call("POST", "/export/dump", adminToken, `{"format":"json"}`, "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusUnsupportedMediaType {
		t.Fatalf("curl-style submit: %d %s", code, b)
	}

	// Status before and after completion.
	var job jobView
	code, b, _ = e.call("GET", "/db/other/export/dump/status/"+sub.JobID, adminToken, "")
	if code != 200 || decodeResult(b, &job) != nil || job.DownloadURL != "" || job.DirectURL != "" || job.Status != "queued" {
		t.Fatalf("status: %d %s", code, b)
	}
	e.jobs.complete(sub.JobID, []byte("data"), true)
	code, b, _ = e.call("GET", "/db/other/export/dump/status/"+sub.JobID, adminToken, "")
	if code != 200 || decodeResult(b, &job) != nil || !strings.HasPrefix(job.DirectURL, "http://store.example/"+sub.JobID) ||
		job.DownloadURL != e.url+"/db/other/export/dump/download/"+sub.JobID {
		t.Fatalf("completed status: %d %s", code, b)
	}

	// List: per database, state filter, paging.
	for i := 0; i < 3; i++ {
		e.call("POST", "/db/other/export/dump", adminToken, "")
	}
	var page listResponse
	code, b, _ = e.call("GET", "/db/other/export/dump/jobs?limit=2", adminToken, "")
	if code != 200 || decodeResult(b, &page) != nil || len(page.Jobs) != 2 || page.NextCursor == "" {
		t.Fatalf("list page 1: %d %s", code, b)
	}
	code, b, _ = e.call("GET", "/db/other/export/dump/jobs?limit=2&cursor="+url.QueryEscape(page.NextCursor), adminToken, "")
	if code != 200 || decodeResult(b, &page) != nil || len(page.Jobs) != 2 {
		t.Fatalf("list page 2: %d %s", code, b)
	}
	code, b, _ = e.call("GET", "/db/other/export/dump/jobs?state=completed", adminToken, "")
	if code != 200 || decodeResult(b, &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != sub.JobID {
		t.Fatalf("list completed: %d %s", code, b)
	}
	code, b, _ = e.call("GET", "/export/dump/jobs", adminToken, "")
	if code != 200 || decodeResult(b, &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].Database != "main" {
		t.Fatalf("list main: %d %s", code, b)
	}

	// Cancel, twice.
	id := page.Jobs[0].JobID
	for i := 0; i < 2; i++ {
		code, b, _ = e.call("DELETE", "/export/dump/"+id, adminToken, "")
		if code != 200 || decodeResult(b, &job) != nil || job.Status != "cancelled" {
			t.Fatalf("cancel: %d %s", code, b)
		}
	}
}

func TestDownload(t *testing.T) {
	e := newEnv(t)
	data := []byte("0123456789abcdefghij")
	hashed, _ := e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main", Format: sluice.FormatSQL, Compression: sluice.CompressGzip})
	e.jobs.complete(hashed.ID, data, true)
	bare, _ := e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main", Format: sluice.FormatCSV})
	e.jobs.complete(bare.ID, data, false) // no size or hash recorded: the store's are used

	tests := []struct {
		name, method, id string
		hdr              []string
		status           int
		body             string
		hdrWant          map[string]string
	}{
		{"full", "GET", hashed.ID, nil, 200, string(data), map[string]string{
			"Content-Type": "application/gzip", "Content-Length": "20", "Accept-Ranges": "bytes",
			"ETag": `"` + strings.Repeat("0", 62) + `14"`, "Content-Disposition": `attachment; filename="` + hashed.ID + `.sql.gz"`,
			"Last-Modified": "Fri, 02 Jan 2026 03:04:05 GMT"}},
		{"range", "GET", hashed.ID, []string{"Range", "bytes=5-9"}, 206, "56789", map[string]string{"Content-Range": "bytes 5-9/20", "Content-Length": "5"}},
		{"open range", "GET", hashed.ID, []string{"Range", "bytes=15-"}, 206, "fghij", map[string]string{"Content-Range": "bytes 15-19/20"}},
		{"suffix range", "GET", hashed.ID, []string{"Range", "bytes=-3"}, 206, "hij", map[string]string{"Content-Range": "bytes 17-19/20"}},
		{"range past end", "GET", hashed.ID, []string{"Range", "bytes=18-100"}, 206, "ij", nil},
		{"multi range ignored", "GET", hashed.ID, []string{"Range", "bytes=0-1,5-6"}, 200, string(data), nil},
		{"if-range match", "GET", hashed.ID, []string{"Range", "bytes=0-1", "If-Range", `"` + strings.Repeat("0", 62) + `14"`}, 206, "01", nil},
		{"if-range mismatch", "GET", hashed.ID, []string{"Range", "bytes=0-1", "If-Range", `"other"`}, 200, string(data), nil},
		{"if-none-match", "GET", hashed.ID, []string{"If-None-Match", `"x", "` + strings.Repeat("0", 62) + `14"`}, 304, "", nil},
		{"if-none-match other", "GET", hashed.ID, []string{"If-None-Match", `"x"`}, 200, string(data), nil},
		{"head", "HEAD", hashed.ID, nil, 200, "", map[string]string{"Content-Length": "20"}},
		{"store metadata", "GET", bare.ID, nil, 200, string(data), map[string]string{"ETag": `"etag-` + bare.ID + `"`, "Content-Type": "application/zip"}},
		{"store metadata range", "GET", bare.ID, []string{"Range", "bytes=10-"}, 206, "abcdefghij", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b, h := e.call(tt.method, "/export/dump/download/"+tt.id, adminToken, "", tt.hdr...)
			if code != tt.status || string(b) != tt.body {
				t.Fatalf("%d %q, want %d %q", code, b, tt.status, tt.body)
			}
			for k, v := range tt.hdrWant {
				if got := h.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestFilesRoute(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.store.Put(ctx, "a b/c.sql", strings.NewReader("file body"), 9, objstore.PutOptions{ContentType: "application/sql"}); err != nil {
		t.Fatal(err)
	}
	u, err := e.store.PresignGet(ctx, "a b/c.sql", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	code, b, h := e.call("GET", pu.RequestURI(), "", "", "Range", "bytes=5-")
	if code != 206 || string(b) != "body" || h.Get("Content-Type") != "application/sql" {
		t.Fatalf("%d %q %v", code, b, h)
	}
	q := pu.Query()
	q.Set("sig", strings.Repeat("0", 64))
	pu.RawQuery = q.Encode()
	code, b, _ = e.call("GET", pu.RequestURI(), "", "")
	if code != 403 {
		t.Fatalf("bad signature: %d %s", code, b)
	}
	if c, _ := errorCode(t, b); c != "bad_signature" {
		t.Errorf("code %q", c)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main"})
	m := e.srv.Metrics()
	m.AddBytesExported(1234)
	m.AddRowsExported(7)
	m.AddPartUploaded()
	m.AddUploadRetry()
	m.ObserveTick(time.Second)
	e.call("POST", "/query", adminToken, `{"sql":"SELECT 1"}`)
	resp := e.do("GET", "/metrics", adminToken, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_jobs{state="queued"} 1`,
		`sluice_jobs{state="running"} 0`,
		`sluice_exported_bytes_total 1234`,
		`sluice_exported_rows_total 7`,
		`sluice_parts_uploaded_total 1`,
		`sluice_upload_retries_total 1`,
		`sluice_tick_duration_seconds_count 1`,
		`sluice_http_request_duration_seconds_count{code="200",method="POST",route="POST /query"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestSubmitPreserveRowids checks that preserveRowids reaches the job
// spec from a JSON body and from the query string.
func TestSubmitPreserveRowids(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ path, body string }{
		{"/export/dump", `{"preserveRowids":true}`},
		{"/export/dump?preserveRowids=true", ``},
	} {
		code, b, _ := e.call("POST", tc.path, adminToken, tc.body, "Content-Type", "application/json")
		if code != http.StatusAccepted || !e.jobs.specs[len(e.jobs.specs)-1].PreserveRowids {
			t.Errorf("preserveRowids via %s %s: %d %s", tc.path, tc.body, code, b)
		}
	}
}
