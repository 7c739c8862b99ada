package jobs

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
)

// lowDiskFS reports a nearly full disk.
type lowDiskFS struct{ file.OS }

func (lowDiskFS) Free(string) (int64, error) { return 10 << 20, nil }

// TestJobFailsAtDiskFloor: with the file store's free-disk floor above
// the free space, a job fails, saying why, and leaves no object.
func TestJobFailsAtDiskFloor(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.MaxAttempts = 2 })
	fs, err := file.New(filepath.Join(t.TempDir(), "exports"), file.Options{
		Limits:       objstore.Limits{MinPartSize: testPartSize, MaxParts: 10000},
		MinFreeBytes: 64 << 20, FS: lowDiskFS{},
	}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.store.Store = fs
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{})
	if err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, svc, job.ID, 30*time.Second, sluice.StateFailed, sluice.StateCompleted)
	if got.State != sluice.StateFailed || !strings.Contains(got.Error, "free disk space below the floor") {
		t.Fatalf("job %s: %q, want failed for the disk floor", got.State, got.Error)
	}
	if objs, _ := fs.List(context.Background(), ""); len(objs) != 0 {
		t.Fatalf("objects left: %v", objs)
	}
}
