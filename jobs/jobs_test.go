package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore/storetest"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

func TestJobCompletes(t *testing.T) {
	db := testsupport.Corpus(t, "chinook.sqlite")
	tests := []struct {
		name string
		spec sluice.JobSpec
	}{
		{"sql", sluice.JobSpec{Format: sluice.FormatSQL}},
		{"sql gzip", sluice.JobSpec{Format: sluice.FormatSQL, Compression: sluice.CompressGzip}},
		{"csv zstd", sluice.JobSpec{Format: sluice.FormatCSV, Compression: sluice.CompressZstd}},
		{"json tables", sluice.JobSpec{Format: sluice.FormatJSON, Tables: []string{"Album", "Artist"}, ChunkSize: 7}},
		{"ndjson exclude strict", sluice.JobSpec{Format: sluice.FormatNDJSON, Exclude: []string{"Track"}, Consistency: sluice.ConsistencyStrict}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, db, func(c *Config) { c.TickBudget = 30 * time.Millisecond })
			svc := e.start()
			job, err := svc.Submit(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if job.State != sluice.StateQueued || job.Key == "" {
				t.Fatalf("submitted job: %+v", job)
			}
			done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
			obj := storetest.ReadObject(t, e.store, done.Key)
			sum := sha256.Sum256(obj)
			if done.SHA256 != hex.EncodeToString(sum[:]) || done.Size != int64(len(obj)) {
				t.Errorf("status sha256 %s size %d, object %x %d", done.SHA256, done.Size, sum, len(obj))
			}
			want := referenceDump(t, e.dbPath, done.Spec)
			if got := decompress(t, tc.spec.Compression, obj); !bytes.Equal(got, want) {
				t.Fatalf("object (%d bytes decompressed) differs from an uninterrupted dump (%d bytes)", len(got), len(want))
			}
			if done.Progress.PartsUploaded != done.Progress.PartsTotal || done.Progress.Rows == 0 ||
				done.Progress.TablesDone != done.Progress.TablesTotal || done.FinishedAt == nil || done.StartedAt == nil {
				t.Errorf("final progress: %+v", done)
			}
			wantCons := sluice.ConsistencySnapshot
			if tc.spec.Consistency == sluice.ConsistencyStrict {
				wantCons = sluice.ConsistencyStrict
			}
			if done.Consistency != wantCons || done.Resumed != 0 {
				t.Errorf("consistency %s resumed %d", done.Consistency, done.Resumed)
			}
			assertClean(t, e.store, done.Key)
			// The download API serves the object, with ranges.
			rc, _, err := svc.Open(context.Background(), job.ID, 10, 20)
			if err != nil {
				t.Fatal(err)
			}
			var part bytes.Buffer
			part.ReadFrom(rc)
			rc.Close()
			if !bytes.Equal(part.Bytes(), obj[10:30]) {
				t.Errorf("ranged open: got %q", part.Bytes())
			}
			if _, err := svc.DownloadURL(context.Background(), job.ID, time.Hour); err != nil {
				t.Errorf("download url: %v", err)
			}
		})
	}
}

// TestResumeAfterCrash kills the service (no checkpoint, no cleanup, the
// lease left held) at several points, restarts it on the same data dir
// each time, and checks that the job completes with exactly the bytes of
// an uninterrupted dump, re-uploading at most the window of N parts per
// kill. (Pages are kept smaller than the 64 KiB test parts, as 1000-row
// pages are smaller than real 8 MiB parts.)
func TestResumeAfterCrash(t *testing.T) {
	db := testsupport.Corpus(t, "chinook.sqlite")
	tests := []struct {
		name    string
		spec    sluice.JobSpec
		crashes []int64 // crash when this many parts have been uploaded in total
	}{
		{"sql", sluice.JobSpec{Format: sluice.FormatSQL, ChunkSize: 100}, []int64{2, 5, 9}},
		{"sql zstd", sluice.JobSpec{Format: sluice.FormatSQL, Compression: sluice.CompressZstd, ChunkSize: 50}, []int64{2, 3}},
		{"json gzip strict", sluice.JobSpec{Format: sluice.FormatJSON, Compression: sluice.CompressGzip, Consistency: sluice.ConsistencyStrict, ChunkSize: 100}, []int64{3, 4}},
		{"csv", sluice.JobSpec{Format: sluice.FormatCSV, ChunkSize: 100}, []int64{4, 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A window of one part checkpoints after every part, so each
			// kill lands after a checkpoint whatever the machine's speed
			// (TestCrashRedoesAtMostWindow covers larger windows).
			e := newEnv(t, db, func(c *Config) { c.UploadConcurrency = 1 })
			e.store.crashAt.Store(tc.crashes[0])
			svc := e.start()
			job, err := svc.Submit(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.crashes {
				deadline := time.Now().Add(time.Minute)
				for !e.store.crashed.Load() {
					if j, _ := svc.Get(context.Background(), job.ID); j.State.Terminal() || time.Now().After(deadline) {
						t.Fatalf("crash %d at %d parts did not happen: job %s %s", i, tc.crashes[i], j.State, j.Error)
					}
					time.Sleep(5 * time.Millisecond)
				}
				e.crash()
				if i+1 < len(tc.crashes) {
					e.store.crashAt.Store(tc.crashes[i+1])
				}
				svc = e.start()
			}
			done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
			e.checkObject(done)
			if done.Resumed < 1 || done.Resumed > len(tc.crashes) {
				t.Errorf("resumed %d, want 1..%d", done.Resumed, len(tc.crashes))
			}
			wantCons := sluice.ConsistencyResumed
			if tc.spec.Consistency == sluice.ConsistencyStrict {
				wantCons = sluice.ConsistencyStrict
			}
			if done.Consistency != wantCons {
				t.Errorf("consistency %s, want %s", done.Consistency, wantCons)
			}
			window := int64(svc.cfg.UploadConcurrency)
			if extra := e.store.uploads.Load() - int64(done.Progress.PartsUploaded); extra > window*int64(len(tc.crashes)) || extra < 0 {
				t.Errorf("%d part uploads for %d parts: %d re-uploads for %d kills", e.store.uploads.Load(), done.Progress.PartsUploaded, extra, len(tc.crashes))
			}
			assertClean(t, e.store, done.Key)
		})
	}
}

// TestResumeWithLostLeftover: when the leftover file of the last
// checkpoint is gone after a crash, the job cannot continue byte for byte;
// it discards its upload and starts over, and still completes with the
// right bytes.
func TestResumeWithLostLeftover(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.UploadConcurrency = 2 })
	e.store.crashAt.Store(6) // past a full window, so a checkpoint with leftover bytes was saved
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Format: sluice.FormatSQL, ChunkSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !e.store.crashed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no crash")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.crash()
	dir := filepath.Join(e.dataDir, state.FileName+".leftovers")
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no leftover file to lose in %s: %v", dir, err)
	}
	for _, en := range ents {
		if err := os.Remove(filepath.Join(dir, en.Name())); err != nil {
			t.Fatal(err)
		}
	}
	svc = e.start()
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	e.checkObject(done)
	assertClean(t, e.store, done.Key)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("leftover files remain after completion: %v", ents)
	}
}

// TestShutdownResumes closes the service mid-dump (as on SIGTERM): Close
// returns promptly after a checkpoint, and a new service finishes the job.
func TestShutdownResumes(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.TickBudget = time.Hour })
	svc := e.start()
	reached := make(chan struct{})
	var once bool
	e.setHook(func(string, int) error {
		if !once {
			once = true
			close(reached)
		}
		time.Sleep(20 * time.Millisecond) // a slow dump
		return nil
	})
	job, err := svc.Submit(context.Background(), sluice.JobSpec{})
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close took %v", d)
	}
	e.setHook(nil)
	svc = e.start()
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	e.checkObject(done)
	if done.Resumed != 1 || done.Consistency != sluice.ConsistencyResumed {
		t.Errorf("resumed %d consistency %s", done.Resumed, done.Consistency)
	}
	assertClean(t, e.store, done.Key)
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name  string
		spec  sluice.JobSpec
		parts int // cancel once this many parts are checkpointed; 0: while queued
	}{
		{"running", sluice.JobSpec{}, 2},
		{"running strict", sluice.JobSpec{Consistency: sluice.ConsistencyStrict}, 3},
		{"queued", sluice.JobSpec{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.UploadConcurrency = 1 }) // checkpoints per part: the hook sees them before the dump ends
			if tc.parts == 0 {
				e.cfg.MaxRunning = 1
			}
			svc := e.start()
			ctx := context.Background()
			cancelled := make(chan struct{})
			reached := make(chan struct{}, 1)
			e.setHook(func(id string, parts int) error {
				if parts >= tc.parts {
					select {
					case reached <- struct{}{}:
					default:
					}
					<-cancelled // hold the tick here until Cancel has marked the job
				}
				return nil
			})
			var blocker *sluice.Job
			if tc.parts == 0 {
				// Fill the only running slot, so the job under test waits.
				var err error
				if blocker, err = svc.Submit(ctx, sluice.JobSpec{}); err != nil {
					t.Fatal(err)
				}
				<-reached
			}
			job, err := svc.Submit(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if tc.parts > 0 {
				<-reached
			}
			go closeWhenCancelled(svc, job.ID, cancelled)
			got, err := svc.Cancel(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != sluice.StateCancelled {
				t.Fatalf("state after cancel: %s", got.State)
			}
			if blocker != nil {
				if _, err := svc.Cancel(ctx, blocker.ID); err != nil {
					t.Fatal(err)
				}
			}
			// Idempotent.
			if again, err := svc.Cancel(ctx, job.ID); err != nil || again.State != sluice.StateCancelled {
				t.Fatalf("second cancel: %v %v", again, err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				ups, _ := e.store.ListUploads(ctx, "")
				objs, _ := e.store.List(ctx, "")
				if len(ups) == 0 && len(objs) == 0 {
					break
				}
				if time.Now().After(deadline) {
					assertClean(t, e.store)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, _, err := svc.Open(ctx, job.ID, 0, -1); !errors.Is(err, sluice.ErrConflict) {
				t.Errorf("download of a cancelled job: %v, want ErrConflict", err)
			}
			e.stop()
			if snaps, _ := filepathGlob(e.dataDir, "snapshots/*"); len(snaps) != 0 {
				t.Errorf("snapshot copies left: %v", snaps)
			}
		})
	}
}

func TestCancelFinishedJob(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Tables: []string{"Genre"}})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	if _, err := svc.Cancel(context.Background(), job.ID); !errors.Is(err, sluice.ErrConflict) {
		t.Fatalf("cancel completed: %v, want ErrConflict", err)
	}
	if _, err := svc.Cancel(context.Background(), "nope"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("cancel unknown: %v, want ErrNotFound", err)
	}
	if _, err := svc.Get(context.Background(), "nope"); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("get unknown: %v, want ErrNotFound", err)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	svc := e.start()
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		j, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}, Key: fmt.Sprintf("list/%d.sql", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{j.ID}, ids...) // newest first
		time.Sleep(2 * time.Millisecond)
	}
	for _, id := range ids {
		waitJob(t, svc, id, time.Minute, sluice.StateCompleted)
	}
	var got []string
	after := ""
	for {
		page, next, err := svc.List(ctx, sluice.JobQuery{Limit: 2, After: after, States: []sluice.State{sluice.StateCompleted}})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			got = append(got, j.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("paged list %v, want %v", got, ids)
	}
	if page, _, _ := svc.List(ctx, sluice.JobQuery{States: []sluice.State{sluice.StateRunning}}); len(page) != 0 {
		t.Errorf("running jobs: %d", len(page))
	}
	if _, _, err := svc.List(ctx, sluice.JobQuery{States: []sluice.State{"bogus"}}); !errors.Is(err, sluice.ErrInvalid) {
		t.Errorf("bad state filter: %v", err)
	}
}

// TestCrashAfterSmallPut: a dump smaller than one part is stored with a
// single Put; a crash right after it, before the job is recorded as
// completed, must not fail the job on restart.
func TestCrashAfterSmallPut(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	e.store.crashPut.Store(true)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Tables: []string{"Genre"}})
	if err != nil {
		t.Fatal(err)
	}
	for !e.store.crashed.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	e.crash()
	svc = e.start()
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	e.checkObject(done)
	assertClean(t, e.store, done.Key)
}

// TestCancelWhileCompleting: a cancel that lands after the object is
// stored, or after its manifest is too, but before the job is recorded
// as completed, leaves neither object nor manifest behind.
func TestCancelWhileCompleting(t *testing.T) {
	tests := []struct {
		name   string
		spec   sluice.JobSpec
		manual bool // hold at the manifest rather than the object
	}{
		{"after the object (multipart)", sluice.JobSpec{}, false},
		{"after the object (one put)", sluice.JobSpec{Tables: []string{"Genre"}}, false},
		{"after the manifest", sluice.JobSpec{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
			svc := e.start()
			ctx := context.Background()
			reached, cancelled := make(chan struct{}), make(chan struct{})
			var once sync.Once
			e.store.mu.Lock()
			e.store.stored = func(key string) {
				if verify.IsManifestKey(key) == tc.manual {
					once.Do(func() {
						close(reached)
						<-cancelled // hold the tick until Cancel has marked the job
					})
				}
			}
			e.store.mu.Unlock()
			job, err := svc.Submit(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			<-reached
			go closeWhenCancelled(svc, job.ID, cancelled)
			if got, err := svc.Cancel(ctx, job.ID); err != nil || got.State != sluice.StateCancelled {
				t.Fatalf("cancel: %v %v", got, err)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				objs, _ := e.store.List(ctx, "")
				if len(objs) == 0 || time.Now().After(deadline) {
					break
				}
			}
			assertClean(t, e.store)
			if j := mustGet(t, svc, job.ID); j.State != sluice.StateCancelled {
				t.Errorf("job %s after cancel", j.State)
			}
		})
	}
}

// closeWhenCancelled closes ch once the job shows as cancelled: a hook
// holding a tick waits on it, so the cancel lands at the hook's point.
func closeWhenCancelled(svc *Service, id string, ch chan struct{}) {
	for {
		if j, _ := svc.Get(context.Background(), id); j == nil || j.State == sluice.StateCancelled {
			close(ch)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndedSignals checks that Ended's channel closes when a job of the
// process ends, so that a status long poll answers at once.
func TestEndedSignals(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool
		want   sluice.State
	}{
		{"completed", false, sluice.StateCompleted},
		{"cancelled", true, sluice.StateCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
			svc := e.start()
			ctx := context.Background()
			ended := svc.Ended()
			job, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Artist"}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				if _, err := svc.Cancel(ctx, job.ID); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatal("Ended's channel did not close")
			}
			if j := waitJob(t, svc, job.ID, time.Minute, tc.want); j.State != tc.want {
				t.Fatalf("job %s, want %s", j.State, tc.want)
			}
		})
	}
}
