package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func TestSubmitBadInput(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.Databases["gone"] = filepath.Join(t.TempDir(), "missing.db")
		c.CallbackAllow = nil
	})
	svc := e.start()
	ctx := context.Background()
	taken, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}, Key: "taken.sql"})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, svc, taken.ID, time.Minute, sluice.StateCompleted)
	tests := []struct {
		name string
		spec sluice.JobSpec
		want error
		msg  string
	}{
		{"unknown format", sluice.JobSpec{Format: "xml"}, sluice.ErrInvalid, "unknown format"},
		{"unknown compression", sluice.JobSpec{Compression: "lz4"}, sluice.ErrInvalid, "unknown compression"},
		{"unknown table", sluice.JobSpec{Tables: []string{"Album", "Nope"}}, sluice.ErrNotFound, `table "Nope"`},
		{"unknown excluded table", sluice.JobSpec{Exclude: []string{"Nope"}}, sluice.ErrNotFound, `table "Nope"`},
		{"negative chunk", sluice.JobSpec{ChunkSize: -1}, sluice.ErrInvalid, "chunkSize"},
		{"chunk too large", sluice.JobSpec{ChunkSize: dump.MaxChunkSize + 1}, sluice.ErrInvalid, "chunkSize"},
		{"unknown database", sluice.JobSpec{Database: "other"}, sluice.ErrNotFound, `unknown database "other"`},
		{"missing database file", sluice.JobSpec{Database: "gone"}, sluice.ErrNotFound, "does not exist"},
		{"bad consistency", sluice.JobSpec{Consistency: "eventual"}, sluice.ErrInvalid, "consistency"},
		{"escaping key", sluice.JobSpec{Key: "../x.sql"}, sluice.ErrInvalid, "key"},
		{"absolute key", sluice.JobSpec{Key: "/x.sql"}, sluice.ErrInvalid, "key"},
		{"key with NUL", sluice.JobSpec{Key: "a\x00b"}, sluice.ErrInvalid, "key"},
		{"taken key", sluice.JobSpec{Key: "taken.sql"}, sluice.ErrExists, "already exists"},
		{"metadata callback", sluice.JobSpec{CallbackURL: "http://169.254.169.254/"}, sluice.ErrInvalid, "callback"},
		{"private callback", sluice.JobSpec{CallbackURL: "http://10.0.0.1/"}, sluice.ErrInvalid, "callback"},
		{"callback scheme", sluice.JobSpec{CallbackURL: "file:///etc/passwd"}, sluice.ErrInvalid, "not an http(s) URL"},
		{"reserved key", sluice.JobSpec{Key: ".sluice/x"}, sluice.ErrInvalid, "reserved"},
		{"manifest key", sluice.JobSpec{Key: "a.sql.manifest.json"}, sluice.ErrInvalid, "reserved for manifests"},
		{"reserved key root", sluice.JobSpec{Key: ".sluice"}, sluice.ErrInvalid, "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Submit(ctx, tc.spec)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Submit: %v; want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	jobs, _, _ := svc.List(ctx, sluice.JobQuery{})
	if len(jobs) != 1 {
		t.Errorf("%d jobs exist; refused submissions must create none", len(jobs))
	}
}

// TestDatabaseDeletedWhileQueued: the job waits behind another (one
// running slot), its database is deleted meanwhile, and it fails with a
// clear message, sending its failure callback, instead of hanging.
func TestDatabaseDeletedWhileQueued(t *testing.T) {
	dir := t.TempDir()
	victim := testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), dir)
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.MaxRunning = 1; c.Databases["victim"] = victim })
	rcv := newReceiver(t, e.cfg.CallbackSecret, 0)
	release := make(chan struct{})
	var blockerID string
	e.setHook(func(id string, parts int) error {
		if id == blockerID {
			<-release
		}
		return nil
	})
	svc := e.start()
	ctx := context.Background()
	blocker, err := svc.Submit(ctx, sluice.JobSpec{})
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	blockerID = blocker.ID
	e.mu.Unlock()
	waitJob(t, svc, blocker.ID, time.Minute, sluice.StateRunning)
	job, err := svc.Submit(ctx, sluice.JobSpec{Database: "victim", CallbackURL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if j, _ := svc.Get(ctx, job.ID); j.State != sluice.StateQueued {
		t.Fatalf("job is %s while the only slot is taken", j.State)
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	close(release)
	failed := waitJob(t, svc, job.ID, time.Minute, sluice.StateFailed)
	if !strings.Contains(failed.Error, "no longer exists") || !strings.Contains(failed.Error, victim) {
		t.Errorf("error %q does not say the database is gone", failed.Error)
	}
	got := rcv.wait(t, 1)
	if got[0].State != sluice.StateFailed || got[0].Error == "" {
		t.Errorf("failure callback: %+v", got[0])
	}
	waitJob(t, svc, blocker.ID, time.Minute, sluice.StateCompleted)
	assertClean(t, e.store, mustGet(t, svc, blocker.ID).Key)
}

func mustGet(t *testing.T, svc *Service, id string) *sluice.Job {
	t.Helper()
	j, err := svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestSchemaChangeAfterResume: a table dropped between a crash and the
// resume fails the job with the engine's message; it is never stuck.
func TestSchemaChangeAfterResume(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	e.store.crashAt.Store(3)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{ChunkSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for !e.store.crashed.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	e.crash()
	conn, err := sqlite.OpenConn(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, "PRAGMA foreign_keys=OFF; DROP TABLE Track; DROP TABLE PlaylistTrack; DROP TABLE InvoiceLine;", nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	svc = e.start()
	failed := waitJob(t, svc, job.ID, time.Minute, sluice.StateFailed, sluice.StateCompleted)
	if failed.State != sluice.StateFailed || failed.Error == "" {
		t.Fatalf("job after schema change: %s %q", failed.State, failed.Error)
	}
	assertClean(t, e.store)
}

// bigDB creates a database whose SQL dump is about rows×120 bytes, with
// the sqlite3 CLI (the pure-Go driver is slow under the race detector).
func bigDB(t *testing.T, dir string, rows int) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("big%d.db", rows))
	cmd := exec.Command(testsupport.SQLite3(t), p)
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`
		PRAGMA journal_mode=WAL;
		CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d)
		INSERT INTO t SELECT i, printf('row %%d %%s', i, hex(randomblob(20))), i * 0.5, randomblob(16) FROM n;`, rows))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 (scripts/test installs it): %v\n%s", err, out)
	}
	return p
}

// TestFairness: a small job submitted after a large one finishes long
// before it, with one worker shared round robin.
func TestFairness(t *testing.T) {
	dir := t.TempDir()
	big := bigDB(t, dir, 25_000)
	small := testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), dir)
	e := newEnv(t, "", func(c *Config) {
		c.Databases = map[string]string{"big": big, "small": small}
		c.DefaultDatabase = "big"
		c.Workers = 1
		c.TickBudget = 50 * time.Millisecond
	})
	// The large job is slowed at each of its checkpoints, so it stays
	// long whatever the machine's speed.
	var bigID atomic.Value
	bigID.Store("")
	e.setHook(func(id string, _ int) error {
		if id == bigID.Load().(string) {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	svc := e.start()
	ctx := context.Background()
	bj, err := svc.Submit(ctx, sluice.JobSpec{Database: "big"})
	if err != nil {
		t.Fatal(err)
	}
	bigID.Store(bj.ID)
	waitJob(t, svc, bj.ID, time.Minute, sluice.StateRunning)
	sj, err := svc.Submit(ctx, sluice.JobSpec{Database: "small", Tables: []string{"Album", "Artist", "Genre"}})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, svc, sj.ID, time.Minute, sluice.StateCompleted)
	b := mustGet(t, svc, bj.ID)
	if b.State != sluice.StateRunning {
		t.Fatalf("large job is %s when the small one finished; want still running", b.State)
	}
	if b.Progress.Bytes == 0 {
		t.Errorf("large job made no progress: %+v", b.Progress)
	}
	done := waitJob(t, svc, bj.ID, 2*time.Minute, sluice.StateCompleted)
	if sd := mustGet(t, svc, sj.ID); !sd.FinishedAt.Before(*done.FinishedAt) {
		t.Errorf("small job finished at %v, large at %v", sd.FinishedAt, done.FinishedAt)
	}
	if done.Resumed != 0 || done.Consistency != sluice.ConsistencySnapshot {
		t.Errorf("yielding between ticks is not resuming: resumed %d consistency %s", done.Resumed, done.Consistency)
	}
}
