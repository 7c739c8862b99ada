package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// procStat reads the fields of /proc/<pid>/task/<tid>/stat (or of the
// process, with tid 0) after the command name: fields[0] is the state
// (field 3 of proc(5)), so field n of proc(5) is fields[n-3].
func procStat(pid, tid int) ([]string, error) {
	p := fmt.Sprintf("/proc/%d/stat", pid)
	if tid != 0 {
		p = fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), nil
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(child, 0)
		if err == nil && len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, child)
		}
	}
	return out
}

// waitWorker waits for the server's one export worker and returns its pid.
func waitWorker(t *testing.T, server int) int {
	t.Helper()
	return waitNewWorker(t, server, 0)
}

// waitNewWorker waits for the server's one export worker to be a process
// other than old (0: any) and returns its pid.
func waitNewWorker(t *testing.T, server, old int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		kids := childrenOf(t, server)
		if len(kids) == 1 && kids[0] != old {
			return kids[0]
		}
		if len(kids) > 1 || time.Now().After(deadline) {
			t.Fatalf("server %d has children %v, want one export worker other than %d", server, kids, old)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone waits for pid to exit (or be a zombie).
func gone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := procStat(pid, 0)
		if err != nil || f[0] == "Z" {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestExportWorker: by default, serve runs its jobs in one export worker
// process whose every thread is niced (nice 19, SCHED_IDLE); the job's
// metrics reach the server's /metrics; the worker goes when the server is
// killed with -9 and when it stops on SIGTERM; limits.exportProcess false
// runs no worker.
func TestExportWorker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Run("niced, runs jobs, dies with kill -9", func(t *testing.T) {
		dir := t.TempDir()
		base, cmd, logs := startServe(t, dir, nil)
		worker := waitWorker(t, cmd.Process.Pid)
		threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", worker))
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range threads {
			tid, _ := strconv.Atoi(th.Name())
			f, err := procStat(worker, tid)
			if err != nil {
				continue // the thread ended
			}
			// proc(5): field 19 is nice, field 41 the policy (5: SCHED_IDLE).
			if nice, policy := f[19-3], f[41-3]; nice != "19" || policy != "5" {
				t.Errorf("worker thread %d: nice %s, policy %s; want 19, 5 (SCHED_IDLE)", tid, nice, policy)
			}
		}
		if code, b := postJSON(t, base+"/query", `{"sql":"CREATE TABLE t(v); INSERT INTO t VALUES (1), (2), (3)"}`); code != 200 {
			t.Fatalf("query: %d %s", code, b)
		}
		id := e2eOf(t, base, cmd, logs).completes()
		_, metrics := getBody(t, base+"/metrics")
		if !regexp.MustCompile(`(?m)^sluice_exported_rows_total [1-9]`).Match(metrics) {
			t.Errorf("job %s's rows are not in /metrics:\n%s", id, grepLines(string(metrics), "sluice_exported"))
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if !gone(worker, 5*time.Second) {
			t.Fatalf("export worker %d outlived its server's kill -9", worker)
		}
	})
	t.Run("a killed worker is replaced and its job resumes", func(t *testing.T) {
		base, cmd, logs := startServe(t, t.TempDir(), nil)
		worker := waitWorker(t, cmd.Process.Pid)
		if code, b := postJSON(t, base+"/query", `{"sql":"CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)"}`); code != 200 {
			t.Fatalf("query: %d %s", code, b)
		}
		// A million one-row pages, about a dozen parts: the kill after the
		// second lands with most of the job still to do, however fast the
		// engine reads.
		if code, b := postJSON(t, base+"/query", `{"sql":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000000) INSERT INTO big(v) SELECT randomblob(20) FROM n"}`); code != 200 {
			t.Fatalf("fill: %d %s", code, b)
		}
		srv := e2eOf(t, base, cmd, logs)
		id := srv.submit(map[string]any{"format": "csv", "chunkSize": 1})
		// Kill it once a checkpoint covers some parts.
		srv.waitJob(id, time.Minute, func(j e2eJob) bool { return j.Progress.PartsUploaded >= 2 })
		if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitNewWorker(t, cmd.Process.Pid, worker)
		// The new worker took the job over from its last checkpoint, in a
		// snapshot of its own.
		done := srv.waitJob(id, time.Minute, func(j e2eJob) bool { return j.Status == "completed" })
		if done.Resumed < 1 {
			t.Errorf("job completed with resumed %d, want the new worker to have resumed it", done.Resumed)
		}
		if !strings.Contains(logs.String(), "export worker exited; restarting it") {
			t.Errorf("no restart logged:\n%s", logs)
		}
	})
	t.Run("stops with the server", func(t *testing.T) {
		_, cmd, logs := startServe(t, t.TempDir(), nil)
		worker := waitWorker(t, cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, logs)
		}
		if !gone(worker, 5*time.Second) {
			t.Fatalf("export worker %d outlived its server's SIGTERM", worker)
		}
	})
	t.Run("exportProcess false", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "sluice.json")
		if err := os.WriteFile(cfg, []byte(`{"limits": {"exportProcess": false}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		base, cmd, logs := startServe(t, dir, nil, "--config", cfg)
		e2eOf(t, base, cmd, logs).completes()
		if kids := childrenOf(t, cmd.Process.Pid); len(kids) != 0 {
			t.Fatalf("children %v with exportProcess false", kids)
		}
	})
	t.Run("run by hand", func(t *testing.T) {
		if r := runSluice(t, t.TempDir(), nil, nil, "export-worker"); r.code != 1 || !strings.Contains(r.stderr, "run by sluice serve") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// e2eOf drives a server startServe started with the e2e helpers.
func e2eOf(t *testing.T, base string, cmd *exec.Cmd, logs *lockedBuffer) *e2eServer {
	return &e2eServer{t: t, base: base, cmd: cmd, logs: logs, http: &http.Client{Timeout: 60 * time.Second}}
}

// completes submits a default export job and waits for it to complete.
func (s *e2eServer) completes() string {
	s.t.Helper()
	id := s.submit(map[string]any{})
	s.waitJob(id, time.Minute, func(j e2eJob) bool { return j.Status == "completed" })
	return id
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWorkerHelloRoundTrip: the configuration the server hands its
// worker arrives whole, every section set.
func TestWorkerHelloRoundTrip(t *testing.T) {
	c := NewConfig()
	c.DataDir, c.PublicURL = "/srv/data", "https://exports.example.com"
	c.Databases = map[string]string{"default": "/srv/data/default.db", "b": "/srv/b.db"}
	c.Store = StoreConfig{Type: "s3", Dir: "exports", S3: S3StoreConfig{Endpoint: "https://s3.example.com", Region: "auto",
		Bucket: "bk", Prefix: "p/", PathStyle: true, Checksum: "md5", AccessKeyID: "ak", SecretAccessKey: "sk"}}
	c.Tokens = TokensConfig{Admin: []string{"a"}, Client: []string{"c"}, ClientExport: true}
	c.Callbacks = CallbackConfig{Secret: "s", Allow: []string{"10.0.0.0/8"}}
	c.Schedules = []Schedule{{Name: "nightly", Cron: "0 3 * * *", KeepLast: 7, MaxAge: Duration(48 * time.Hour),
		Spec: sluice.JobSpec{Format: sluice.FormatSQL, Compression: sluice.CompressZstd, Tables: []string{"t"}, Verify: true}}}
	c.Limits.ExportNice, c.Limits.ExportThreads, c.Limits.TickBudget = 5, 3, Duration(7*time.Second)
	want := workerHello{Config: c, PublicURL: "http://127.0.0.1:8080", LogLevel: slog.LevelDebug}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got workerHello
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hello changed on the way:\n got %+v\nwant %+v", got, want)
	}
}

// TestWorkerEnv checks the worker's environment: marked once, the CPU
// profile renamed, and asynchronous preemption off unless the operator's
// GODEBUG says otherwise.
func TestWorkerEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"plain", []string{"HOME=/h"},
			[]string{workerEnvMark + "=1", "HOME=/h", "GODEBUG=asyncpreemptoff=1"}},
		{"other GODEBUG settings", []string{"GODEBUG=gctrace=1"},
			[]string{workerEnvMark + "=1", "GODEBUG=gctrace=1,asyncpreemptoff=1"}},
		{"empty GODEBUG", []string{"GODEBUG="},
			[]string{workerEnvMark + "=1", "GODEBUG=asyncpreemptoff=1"}},
		{"the operator's choice stands", []string{"GODEBUG=gctrace=1, asyncpreemptoff=0"},
			[]string{workerEnvMark + "=1", "GODEBUG=gctrace=1, asyncpreemptoff=0"}},
		{"profile and an inherited mark", []string{"SLUICE_CPUPROFILE=/p", workerEnvMark + "=0"},
			[]string{workerEnvMark + "=1", "SLUICE_CPUPROFILE=/p.worker", "GODEBUG=asyncpreemptoff=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := workerEnv(tc.env); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("workerEnv(%q) = %q, want %q", tc.env, got, tc.want)
			}
		})
	}
}
