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

// housekeepEnv is an env on the corpus whose clock the test moves, with
// an hour's orphan grace and leases that outlast the clock's jumps.
func housekeepEnv(t *testing.T, mutate func(*Config)) (*env, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Now().UTC()}
	return newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.Now = clock.Now
		c.Lease = 24 * time.Hour
		c.OrphanGrace = time.Hour
		if mutate != nil {
			mutate(c)
		}
	}), clock
}

func TestHousekeeping(t *testing.T) {
	e, clock := housekeepEnv(t, func(c *Config) { c.JobTTL = time.Hour })
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

// TestOrphanManifests: housekeeping deletes a manifest whose object is
// gone once past the grace period, if the manifest is sluice's own, and
// never one whose object exists; in the file store and in S3 alike, with
// and without a KeyPrefix.
func TestOrphanManifests(t *testing.T) {
	backends := []struct {
		name  string
		store func(t *testing.T) objstore.Store // nil: the env's file store
	}{
		{"file", nil},
		{"s3", func(t *testing.T) objstore.Store { st, _ := s3Env(t); return st }},
	}
	type obj struct {
		key            string // under the KeyPrefix, if any
		object, jobTag bool   // store the object; tag the manifest as a job's
	}
	cases := []struct {
		name string
		obj  func(job *sluice.Job) obj
		kept map[string]bool // by KeyPrefix
	}{
		{"object present", func(*sluice.Job) obj { return obj{"present.sql", true, true} }, map[string]bool{"": true, "pre/": true}},
		{"object present, untagged", func(*sluice.Job) obj { return obj{"plain.sql", true, false} }, map[string]bool{"": true, "pre/": true}},
		{"job's manifest, object gone", func(*sluice.Job) obj { return obj{"gone.sql", false, true} }, map[string]bool{"": false, "pre/": false}},
		{"known job key, untagged", func(j *sluice.Job) obj { return obj{j.Key, false, false} }, map[string]bool{"": false, "pre/": false}},
		// Under a KeyPrefix every manifest is sluice's; without one, an
		// untagged manifest at a key no job used is another writer's.
		{"untagged, unknown key", func(*sluice.Job) obj { return obj{"x.sql", false, false} }, map[string]bool{"": true, "pre/": false}},
	}
	for _, b := range backends {
		for _, prefix := range []string{"", "pre/"} {
			t.Run(b.name+"/prefix="+prefix, func(t *testing.T) {
				e, clock := housekeepEnv(t, func(c *Config) { c.KeyPrefix = prefix })
				if b.store != nil {
					e.store.Store = b.store(t)
				}
				svc := e.start()
				ctx := context.Background()
				job, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}})
				if err != nil {
					t.Fatal(err)
				}
				job = waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
				// The object removed out of band: its manifest is tagged.
				if err := e.store.Delete(ctx, job.Key); err != nil {
					t.Fatal(err)
				}
				put := func(key string, meta map[string]string) {
					t.Helper()
					if _, err := e.store.Put(ctx, key, strings.NewReader("{}"), 2, objstore.PutOptions{Metadata: meta}); err != nil {
						t.Fatal(err)
					}
				}
				// Outside the KeyPrefix, or anywhere without one: another
				// writer's untagged manifest.
				foreign := verify.ManifestKey("foreign/x.sql")
				put(foreign, nil)
				manifests := map[string]bool{verify.ManifestKey(job.Key): false, foreign: true} // manifest key → kept
				for _, tc := range cases {
					o := tc.obj(job)
					if o.key != job.Key {
						o.key = prefix + o.key
					}
					if o.object {
						put(o.key, nil)
					}
					var meta map[string]string
					if o.jobTag {
						meta = map[string]string{metaJob: "j"}
					}
					if o.key == job.Key {
						// Replace the job's own manifest with an untagged one.
						e.store.Delete(ctx, verify.ManifestKey(o.key))
					}
					put(verify.ManifestKey(o.key), meta)
					manifests[verify.ManifestKey(o.key)] = tc.kept[prefix]
				}
				check := func(when string, young bool) {
					t.Helper()
					for k, kept := range manifests {
						_, err := e.store.Head(ctx, k)
						switch {
						case (kept || young) && err != nil:
							t.Errorf("%s: %s removed: %v", when, k, err)
						case !kept && !young && !errors.Is(err, objstore.ErrNotExist):
							t.Errorf("%s: orphan %s kept: %v", when, k, err)
						}
					}
				}
				if err := svc.housekeep(ctx); err != nil {
					t.Fatal(err)
				}
				check("within the grace period", true)
				clock.Set(clock.Now().Add(2 * time.Hour))
				if err := svc.housekeep(ctx); err != nil {
					t.Fatal(err)
				}
				check("past the grace period", false)
				for _, k := range []string{"present.sql", "plain.sql"} {
					if _, err := e.store.Head(ctx, prefix+k); err != nil {
						t.Errorf("object %s: %v", prefix+k, err)
					}
				}
			})
		}
	}
}

// TestVerifyScratchSwept: the scratch database of a verification killed
// mid-way goes at startup once older than the grace period, and a young
// one at a later housekeeping.
func TestVerifyScratchSwept(t *testing.T) {
	e, clock := housekeepEnv(t, nil)
	scratch := func(name string, age time.Duration) string {
		t.Helper()
		dir := filepath.Join(e.dataDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, "scratch.db")
		os.WriteFile(db, []byte("x"), 0o644)
		mt := time.Now().Add(-age)
		os.Chtimes(db, mt, mt)
		os.Chtimes(dir, mt, mt)
		return dir
	}
	old, young := scratch("sluice-verify-1", 2*time.Hour), scratch("sluice-verify-2", 0)
	foreign := scratch("not-ours", 2*time.Hour)
	svc := e.start()
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if exists(old) || !exists(young) || !exists(foreign) {
		t.Fatalf("after startup: old %v young %v foreign %v; want false true true", exists(old), exists(young), exists(foreign))
	}
	clock.Set(clock.Now().Add(2 * time.Hour))
	if err := svc.housekeep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exists(young) || !exists(foreign) {
		t.Fatalf("after housekeeping: young %v foreign %v; want false true", exists(young), exists(foreign))
	}
}
