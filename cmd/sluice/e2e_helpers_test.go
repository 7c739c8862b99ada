package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// lockedBuffer collects a child's stderr; the reader goroutine writes
// while a failing test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(line + "\n")
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2eServer is a running `sluice serve` driven over plain HTTP with an
// admin token.
type e2eServer struct {
	t     *testing.T
	base  string
	token string
	cmd   *exec.Cmd
	logs  *lockedBuffer
	http  *http.Client
}

// startE2EServer runs `sluice serve --config cfg --listen 127.0.0.1:0` in
// dir and waits for its "listening on" line.
func startE2EServer(t *testing.T, dir, cfg, token string) *e2eServer {
	t.Helper()
	cmd := exec.Command(sluiceBin(t), "serve", "--config", cfg, "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = os.Environ()
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &e2eServer{t: t, token: token, cmd: cmd, logs: &lockedBuffer{}, http: &http.Client{Timeout: 60 * time.Second}}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.add(line)
			if u, ok := strings.CutPrefix(line, "sluice: listening on "); ok {
				urlc <- u
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
		if t.Failed() {
			t.Logf("sluice serve's log:\n%s", s.logs)
		}
	})
	select {
	case s.base = <-urlc:
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("sluice serve did not start:\n%s", s.logs)
	}
	return nil
}

// do sends one request with the admin token (unless hdr sets another
// Authorization) and returns the response with its body read.
func (s *e2eServer) do(method, path string, body []byte, hdr http.Header) (*http.Response, []byte) {
	s.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = s.base + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v\nserver log:\n%s", method, path, err, s.logs)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// query runs one /query request body and fails the test unless it is 200.
func (s *e2eServer) query(req any) []byte {
	s.t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, body := s.do("POST", "/query", b, nil)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("query %.200s: %d %s", b, resp.StatusCode, body)
	}
	return body
}

// e2eJob is the part of a job's status the test reads.
type e2eJob struct {
	ID          string `json:"jobId"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	DownloadURL string `json:"downloadUrl"` // the download route
	DirectURL   string `json:"directUrl"`   // the store's presigned URL
	// Verification is set for jobs submitted with "verify": true.
	Verification *struct {
		Status string `json:"status"`
		Rows   int64  `json:"rows"`
	} `json:"verification"`
	Resumed  int `json:"resumed"`
	Progress struct {
		Rows          int64 `json:"rowsDumped"`
		Bytes         int64 `json:"bytesWritten"`
		PartsUploaded int   `json:"partsUploaded"`
	} `json:"progress"`
}

// submit POSTs /export/dump with opts and returns the job id, checking
// the 202 answer and its Location header.
func (s *e2eServer) submit(opts map[string]any) string {
	s.t.Helper()
	b, _ := json.Marshal(opts)
	resp, body := s.do("POST", "/export/dump", b, nil)
	if resp.StatusCode != http.StatusAccepted {
		s.t.Fatalf("submit %s: %d %s", b, resp.StatusCode, body)
	}
	var sub struct{ JobID, Status, StatusURL string }
	if err := testsupport.Result(body, &sub); err != nil || sub.JobID == "" || sub.StatusURL == "" {
		s.t.Fatalf("submit response %s: %v", body, err)
	}
	if loc := resp.Header.Get("Location"); loc != sub.StatusURL {
		s.t.Fatalf("Location %q, statusUrl %q", loc, sub.StatusURL)
	}
	return sub.JobID
}

// status fetches a job's status.
func (s *e2eServer) status(id string) e2eJob {
	s.t.Helper()
	resp, body := s.do("GET", "/export/dump/status/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("status %s: %d %s", id, resp.StatusCode, body)
	}
	var j e2eJob
	if err := testsupport.Result(body, &j); err != nil {
		s.t.Fatalf("status %s: %v", body, err)
	}
	return j
}

// waitJob polls a job until until(job) holds or it ends otherwise.
func (s *e2eServer) waitJob(id string, timeout time.Duration, until func(e2eJob) bool) e2eJob {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := s.status(id)
		if until(j) {
			return j
		}
		switch j.Status {
		case "completed", "failed", "cancelled":
			s.t.Fatalf("job %s ended %s (%s) before the awaited state\nserver log:\n%s", id, j.Status, j.Error, s.logs)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s still %s after %v: %+v\nserver log:\n%s", id, j.Status, timeout, j, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutDownload reads the first n bytes of a GET of u and drops the
// connection, as a client whose download was interrupted.
func cutDownload(t *testing.T, c *http.Client, u string, hdr http.Header, n int64) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		t.Fatalf("read the first %d bytes: %v", n, err)
	}
	return b
}

// resume GETs u from byte n on and checks the 206 answer's Content-Range.
func resume(t *testing.T, c *http.Client, u string, hdr http.Header, n, size int64) []byte {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", n))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("ranged GET from %d: %d %.300s", n, resp.StatusCode, b)
	}
	if want := fmt.Sprintf("bytes %d-%d/%d", n, size-1, size); resp.Header.Get("Content-Range") != want {
		t.Fatalf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
	}
	return b
}

// dbValue is one SQLite value with its storage class, compared exactly
// (REALs by their bits, TEXT and BLOBs byte for byte).
type dbValue struct {
	class sqlite.ColumnType
	i     int64
	bits  uint64
	b     string
}

func (v dbValue) String() string {
	switch v.class {
	case sqlite.TypeInteger:
		return fmt.Sprintf("INTEGER %d", v.i)
	case sqlite.TypeFloat:
		return fmt.Sprintf("REAL %v (%#x)", math.Float64frombits(v.bits), v.bits)
	case sqlite.TypeText:
		return fmt.Sprintf("TEXT %q", v.b)
	case sqlite.TypeBlob:
		return fmt.Sprintf("BLOB %d bytes", len(v.b))
	}
	return "NULL"
}

// dbContent reads every table of db (its schema SQL, then each row in
// rowid or primary-key order) into comparable form.
func dbContent(t *testing.T, path string) (schema []string, rows map[string][][]dbValue) {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer conn.Close()
	var tables []string
	err = sqlitex.ExecuteTransient(conn, "SELECT type, name, coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error {
			schema = append(schema, s.ColumnText(0)+" "+s.ColumnText(1)+": "+s.ColumnText(2))
			if s.ColumnText(0) == "table" {
				tables = append(tables, s.ColumnText(1))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("%s: schema: %v", path, err)
	}
	rows = map[string][][]dbValue{}
	for _, tbl := range tables {
		// A WITHOUT ROWID table is ordered by its first column (the key in
		// this test's tables).
		q := fmt.Sprintf(`SELECT * FROM "%s"`, strings.ReplaceAll(tbl, `"`, `""`))
		var hasRowid bool
		if err := sqlitex.ExecuteTransient(conn, fmt.Sprintf(`SELECT 1 FROM pragma_table_list WHERE name = '%s' AND wr = 0`, strings.ReplaceAll(tbl, "'", "''")), &sqlitex.ExecOptions{
			ResultFunc: func(*sqlite.Stmt) error { hasRowid = true; return nil },
		}); err != nil {
			t.Fatalf("%s: table list: %v", path, err)
		}
		// The SQL export asks for preserveRowids, so implicit rowids
		// (gaps from deletions included) are compared too.
		if hasRowid {
			q = fmt.Sprintf(`SELECT _rowid_, * FROM "%s" ORDER BY _rowid_`, strings.ReplaceAll(tbl, `"`, `""`))
		} else {
			q += " ORDER BY 1"
		}
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{
			ResultFunc: func(s *sqlite.Stmt) error {
				row := make([]dbValue, s.ColumnCount())
				for i := range row {
					v := dbValue{class: s.ColumnType(i)}
					switch v.class {
					case sqlite.TypeInteger:
						v.i = s.ColumnInt64(i)
					case sqlite.TypeFloat:
						v.bits = math.Float64bits(s.ColumnFloat(i))
					case sqlite.TypeText:
						v.b = s.ColumnText(i)
					case sqlite.TypeBlob:
						buf := make([]byte, s.ColumnLen(i))
						s.ColumnBytes(i, buf)
						v.b = string(buf)
					}
					row[i] = v
				}
				rows[tbl] = append(rows[tbl], row)
				return nil
			},
		})
		if err != nil {
			t.Fatalf("%s: read %s: %v", path, tbl, err)
		}
	}
	return schema, rows
}

// sameContent fails the test unless the databases hold the same schema
// and the same values, storage classes included.
func sameContent(t *testing.T, want, got string) {
	t.Helper()
	ws, wr := dbContent(t, want)
	gs, gr := dbContent(t, got)
	if strings.Join(ws, "\n") != strings.Join(gs, "\n") {
		t.Fatalf("schema differs:\nsource:\n%s\nrestored:\n%s", strings.Join(ws, "\n"), strings.Join(gs, "\n"))
	}
	for tbl, rows := range wr {
		g := gr[tbl]
		if len(g) != len(rows) {
			t.Fatalf("table %s: %d rows restored, source has %d", tbl, len(g), len(rows))
		}
		for i := range rows {
			for j := range rows[i] {
				if rows[i][j] != g[i][j] {
					t.Fatalf("table %s row %d column %d: source %v, restored %v", tbl, i, j, rows[i][j], g[i][j])
				}
			}
		}
	}
}
