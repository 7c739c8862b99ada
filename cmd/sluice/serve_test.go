package main

import (
	"bufio"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe starts `sluice serve` in dir with args and returns its base
// URL (read from the "listening on" line) and the running command.
func startServe(t *testing.T, dir string, env []string, args ...string) (string, *exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(sluiceBin(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	logs := &lockedBuffer{}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		pw.Close()
	})
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			logs.add(line)
			if u, ok := strings.CutPrefix(line, "sluice: listening on "); ok {
				urlc <- u
			}
		}
	}()
	select {
	case u := <-urlc:
		return u, cmd, logs
	case <-time.After(30 * time.Second):
		t.Fatalf("sluice serve did not start:\n%s", logs.String())
	}
	return "", nil, nil
}

func postJSON(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func getBody(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestServeDefaults runs `sluice serve` with no configuration: it creates
// ./data/default.db, exports it through a job into ./data/exports, serves
// the download, and exits 0 within 5 s of SIGTERM.
func TestServeDefaults(t *testing.T) {
	dir := t.TempDir()
	base, cmd, logs := startServe(t, dir, nil)
	if _, err := os.Stat(filepath.Join(dir, "data", "default.db")); err != nil {
		t.Fatalf("default database not created: %v", err)
	}
	if code, b := getBody(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d: %s", code, b)
	}
	for _, q := range []string{
		`{"sql":"CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, score REAL)"}`,
		`{"sql":"INSERT INTO notes(body, score) VALUES (?, ?), (?, ?)","params":["hello",1.5,"wörld",-2]}`,
	} {
		if code, b := postJSON(t, base+"/query", q); code != 200 {
			t.Fatalf("query %s: %d %s", q, code, b)
		}
	}
	code, b := postJSON(t, base+"/export/dump", `{"format":"sql","compress":"zstd"}`)
	if code != 202 {
		t.Fatalf("submit: %d %s", code, b)
	}
	var sub struct{ JobID, StatusURL string }
	if err := testsupport.Result(b, &sub); err != nil || sub.StatusURL == "" {
		t.Fatalf("submit response %s: %v", b, err)
	}
	var job struct {
		Status string `json:"status"`
		SHA256 string `json:"sha256"`
		Error  string `json:"error"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for job.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("job not completed: %+v\n%s", job, logs)
		}
		time.Sleep(100 * time.Millisecond)
		code, b := getBody(t, sub.StatusURL)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		testsupport.Result(b, &job)
		if job.Status == "failed" || job.Status == "cancelled" {
			t.Fatalf("job %s: %s", job.Status, job.Error)
		}
	}
	code, body := getBody(t, base+"/export/dump/download/"+sub.JobID)
	if code != 200 || sha256Hex(body) != job.SHA256 {
		t.Fatalf("download %d, sha256 %s, job says %s", code, sha256Hex(body), job.SHA256)
	}
	dumpFile := filepath.Join(dir, "export.sql.zst")
	os.WriteFile(dumpFile, body, 0o644)
	restored := filepath.Join(dir, "restored.db")
	if r := runSluice(t, dir, nil, nil, "restore", "--db", restored, dumpFile); r.code != 0 {
		t.Fatalf("restore: %s", r.stderr)
	}
	if got := sqlite3(t, restored, "SELECT body, typeof(score), score FROM notes ORDER BY id;"); got != "hello|real|1.5\nwörld|real|-2.0\n" {
		t.Fatalf("restored rows %q", got)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, logs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("shutdown took %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve still running 10 s after SIGTERM:\n%s", logs)
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	tests := []struct {
		name     string
		args     []string
		env      []string
		code     int
		contains string
	}{
		{"unknown key", []string{"--config", write("a.json", `{"listen":"127.0.0.1:0","tokenz":{}}`)}, nil, 1, `unknown field "tokenz"`},
		{"missing config", []string{"--config", filepath.Join(dir, "none.json")}, nil, 1, "none.json"},
		{"public without tokens", []string{"--listen", "0.0.0.0:0"}, nil, 1, "without tokens"},
		{"bad env", nil, []string{"SLUICE_TICK_BUDGET=soon"}, 1, "SLUICE_TICK_BUDGET"},
		{"bad store", []string{"--config", write("b.json", `{"store":{"type":"ftp"}}`)}, nil, 1, `store.type "ftp"`},
		{"stray argument", []string{"extra"}, nil, 2, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runSluice(t, dir, tc.env, nil, append([]string{"serve"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.contains) {
				t.Fatalf("exit %d (want %d), stderr:\n%s", r.code, tc.code, r.stderr)
			}
		})
	}
}
