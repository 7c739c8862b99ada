package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestCrashRedoesAtMostWindow kills the service while parts upload in
// the background (a slow store keeps the window full) and counts the
// UploadPart calls per part number: after one crash, no more than N
// (Config.UploadConcurrency) part numbers are stored twice, and the
// object is byte-identical to an uninterrupted dump.
func TestCrashRedoesAtMostWindow(t *testing.T) {
	tests := []struct {
		name    string
		window  int
		crashAt int64
		spec    sluice.JobSpec
	}{
		{"window 4 early", 4, 3, sluice.JobSpec{ChunkSize: 50}},
		{"window 4 late", 4, 11, sluice.JobSpec{ChunkSize: 50}},
		{"window 2", 2, 7, sluice.JobSpec{ChunkSize: 50}},
		{"window 3 gzip", 3, 3, sluice.JobSpec{ChunkSize: 20, Compression: sluice.CompressGzip, Format: sluice.FormatJSON}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
				c.UploadConcurrency = tc.window
				c.TickBudget = time.Hour
				c.CheckpointInterval = time.Hour // only a full window forces checkpoints
			})
			e.store.delay.Store(int64(5 * time.Millisecond))
			e.store.crashAt.Store(tc.crashAt)
			done := e.completeAfterCrash(tc.spec)
			twice := 0
			for num, n := range e.store.uploadsOf() {
				if n > 2 {
					t.Errorf("part %d stored %d times after one crash", num, n)
				}
				if n > 1 {
					twice++
				}
			}
			t.Logf("%d parts, %d stored twice, window %d", done.Progress.PartsUploaded, twice, tc.window)
			if twice > tc.window {
				t.Errorf("%d parts stored twice after one crash, window %d", twice, tc.window)
			}
			assertClean(t, e.store, done.Key)
		})
	}
}

// TestCrashDuringComplete kills the service as it completes the upload,
// after the dump's last checkpoint. That checkpoint names every part (the
// Writer is sealed first, so it holds no leftover bytes): the restarted
// job only completes the upload, and stores no part twice.
func TestCrashDuringComplete(t *testing.T) {
	tests := []struct {
		name string
		spec sluice.JobSpec
	}{
		{"sql", sluice.JobSpec{ChunkSize: 50}},
		{"json gzip", sluice.JobSpec{ChunkSize: 20, Compression: sluice.CompressGzip, Format: sluice.FormatJSON}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.TickBudget = time.Hour })
			e.store.crashComplete.Store(true)
			done := e.completeAfterCrash(tc.spec)
			parts := e.store.uploadsOf()
			if len(parts) < 2 {
				t.Fatalf("%d parts: the test needs a multipart upload", len(parts))
			}
			for num, n := range parts {
				if n != 1 {
					t.Errorf("part %d stored %d times, want once", num, n)
				}
			}
			assertClean(t, e.store, done.Key)
		})
	}
}

// TestCancelWithPartsInFlight cancels a job while its parts are still
// uploading (the store holds them), directly or after a crash left them
// in flight, and checks that no upload, no object and no file of the
// file store remain.
func TestCancelWithPartsInFlight(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "cancel"
		if crash {
			name = "crash then cancel"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.TickBudget = time.Hour })
			gate := make(chan struct{})
			e.store.setGate(gate)
			svc := e.start()
			ctx := context.Background()
			job, err := svc.Submit(ctx, sluice.JobSpec{ChunkSize: 50})
			if err != nil {
				t.Fatal(err)
			}
			// Wait until the dump blocks on a full window of parts.
			deadline := time.Now().Add(time.Minute)
			for {
				if e.store.waiting.Load() >= 4 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no parts in flight")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if crash {
				e.crash()
				svc = e.start()
			}
			go func() {
				for mustGet(t, svc, job.ID).State != sluice.StateCancelled {
					time.Sleep(5 * time.Millisecond)
				}
				close(gate) // the parts in flight reach the store after the cancel
			}()
			if _, err := svc.Cancel(ctx, job.ID); err != nil {
				t.Fatal(err)
			}
			deadline = time.Now().Add(20 * time.Second)
			for {
				files := regularFiles(t, e.exports)
				ups, _ := e.store.ListUploads(ctx, "")
				if len(files) == 0 && len(ups) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("left behind: uploads %v, files %v", ups, files)
				}
				time.Sleep(20 * time.Millisecond)
			}
			assertClean(t, e.store)
		})
	}
}

// regularFiles lists the regular files under dir.
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// TestFailedJobTaskEnds: a job whose cleanup keeps failing with an error
// retrying cannot fix (here ListUploads refuses the key, as the file store
// did for a reserved key) fails, and its task ends instead of retrying
// forever; the same holds for a cancelled job.
func TestFailedJobTaskEnds(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(map[bool]string{false: "failed", true: "cancelled"}[cancel], func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.TickBudget = time.Hour })
			e.store.mu.Lock()
			e.store.listErr = fmt.Errorf("list uploads: %w", objstore.ErrInvalidKey)
			e.store.mu.Unlock()
			e.store.mu.Lock()
			if !cancel {
				e.store.partErr = fmt.Errorf("upload part: %w", objstore.ErrAccessDenied)
			} else {
				e.store.gate = make(chan struct{})
			}
			e.store.mu.Unlock()
			svc := e.start()
			ctx := context.Background()
			job, err := svc.Submit(ctx, sluice.JobSpec{})
			if err != nil {
				t.Fatal(err)
			}
			want := sluice.StateFailed
			if cancel {
				waitJob(t, svc, job.ID, time.Minute, sluice.StateRunning)
				if _, err := svc.Cancel(ctx, job.ID); err != nil {
					t.Fatal(err)
				}
				want = sluice.StateCancelled
			}
			waitJob(t, svc, job.ID, time.Minute, want)
			waitTaskGone(t, e.st, job.ID, 30*time.Second)
		})
	}
}

// TestWALLimitReleasesSnapshot: writes during a snapshot job grow the
// database's WAL past Config.WALLimit; the job releases its snapshot,
// continues in a new one (resumed, consistency "resumed") and completes.
// A strict job reads its own copy and is not affected.
func TestWALLimitReleasesSnapshot(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "snapshot", true: "strict"}[strict], func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
				c.TickBudget = time.Hour
				c.WALLimit = 64 << 10
			})
			conn, err := sqlite.OpenConn(e.dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode=WAL", nil); err != nil {
				t.Fatal(err)
			}
			var writes atomic.Int64
			e.setHook(func(string, int) error {
				// A writer keeps changing the database while the job runs.
				if writes.Add(1)%20 == 0 {
					if err := sqlitex.ExecuteTransient(conn, "UPDATE Track SET Composer = coalesce(Composer, '') || '.' WHERE TrackId % 7 = ?", &sqlitex.ExecOptions{Args: []any{writes.Load() % 7}}); err != nil {
						return err
					}
				}
				time.Sleep(3 * time.Millisecond)
				return nil
			})
			svc := e.start()
			spec := sluice.JobSpec{ChunkSize: 20}
			if strict {
				spec.Consistency = sluice.ConsistencyStrict
			}
			job, err := svc.Submit(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			done := waitJob(t, svc, job.ID, 2*time.Minute, sluice.StateCompleted)
			if strict {
				if done.Resumed != 0 || done.Consistency != sluice.ConsistencyStrict {
					t.Errorf("strict job: resumed %d consistency %s", done.Resumed, done.Consistency)
				}
				return
			}
			if done.Resumed < 1 || done.Consistency != sluice.ConsistencyResumed {
				t.Errorf("job whose snapshot pinned a growing WAL: resumed %d consistency %s, want a new snapshot", done.Resumed, done.Consistency)
			}
		})
	}
}
