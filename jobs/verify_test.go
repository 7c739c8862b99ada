package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/internal/testsupport/sqlrestore"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/verify"
)

func withRestore(c *Config) { c.Restore = sqlrestore.Restore }

// waitVerified waits for a job's verification to end.
func waitVerified(t *testing.T, svc *Service, id string) *sluice.Job {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := svc.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if v := j.Verification; v != nil && (v.Status == sluice.VerifyPassed || v.Status == sluice.VerifyFailed) {
			return j
		}
		if j.State.Terminal() && j.State != sluice.StateCompleted || time.Now().After(deadline) {
			t.Fatalf("job %s %s, verification %+v", j.ID, j.State, j.Verification)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readManifest reads the manifest stored beside key.
func readManifest(t *testing.T, store objstore.Store, key string) *verify.Manifest {
	t.Helper()
	rc, _, err := store.Get(context.Background(), verify.ManifestKey(key), 0, -1)
	if err != nil {
		t.Fatalf("manifest of %s: %v", key, err)
	}
	defer rc.Close()
	m, err := verify.ReadManifest(rc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJobVerifyPassed: a job with verify:true completes, is verified in
// every format, and its one callback carries the passed verification.
func TestJobVerifyPassed(t *testing.T) {
	for _, spec := range []sluice.JobSpec{
		{Format: sluice.FormatSQL, Compression: sluice.CompressZstd},
		{Format: sluice.FormatCSV},
		{Format: sluice.FormatJSON, Compression: sluice.CompressGzip},
		{Format: sluice.FormatNDJSON, PreserveRowids: true},
	} {
		t.Run(string(spec.Format), func(t *testing.T) {
			e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), withRestore)
			rcv := newReceiver(t, e.cfg.CallbackSecret, 0)
			svc := e.start()
			spec.Verify, spec.CallbackURL, spec.ChunkSize = true, rcv.srv.URL+"/hook", 200
			job, err := svc.Submit(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			got := rcv.wait(t, 1)[0]
			v := got.Verification
			if got.ID != job.ID || got.State != sluice.StateCompleted || v == nil || v.Status != sluice.VerifyPassed ||
				v.Tables != 11 || v.Rows != 15607 || v.Mismatch != nil {
				t.Fatalf("callback %+v, verification %+v", got, v)
			}
			m := readManifest(t, e.store, got.Key)
			if m.Object.SHA256 != got.SHA256 || m.Object.Size != got.Size || m.Format != spec.Format || len(m.Tables) != 11 {
				t.Errorf("manifest %+v does not describe job %+v", m, got)
			}
			time.Sleep(100 * time.Millisecond)
			if n := rcv.calls.Load(); n != 1 {
				t.Errorf("%d callbacks, want 1 (after verification)", n)
			}
		})
	}
}

// corruptManifest changes the digest of the second table in a manifest.
func corruptManifest(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["tables"].([]any)[1].(map[string]any)["digest"] = "00"
	b, _ = json.Marshal(m)
	return b
}

// TestJobVerifyFailedKeepsObject: a verification that fails names the
// table, keeps the object, and the callback carries the failure.
func TestJobVerifyFailedKeepsObject(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), withRestore)
	rcv := newReceiver(t, e.cfg.CallbackSecret, 0)
	ctx := context.Background()
	e.store.corruptManifests.Store(true)
	svc := e.start()
	job, err := svc.Submit(ctx, sluice.JobSpec{Verify: true, CallbackURL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 1)[0]
	if v := got.Verification; v == nil || v.Status != sluice.VerifyFailed || v.Mismatch == nil || v.Mismatch.Table != "Artist" {
		t.Fatalf("verification %+v, want failed in table Artist", got.Verification)
	}
	if _, err := e.store.Head(ctx, job.Key); err != nil {
		t.Fatalf("object deleted after a failed verification: %v", err)
	}
}

// TestJobVerifyAfterCrash: a job killed twice mid-upload and resumed is
// still verified against digests equal to an uninterrupted dump's.
func TestJobVerifyAfterCrash(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		withRestore(c)
		c.UploadConcurrency = 1 // a checkpoint after every part, so each kill resumes mid-dump
	})
	e.store.crashAt.Store(2)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Verify: true, ChunkSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range []int64{4, 0} {
		for deadline := time.Now().Add(time.Minute); !e.store.crashed.Load(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no crash")
			}
		}
		e.crash()
		e.store.crashAt.Store(next)
		svc = e.start()
		if next == 0 {
			break
		}
	}
	done := waitVerified(t, svc, job.ID)
	if done.Resumed < 1 || done.Verification.Status != sluice.VerifyPassed {
		t.Fatalf("resumed %d, verification %+v", done.Resumed, done.Verification)
	}
	if m := readManifest(t, e.store, done.Key); !m.Resumed {
		t.Error("manifest does not say resumed")
	}
}

// TestManifestDeletedWithExport: deleting an export (retention, TTL)
// deletes its manifest.
func TestManifestDeletedWithExport(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	svc := e.start()
	ctx := context.Background()
	job, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	readManifest(t, e.store, done.Key)
	if err := svc.deleteJob(ctx, done); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Head(ctx, verify.ManifestKey(done.Key)); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("manifest after delete: %v", err)
	}
	assertClean(t, e.store)
}

// TestRetentionKeepsLastVerified: retention never deletes the newest
// export that passed verification, whatever its rules say.
func TestRetentionKeepsLastVerified(t *testing.T) {
	v := func(status string) *sluice.Verification { return &sluice.Verification{Status: status} }
	tests := []struct {
		name string
		done []*sluice.Job // newest first
		want string
	}{
		{"none verified", []*sluice.Job{{ID: "c"}, {ID: "b"}}, ""},
		{"newest passed", []*sluice.Job{{ID: "c", Verification: v(sluice.VerifyPassed)}, {ID: "b", Verification: v(sluice.VerifyPassed)}}, "c"},
		{"newer failed", []*sluice.Job{{ID: "c", Verification: v(sluice.VerifyFailed)}, {ID: "b", Verification: v(sluice.VerifyFailed)},
			{ID: "a", Verification: v(sluice.VerifyPassed)}}, "a"},
		{"pending is not verified", []*sluice.Job{{ID: "c", Verification: v(sluice.VerifyPending)}, {ID: "b"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if j := lastVerified(tc.done); j != nil {
				got = j.ID
			}
			if got != tc.want {
				t.Fatalf("kept %q, want %q", got, tc.want)
			}
		})
	}
}
