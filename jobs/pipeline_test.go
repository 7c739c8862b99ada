package jobs

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
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
			svc := e.start()
			job, err := svc.Submit(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for !e.store.crashed.Load() {
				if j := mustGet(t, svc, job.ID); j.State.Terminal() || time.Now().After(deadline) {
					t.Fatalf("no crash: job %s %s", j.State, j.Error)
				}
				time.Sleep(2 * time.Millisecond)
			}
			e.crash()
			svc = e.start()
			done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
			want := referenceDump(t, e.dbPath, done.Spec)
			if got := decompress(t, tc.spec.Compression, readObject(t, e.store, done.Key)); !bytes.Equal(got, want) {
				t.Fatalf("object (%d bytes) differs from an uninterrupted dump (%d bytes)", len(got), len(want))
			}
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
