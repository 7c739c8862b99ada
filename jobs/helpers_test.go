package jobs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
	"github.com/sluice-dev/sluice/objstore/storetest"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

const testPartSize = 64 << 10

// errAbandon, returned by the test store and hooks, stops a tick dead as
// if the process had been killed: production handles it as a lost lease
// (no checkpoint, no cleanup, the task untouched).
var errAbandon = fmt.Errorf("test: process killed: %w", errLeaseLost)

// testStore wraps a store with counters and a crash switch.
type testStore struct {
	objstore.Store
	uploads   atomic.Int64 // successful UploadPart calls
	crashAt   atomic.Int64 // after this many uploads, the next successful one "kills the process"
	crashed   atomic.Bool
	failParts atomic.Int64 // fail this many UploadPart calls with a retryable error first
	crashPut  atomic.Bool  // the next successful Put "kills the process"
	// crashComplete: the next CompleteMultipart "kills the process"
	// before it reaches the store.
	crashComplete atomic.Bool
	delay         atomic.Int64 // each UploadPart takes this long (a slow store)
	waiting       atomic.Int64 // UploadPart calls waiting at the gate
	// corruptManifests changes a digest in every manifest stored.
	corruptManifests atomic.Bool

	mu      sync.Mutex
	perPart map[int]int      // successful UploadPart calls by part number
	gate    chan struct{}    // when set, every UploadPart waits for it to close
	listErr error            // when set, ListUploads fails with it
	partErr error            // when set, UploadPart fails with it
	stored  func(key string) // when set, called after each successful Put and CompleteMultipart
}

// afterStore calls the stored hook, if any, for key.
func (s *testStore) afterStore(key string) {
	s.mu.Lock()
	h := s.stored
	s.mu.Unlock()
	if h != nil {
		h(key)
	}
}

func (s *testStore) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.Part, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if s.crashComplete.CompareAndSwap(true, false) {
		s.crashed.Store(true)
		return objstore.ObjectInfo{}, errAbandon
	}
	info, err := s.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
	if err == nil {
		s.afterStore(key)
	}
	return info, err
}

func (s *testStore) setGate(g chan struct{}) {
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
}

func (s *testStore) ListUploads(ctx context.Context, prefix string) ([]objstore.Upload, error) {
	s.mu.Lock()
	err := s.listErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Store.ListUploads(ctx, prefix)
}

// uploadsOf returns how many times each part number was stored.
func (s *testStore) uploadsOf() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int{}
	for k, v := range s.perPart {
		out[k] = v
	}
	return out
}

func (s *testStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if s.corruptManifests.Load() && verify.IsManifestKey(key) {
		b := corruptManifest(r)
		r, size = bytes.NewReader(b), int64(len(b))
	}
	info, err := s.Store.Put(ctx, key, r, size, opts)
	if err == nil {
		s.afterStore(key)
	}
	if err == nil && s.crashPut.CompareAndSwap(true, false) {
		s.crashed.Store(true)
		return objstore.ObjectInfo{}, errAbandon
	}
	return info, err
}

// Limits passes the wrapped store's limits through.
func (s *testStore) Limits() objstore.Limits { return objstore.LimitsOf(s.Store) }

func (s *testStore) UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64, md5 string) (objstore.Part, error) {
	if s.crashed.Load() {
		return objstore.Part{}, errAbandon
	}
	if s.failParts.Load() > 0 {
		s.failParts.Add(-1)
		return objstore.Part{}, &objstore.StatusError{Op: "upload part", StatusCode: 503}
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	s.mu.Lock()
	gate, perr := s.gate, s.partErr
	s.mu.Unlock()
	if perr != nil {
		return objstore.Part{}, perr
	}
	if gate != nil {
		s.waiting.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			s.waiting.Add(-1)
			return objstore.Part{}, ctx.Err()
		}
		s.waiting.Add(-1)
	}
	p, err := s.Store.UploadPart(ctx, key, uploadID, number, r, size, md5)
	if err != nil {
		return p, err
	}
	s.mu.Lock()
	if s.perPart == nil {
		s.perPart = map[int]int{}
	}
	s.perPart[number]++
	s.mu.Unlock()
	n := s.uploads.Add(1)
	if c := s.crashAt.Load(); c > 0 && n >= c {
		s.crashed.Store(true)
		return objstore.Part{}, errAbandon // the part is stored; the process dies before hearing so
	}
	return p, nil
}

type env struct {
	t       *testing.T
	dataDir string
	exports string // the file store's root
	dbPath  string
	store   *testStore
	cfg     Config
	log     *slog.Logger

	mu   sync.Mutex
	svc  *Service
	st   *state.DB
	hook func(jobID string, parts int) error
}

func newEnv(t *testing.T, db string, mutate func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dataDir: filepath.Join(dir, "data"), log: testsupport.Logger(t)}
	if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if db != "" {
		e.dbPath = testsupport.CopyFile(t, db, dir)
	}
	e.exports = filepath.Join(dir, "exports")
	fs, err := file.New(e.exports, file.Options{
		Limits: objstore.Limits{MinPartSize: testPartSize, MaxParts: 10000}, SigningKey: []byte("k"), BaseURL: "http://127.0.0.1:1"}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.store = &testStore{Store: fs}
	e.cfg = Config{
		DataDir:         e.dataDir,
		Databases:       map[string]string{"main": e.dbPath},
		DefaultDatabase: "main",
		TickBudget:      time.Second,
		Lease:           3 * time.Second,
		Poll:            20 * time.Millisecond,
		CallbackAllow:   []string{"127.0.0.1"},
		CallbackSecret:  "s3cret",
		CallbackBackoff: 10 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	t.Cleanup(func() { e.stop() })
	return e
}

// start opens a fresh state handle and service, as a new process would.
func (e *env) start() *Service {
	e.t.Helper()
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(e.dataDir, state.FileName), e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cfg.afterCheckpoint = func(id string, parts int) error {
		e.mu.Lock()
		h := e.hook
		e.mu.Unlock()
		if h != nil {
			return h(id, parts)
		}
		return nil
	}
	svc, err := New(ctx, e.cfg, st, e.store, e.log)
	if err != nil {
		st.Close()
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.svc, e.st = svc, st
	e.mu.Unlock()
	return svc
}

func (e *env) setHook(h func(jobID string, parts int) error) {
	e.mu.Lock()
	e.hook = h
	e.mu.Unlock()
}

// stop shuts the service down cleanly.
func (e *env) stop() {
	e.mu.Lock()
	svc, st := e.svc, e.st
	e.svc, e.st = nil, nil
	e.mu.Unlock()
	if svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		e.t.Errorf("close: %v", err)
	}
	st.Close()
}

// crash stops the service as kill -9 would: nothing is checkpointed,
// released or cleaned up; leases stay held by a dead owner.
func (e *env) crash() {
	e.mu.Lock()
	svc, st := e.svc, e.st
	e.svc, e.st = nil, nil
	e.mu.Unlock()
	svc.mu.Lock()
	svc.closed = true
	svc.mu.Unlock()
	svc.hardStop() // no soft stop: ticks die mid-way
	svc.stop()
	svc.wg.Wait()
	for id, src := range svc.sources {
		src.src.Close()
		delete(svc.sources, id)
	}
	svc.lock.Close() // the kernel drops a dead process's flock; the file stays
	st.Close()
	e.store.crashed.Store(false)
	e.store.crashAt.Store(0)
}

// completeAfterCrash submits spec to a new service, waits until the test
// store has "killed the process" during the job, crashes the service as
// kill -9 would, starts a new one on the same data, and returns the job
// once it has completed, its object checked against an uninterrupted
// dump.
func (e *env) completeAfterCrash(spec sluice.JobSpec) *sluice.Job {
	e.t.Helper()
	svc := e.start()
	job, err := svc.Submit(context.Background(), spec)
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !e.store.crashed.Load() {
		if j := mustGet(e.t, svc, job.ID); j.State.Terminal() || time.Now().After(deadline) {
			e.t.Fatalf("no crash: job %s %s", j.State, j.Error)
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.crash()
	done := waitJob(e.t, e.start(), job.ID, time.Minute, sluice.StateCompleted)
	e.checkObject(done)
	return done
}

// checkObject checks that a completed job's object holds exactly the
// bytes of an uninterrupted dump.
func (e *env) checkObject(done *sluice.Job) {
	e.t.Helper()
	want := referenceDump(e.t, e.dbPath, done.Spec)
	if got := decompress(e.t, done.Spec.Compression, storetest.ReadObject(e.t, e.store, done.Key)); !bytes.Equal(got, want) {
		e.t.Fatalf("object (%d bytes) differs from an uninterrupted dump (%d bytes)", len(got), len(want))
	}
}

// waitTaskGone waits until job id's tick task is gone from st: the tick
// has ended and the job's cleanup is done.
func waitTaskGone(t *testing.T, st *state.DB, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var task *state.Task
		if err := st.View(context.Background(), func(tx *state.Tx) (err error) {
			task, err = tx.GetTask(state.TickKey(id))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if task == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s's tick task still there after %v: %+v", id, timeout, task)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitJob(t *testing.T, svc *Service, id string, timeout time.Duration, want ...sluice.State) *sluice.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if j.State == w {
				return j
			}
		}
		if j.State.Terminal() {
			t.Fatalf("job %s is %s (%s), want %v", id, j.State, j.Error, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %v (progress %+v), want %v", id, j.State, timeout, j.Progress, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// referenceDump is an uninterrupted dump of db, uncompressed.
func referenceDump(t *testing.T, db string, spec sluice.JobSpec) []byte {
	t.Helper()
	ctx := context.Background()
	src, err := dump.Open(ctx, db, dumpOptions(spec, dump.DefaultChunkSize), testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	if _, err := src.Dump(ctx, &buf, dump.Cursor{}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decompress(t *testing.T, c sluice.Compression, b []byte) []byte {
	t.Helper()
	switch c {
	case sluice.CompressGzip:
		zr, err := gzip.NewReader(bytes.NewReader(b)) // the stdlib reader, multistream by default
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case sluice.CompressZstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return b
}

// assertClean checks that the store holds no incomplete uploads and only
// the given objects.
func assertClean(t *testing.T, store objstore.Store, keys ...string) {
	t.Helper()
	ctx := context.Background()
	ups, err := store.ListUploads(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 0 {
		t.Errorf("incomplete uploads left: %+v", ups)
	}
	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		want[verify.ManifestKey(k)] = true // a completed export's manifest is part of it
	}
	for _, o := range objs {
		if !want[o.Key] {
			t.Errorf("unexpected object %s (%d bytes)", o.Key, o.Size)
		}
		delete(want, o.Key)
	}
	for k := range want {
		t.Errorf("object %s missing", k)
	}
}

func filepathGlob(dir, pattern string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, pattern))
}
