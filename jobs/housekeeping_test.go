package jobs

import (
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/verify"
)

func TestHousekeeping(t *testing.T) {
	clock := &fakeClock{t: time.Now().UTC()}
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.Now = clock.Now
		c.Lease = 24 * time.Hour
		c.JobTTL = time.Hour
		c.OrphanGrace = time.Hour
	})
	svc := e.start()
	ctx := context.Background()
	old, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}})
	if err != nil {
		t.Fatal(err)
	}
	old = waitJob(t, svc, old.ID, time.Minute, sluice.StateCompleted)
	// The completing tick still cleans up stale uploads at the job's key
	// after the job shows as completed: let it finish first.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		svc.mu.Lock()
		busy := len(svc.running)
		svc.mu.Unlock()
		if busy == 0 || time.Now().After(deadline) {
			break
		}
	}
	// Leftovers: an upload at the job's key (a crash before its first
	// checkpoint), another user's upload and object in the same store,
	// and a snapshot copy of a job that no longer exists.
	orphan, err := e.store.CreateMultipart(ctx, old.Key, objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.store.CreateMultipart(ctx, "other/upload.bin", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Put(ctx, "other/object.bin", strings.NewReader("keep me"), 7, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(e.dataDir, "snapshots", "deadbeef.db")
	os.MkdirAll(filepath.Dir(snap), 0o755)
	os.WriteFile(snap, []byte("x"), 0o644)

	// Within the TTL and grace, nothing but the stale snapshot goes.
	if err := svc.housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, old.ID); err != nil {
		t.Fatalf("young job expired: %v", err)
	}
	if ups, _ := e.store.ListUploads(ctx, ""); len(ups) != 2 {
		t.Fatalf("young uploads aborted: %+v", ups)
	}
	if _, err := os.Stat(snap); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale snapshot copy kept: %v", err)
	}

	clock.Set(clock.Now().Add(2 * time.Hour))
	fresh, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Artist"}})
	if err != nil {
		t.Fatal(err)
	}
	fresh = waitJob(t, svc, fresh.ID, time.Minute, sluice.StateCompleted)
	if err := svc.housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, old.ID); !errors.Is(err, sluice.ErrNotFound) {
		t.Errorf("expired job still there: %v", err)
	}
	if _, err := svc.Get(ctx, fresh.ID); err != nil {
		t.Errorf("fresh job expired: %v", err)
	}
	ups, _ := e.store.ListUploads(ctx, "")
	if len(ups) != 1 || ups[0].UploadID != foreign || ups[0].UploadID == orphan {
		t.Errorf("uploads after housekeeping: %+v; want only the foreign one", ups)
	}
	objs, _ := e.store.List(ctx, "")
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	if want := []string{fresh.Key, verify.ManifestKey(fresh.Key), "other/object.bin"}; !slices.Equal(keys, want) {
		t.Errorf("objects after housekeeping: %v; want the fresh export with its manifest and the foreign object", keys)
	}
}
