package jobs

import (
	"bytes"
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore/s3"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// s3Env returns an S3 store on a fresh bucket of the test server, and a
// function that deletes the bucket. It skips when no server is set up
// (scripts/test always sets one).
func s3Env(t *testing.T) (*s3.Store, func() error) {
	t.Helper()
	srv := testsupport.S3(t)
	mc := srv.Admin(t)
	bucket := srv.NewBucket(t, "jobs")
	ctx := context.Background()
	endpoint, region, ak, sk := srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey
	cfg := s3.NewConfig()
	cfg.Endpoint, cfg.Region, cfg.Bucket = endpoint, region, bucket
	cfg.AccessKeyID, cfg.SecretAccessKey = ak, sk
	cfg.Style = s3.StylePath
	st, err := s3.New(ctx, cfg, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func() error {
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				mc.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{})
			}
		}
		return mc.RemoveBucket(ctx, bucket)
	}
}

// TestS3CrashResume runs a multipart job against the S3 test server,
// kills the service after its first part and checks the object and that no
// incomplete upload remains.
func TestS3CrashResume(t *testing.T) {
	store, _ := s3Env(t)
	dir := t.TempDir()
	db := bigDB(t, dir, 100_000) // about 13 MB of SQL: two 8 MiB parts
	e := newEnv(t, "", func(c *Config) {
		c.Databases = map[string]string{"big": db}
		c.DefaultDatabase = "big"
	})
	e.store.Store = store
	e.store.crashAt.Store(1)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Compression: sluice.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	for i, next := range []int64{0} {
		deadline := time.Now().Add(2 * time.Minute)
		for !e.store.crashed.Load() {
			if j := mustGet(t, svc, job.ID); j.State.Terminal() || time.Now().After(deadline) {
				t.Fatalf("crash %d did not happen: %s %s", i, j.State, j.Error)
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.crash()
		e.store.crashAt.Store(next)
		svc = e.start()
	}
	done := waitJob(t, svc, job.ID, 3*time.Minute, sluice.StateCompleted)
	if got, want := storetest.ReadObject(t, store, done.Key), referenceDump(t, db, done.Spec); !bytes.Equal(got, want) {
		t.Fatalf("object (%d bytes) differs from an uninterrupted dump (%d bytes)", len(got), len(want))
	}
	if extra := e.store.uploads.Load() - int64(done.Progress.PartsUploaded); extra > 1 {
		t.Errorf("%d re-uploaded parts for 1 kill", extra)
	}
	assertClean(t, store, done.Key)
}

// TestS3MissingBucket: a bucket deleted after startup fails Submit with
// ErrNotFound and a message naming the cause.
func TestS3MissingBucket(t *testing.T) {
	store, drop := s3Env(t)
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	e.store.Store = store
	svc := e.start()
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Submit(context.Background(), sluice.JobSpec{})
	if !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("submit to a missing bucket: %v, want ErrNotFound", err)
	}
	t.Log(err)
}

// TestS3Cancel cancels a job mid-upload on the S3 test server: no object
// and no incomplete upload remain.
func TestS3Cancel(t *testing.T) {
	store, _ := s3Env(t)
	db := bigDB(t, t.TempDir(), 100_000)
	e := newEnv(t, "", func(c *Config) {
		c.Databases = map[string]string{"big": db}
		c.DefaultDatabase = "big"
		c.UploadConcurrency = 1 // a checkpoint after the first part, however fast the dump
	})
	e.store.Store = store
	reached := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.setHook(func(id string, parts int) error {
		if parts >= 1 {
			once.Do(func() { close(reached) })
			<-release
		}
		return nil
	})
	svc := e.start()
	ctx := context.Background()
	job, err := svc.Submit(ctx, sluice.JobSpec{})
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	go func() {
		for mustGet(t, svc, job.ID).State != sluice.StateCancelled {
			time.Sleep(5 * time.Millisecond)
		}
		close(release)
	}()
	if _, err := svc.Cancel(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ups, _ := store.ListUploads(ctx, "")
		objs, _ := store.List(ctx, "")
		if len(ups) == 0 && len(objs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			assertClean(t, store)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestS3UploadVanishes aborts a job's multipart upload out of band on the
// S3 test server mid-job (as a lifecycle rule that aborts incomplete
// uploads would): the job logs it, restarts its upload from the start
// within its attempt budget, counts the restart, and completes with the
// right bytes.
func TestS3UploadVanishes(t *testing.T) {
	store, _ := s3Env(t)
	db := bigDB(t, t.TempDir(), 200_000) // about 27 MB of SQL: four 8 MiB parts
	m := &countingMetrics{}
	e := newEnv(t, "", func(c *Config) {
		c.Databases = map[string]string{"big": db}
		c.DefaultDatabase = "big"
		c.TickBudget = time.Hour
		c.UploadConcurrency = 2
		c.Metrics = m
	})
	e.store.Store = store
	var once sync.Once
	aborted := make(chan struct{})
	e.setHook(func(id string, parts int) error {
		if parts < 1 {
			return nil
		}
		once.Do(func() {
			defer close(aborted)
			ctx := context.Background()
			ups, err := store.ListUploads(ctx, "")
			if err != nil || len(ups) != 1 {
				t.Errorf("uploads before the abort: %v %v", ups, err)
				return
			}
			if err := store.AbortMultipart(ctx, ups[0].Key, ups[0].UploadID); err != nil {
				t.Errorf("abort out of band: %v", err)
			}
		})
		return nil
	})
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, svc, job.ID, 3*time.Minute, sluice.StateCompleted)
	select {
	case <-aborted:
	default:
		t.Fatal("the job completed before its upload was aborted")
	}
	if got, want := storetest.ReadObject(t, store, done.Key), referenceDump(t, db, done.Spec); !bytes.Equal(got, want) {
		t.Fatalf("object (%d bytes) differs from an uninterrupted dump (%d bytes)", len(got), len(want))
	}
	m.mu.Lock()
	restarts := m.restarts
	m.mu.Unlock()
	if restarts != 1 {
		t.Errorf("upload restarts counted: %d, want 1", restarts)
	}
	assertClean(t, store, done.Key)
}
