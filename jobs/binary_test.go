package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/verify"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The tests in this file run the real sluice binary (sluice serve) against
// the S3 test server, killing it with SIGKILL and SIGTERM. They need
// SLUICE_TEST_S3_* (set by scripts/test). SLUICE_TEST_CRASH_MB overrides
// the size of the database (300 MB for the kill tests, 60 for SIGTERM).

type binEnv struct {
	t       *testing.T
	bin     string
	dir     string
	db      string
	config  string
	baseURL string
	mc      *minio.Client
	bucket  string
	parts   atomic.Int64 // part uploads the server accepted, counted by a proxy
	cmd     *exec.Cmd
	logs    *bytes.Buffer
	logMu   sync.Mutex
}

func newBinEnv(t *testing.T, defaultMB int) *binEnv {
	t.Helper()
	srv := testsupport.S3(t)
	e := &binEnv{t: t, dir: t.TempDir()}
	e.bin = filepath.Join(e.dir, "sluice")
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/sluice")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sluice: %v\n%s", err, out)
	}
	u := srv.URL(t)
	ak, sk, region := srv.AccessKey, srv.SecretKey, srv.Region
	e.mc = srv.Admin(t)
	e.bucket = srv.NewBucket(t, "crash")
	// A proxy in front of the server counts the part uploads it accepted.
	rp := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		rp.ServeHTTP(rec, r)
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" && rec.status == 200 {
			e.parts.Add(1)
		}
	}))
	t.Cleanup(proxy.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e.baseURL = "http://" + addr
	e.db = filepath.Join(e.dir, "big.db")
	mb, _ := strconv.Atoi(os.Getenv("SLUICE_TEST_CRASH_MB"))
	if mb <= 0 {
		mb = defaultMB
	}
	makeDB(t, e.db, mb)
	cfg := map[string]any{
		"listen":          addr,
		"dataDir":         filepath.Join(e.dir, "data"),
		"databases":       map[string]string{"main": e.db},
		"defaultDatabase": "main",
		"store": map[string]any{"type": "s3", "s3": map[string]any{
			"endpoint": proxy.URL, "region": region, "bucket": e.bucket, "pathStyle": true,
			"accessKeyId": ak, "secretAccessKey": sk}},
		"limits": map[string]any{"tickBudget": "2s"},
	}
	b, _ := json.Marshal(cfg)
	e.config = filepath.Join(e.dir, "sluice.json")
	if err := os.WriteFile(e.config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.logs = &bytes.Buffer{}
	t.Cleanup(func() {
		if e.cmd != nil {
			e.cmd.Process.Kill()
			e.cmd.Wait()
		}
		if t.Failed() {
			e.logMu.Lock()
			t.Logf("sluice logs (tail):\n%s", tail(e.logs.String(), 4000))
			e.logMu.Unlock()
		}
	})
	return e
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// makeDB writes a WAL database of about mb megabytes (small rows with
// mixed types) with the sqlite3 CLI: much faster than the pure-Go driver
// under the race detector.
func makeDB(t *testing.T, path string, mb int) {
	t.Helper()
	rows := mb * 1_000_000 / 150
	script := fmt.Sprintf(`
		PRAGMA journal_mode=WAL;
		CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, at REAL, payload BLOB, note TEXT);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d)
		INSERT INTO events SELECT i, 'kind-' || (i %% 17), i * 0.25, randomblob(24), printf('%%d:%%s', i, hex(randomblob(24))) FROM n;
		CREATE TABLE small (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
		INSERT INTO small VALUES ('a', 1), ('b', 2.5), ('c', x'00ff');`, rows)
	cmd := exec.Command(testsupport.SQLite3(t), path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 (scripts/test installs it): %v\n%s", err, out)
	}
}

func (e *binEnv) start() {
	e.t.Helper()
	cmd := exec.Command(e.bin, "serve", "--config", e.config)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			e.logMu.Lock()
			e.logs.WriteString(sc.Text() + "\n")
			e.logMu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(e.baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sluice serve did not become healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *binEnv) kill() {
	e.cmd.Process.Signal(syscall.SIGKILL)
	e.cmd.Wait()
	e.cmd = nil
}

func (e *binEnv) submit(spec map[string]any) string {
	e.t.Helper()
	b, _ := json.Marshal(spec)
	resp, err := http.Post(e.baseURL+"/export/dump", "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		JobID string `json:"jobId"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || testsupport.Result(body, &out) != nil || out.JobID == "" {
		e.t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	return out.JobID
}

func (e *binEnv) status(id string) sluice.Job {
	e.t.Helper()
	resp, err := http.Get(e.baseURL + "/export/dump/status/" + id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	// The wire view: StarbaseDB's names, sluice's extras beside them.
	var w struct {
		sluice.Job
		Status   string `json:"status"`
		Progress struct {
			BytesWritten  int64 `json:"bytesWritten"`
			PartsUploaded int   `json:"partsUploaded"`
		} `json:"progress"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || testsupport.Result(body, &w) != nil {
		e.t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	j := w.Job
	j.State = sluice.State(w.Status)
	if w.Status == "processing" {
		j.State = sluice.StateRunning
	}
	j.Progress = sluice.Progress{Bytes: w.Progress.BytesWritten, PartsUploaded: w.Progress.PartsUploaded}
	return j
}

func (e *binEnv) waitDone(id string, timeout time.Duration) sluice.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := e.status(id)
		if j.State.Terminal() {
			if j.State != sluice.StateCompleted {
				e.t.Fatalf("job %s: %s", j.State, j.Error)
			}
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job still %s after %v: %+v", j.State, timeout, j.Progress)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check verifies the finished object against want (hex SHA-256) and that
// the bucket holds nothing else: no other object, no incomplete upload.
func (e *binEnv) check(j sluice.Job, want string) {
	e.t.Helper()
	ctx := context.Background()
	obj, err := e.mc.GetObject(ctx, e.bucket, j.Key, minio.GetObjectOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, obj)
	obj.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want || j.SHA256 != want || j.Size != n {
		e.t.Errorf("object sha256 %s (status %s, %d bytes), uninterrupted dump %s", got, j.SHA256, n, want)
	}
	for o := range e.mc.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err == nil && o.Key != j.Key && o.Key != verify.ManifestKey(j.Key) {
			e.t.Errorf("stray object %s", o.Key)
		}
	}
	// A completed job aborts the uploads that killed processes started
	// before their first checkpoint just after its completing transaction
	// (fenced first, so that a process that lost its lease never aborts
	// the new owner's upload): they may outlive the status by a moment,
	// the more so in a niced export worker on a busy machine.
	waitNone(e.t, "incomplete uploads", func() []string {
		var left []string
		for u := range e.mc.ListIncompleteUploads(ctx, e.bucket, "", true) {
			if u.Err == nil {
				left = append(left, u.Key+" "+u.UploadID)
			}
		}
		return left
	})
}

// waitNone waits up to 30 s for list to return nothing, and fails the
// test with what it still returns then: for what a job's cleanup removes
// just after its completing transaction.
func waitNone(t *testing.T, what string, list func() []string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left := list()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s left: %v", what, left)
			return
		}
	}
}

// dumpSHA is the SHA-256 of an uninterrupted SQL dump of db, made by
// the same binary (sluice dump).
func (e *binEnv) dumpSHA(db string) string {
	e.t.Helper()
	cmd := exec.Command(e.bin, "dump", "--db", db, "--format", "sql", "-o", "-")
	h := sha256.New()
	cmd.Stdout = h
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("sluice dump: %v\n%s", err, stderr.String())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// killLoop kills and restarts sluice at random moments, each after the
// job has made progress in the current process (so every kill lands
// mid-dump, whatever the machine's speed), kills times, and returns how
// many kills happened.
func (e *binEnv) killLoop(id string, kills int) int {
	e.t.Helper()
	var last int64
	for done := 0; done < kills; done++ {
		deadline := time.Now().Add(5 * time.Minute)
		for {
			j := e.status(id)
			if j.State.Terminal() {
				e.t.Fatalf("job finished (%s) after only %d kills; use a larger SLUICE_TEST_CRASH_MB", j.State, done)
			}
			if j.Progress.Bytes > last {
				last = j.Progress.Bytes
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("no progress after restart %d", done)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		e.kill()
		e.start()
	}
	return kills
}

func TestBinaryKill9(t *testing.T) {
	e := newBinEnv(t, 300)
	want := e.dumpSHA(e.db)
	e.start()
	id := e.submit(map[string]any{"format": "sql", "verify": true})
	kills := e.killLoop(id, 10)
	j := e.waitDone(id, 10*time.Minute)
	e.check(j, want)
	// The resumed job's digests match its bytes: verification passes.
	for deadline := time.Now().Add(5 * time.Minute); j.Verification == nil || j.Verification.Status != sluice.VerifyPassed; time.Sleep(100 * time.Millisecond) {
		if j.Verification != nil && j.Verification.Status == sluice.VerifyFailed || time.Now().After(deadline) {
			t.Fatalf("verification of the resumed job: %+v", j.Verification)
		}
		j = e.status(id)
	}
	var def Config
	def.setDefaults() // the binary runs with the default window
	if extra := e.parts.Load() - int64(j.Progress.PartsUploaded); extra > int64(def.UploadConcurrency*kills) {
		t.Errorf("%d part uploads for %d parts: %d re-uploads for %d kills", e.parts.Load(), j.Progress.PartsUploaded, extra, kills)
	}
	if j.Resumed < 1 || j.Consistency != sluice.ConsistencyResumed {
		t.Errorf("resumed %d consistency %s", j.Resumed, j.Consistency)
	}
	t.Logf("%d kills, %d parts, %d part uploads, resumed %d", kills, j.Progress.PartsUploaded, e.parts.Load(), j.Resumed)
}

// TestBinaryKill9Strict: a writer changes the database throughout; the
// strict job's object is the database as it was when the job started.
func TestBinaryKill9Strict(t *testing.T) {
	e := newBinEnv(t, 300)
	e.start()
	id := e.submit(map[string]any{"format": "sql", "consistency": "strict"})
	// Wait for the snapshot copy, then record the state it froze (no
	// writer has run yet) and start writing.
	snapDir := filepath.Join(e.dir, "data", "snapshots")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(snapDir, id+".db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no strict snapshot copy appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := e.dumpSHA(e.db)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := sqlite.OpenConn(e.db)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		conn.SetBusyTimeout(5 * time.Second)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := sqlitex.ExecuteScript(conn, fmt.Sprintf(`
				INSERT INTO events (kind, at, note) VALUES ('written', %d, 'during the dump');
				UPDATE events SET note = 'changed' WHERE id = %d;
				DELETE FROM events WHERE id = %d;`, i, 1+i*7, 2+i*7), nil)
			if err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	kills := e.killLoop(id, 10)
	j := e.waitDone(id, 10*time.Minute)
	close(stop)
	wg.Wait()
	if writes.Load() == 0 {
		t.Fatal("the writer wrote nothing")
	}
	e.check(j, want)
	if j.Consistency != sluice.ConsistencyStrict || j.Resumed < 1 {
		t.Errorf("consistency %s resumed %d", j.Consistency, j.Resumed)
	}
	// The copy goes just after the completing transaction, like the stale
	// uploads (check).
	waitNone(t, "snapshot copies", func() []string {
		entries, _ := os.ReadDir(snapDir)
		var left []string
		for _, e := range entries {
			left = append(left, e.Name())
		}
		return left
	})
	t.Logf("%d kills, %d writes, %d parts, %d part uploads", kills, writes.Load(), j.Progress.PartsUploaded, e.parts.Load())
}

// TestBinarySIGTERM: SIGTERM mid-dump exits 0 within 5 s; after a
// restart the job finishes.
func TestBinarySIGTERM(t *testing.T) {
	e := newBinEnv(t, 60)
	want := e.dumpSHA(e.db)
	e.start()
	id := e.submit(map[string]any{"format": "sql"})
	for e.status(id).Progress.Bytes == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	e.cmd.Process.Signal(syscall.SIGTERM)
	err := e.cmd.Wait()
	took := time.Since(start)
	e.cmd = nil
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("exit took %v", took)
	}
	e.start()
	j := e.waitDone(id, 10*time.Minute)
	e.check(j, want)
	t.Logf("SIGTERM exit in %v; resumed %d", took, j.Resumed)
}
