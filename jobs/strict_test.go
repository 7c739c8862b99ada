package jobs

import (
	"bytes"
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore/storetest"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// TestStrictIsOnePointInTime: a writer changes the database after the
// job started, and the process is killed and restarted mid-dump; the
// strict job's object still equals the database as it was at the start,
// and its snapshot copy is gone at the end.
func TestStrictIsOnePointInTime(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	before := testsupport.CopyFile(t, e.dbPath, t.TempDir()) // the database as the job starts
	wrote := make(chan struct{})
	e.setHook(func(id string, parts int) error {
		select {
		case <-wrote:
			return nil
		default:
		}
		conn, err := sqlite.OpenConn(e.dbPath)
		if err != nil {
			return err
		}
		defer conn.Close()
		err = sqlitex.ExecuteScript(conn, `
			PRAGMA foreign_keys=OFF;
			INSERT INTO Genre (Name) VALUES ('written during the dump');
			DELETE FROM Track WHERE TrackId % 3 = 0;
			UPDATE Artist SET Name = upper(Name);`, nil)
		close(wrote)
		return err
	})
	e.store.crashAt.Store(6)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Consistency: sluice.ConsistencyStrict, ChunkSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for !e.store.crashed.Load() {
		if j := mustGet(t, svc, job.ID); j.State.Terminal() {
			t.Fatalf("job ended before the crash: %s %s", j.State, j.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.crash()
	<-wrote
	svc = e.start()
	done := waitJob(t, svc, job.ID, time.Minute, sluice.StateCompleted)
	if done.Resumed != 1 || done.Consistency != sluice.ConsistencyStrict {
		t.Errorf("resumed %d consistency %s; want 1 and strict", done.Resumed, done.Consistency)
	}
	got := storetest.ReadObject(t, e.store, done.Key)
	if want := referenceDump(t, before, done.Spec); !bytes.Equal(got, want) {
		t.Fatalf("strict object (%d bytes) differs from the database at the start (%d bytes)", len(got), len(want))
	}
	if now := referenceDump(t, e.dbPath, done.Spec); bytes.Equal(got, now) {
		t.Fatal("the writer's changes did not change the database; the test proves nothing")
	}
	if snaps, _ := filepath.Glob(filepath.Join(e.dataDir, "snapshots", "*")); len(snaps) != 0 {
		t.Errorf("snapshot copies left: %v", snaps)
	}
	if _, err := os.Stat(e.dbPath); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e.store, done.Key)
}
