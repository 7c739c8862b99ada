package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// leftoverFiles lists the files in db's leftover directory.
func leftoverFiles(t *testing.T, db *DB) []string {
	t.Helper()
	ents, err := os.ReadDir(db.LeftoverDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// openWithJob opens a test database holding one running job, "j".
func openWithJob(t *testing.T) (*DB, time.Time) {
	t.Helper()
	db := openTest(t, "")
	now := time.Now().UTC()
	if err := db.Update(context.Background(), func(tx *Tx) error {
		return tx.InsertJob(&sluice.Job{ID: "j", State: sluice.StateRunning, CreatedAt: now, UpdatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	return db, now
}

// TestLeftoverFiles follows a job's leftover file through its life:
// written at save, replaced (old file removed) at the next save, kept
// when the transaction that would replace it rolls back, reported lost
// when damaged, removed with the checkpoint, and swept when orphaned.
func TestLeftoverFiles(t *testing.T) {
	ctx := context.Background()
	db, now := openWithJob(t)
	save := func(b []byte, fail error) error {
		return db.Update(ctx, func(tx *Tx) error {
			if err := tx.SaveCheckpoint(&Checkpoint{JobID: "j", Cursor: []byte(`{}`), Leftover: b, UpdatedAt: now}); err != nil {
				return err
			}
			return fail
		})
	}
	get := func() (*Checkpoint, error) {
		var cp *Checkpoint
		err := db.View(ctx, func(tx *Tx) (err error) { cp, err = tx.GetCheckpoint("j"); return err })
		return cp, err
	}

	one, two := bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 5000)
	if err := save(one, nil); err != nil {
		t.Fatal(err)
	}
	first := leftoverFiles(t, db)
	if len(first) != 1 {
		t.Fatalf("after one save: files %v, want one", first)
	}
	if err := save(two, nil); err != nil {
		t.Fatal(err)
	}
	if files := leftoverFiles(t, db); len(files) != 1 || files[0] == first[0] {
		t.Fatalf("after a second save: files %v, want one new file (was %v)", files, first)
	}
	// A rolled-back save leaves the committed file alone and removes its own.
	before := leftoverFiles(t, db)
	if err := save(one, errors.New("boom")); err == nil {
		t.Fatal("rolled-back save reported success")
	}
	if files := leftoverFiles(t, db); len(files) != 1 || files[0] != before[0] {
		t.Fatalf("after a rollback: files %v, want %v", files, before)
	}
	if cp, err := get(); err != nil || !bytes.Equal(cp.Leftover, two) {
		t.Fatalf("leftover after rollback: %v (%d bytes)", err, len(cp.Leftover))
	}

	// Damaged or missing: the checkpoint comes back without its leftover.
	path := filepath.Join(db.LeftoverDir(), before[0])
	if err := os.WriteFile(path, bytes.Repeat([]byte("c"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	if cp, err := get(); !errors.Is(err, ErrLeftoverLost) || cp == nil || string(cp.Cursor) != `{}` || cp.Leftover != nil {
		t.Fatalf("damaged leftover: cp %+v, err %v; want the checkpoint and ErrLeftoverLost", cp, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := get(); !errors.Is(err, ErrLeftoverLost) {
		t.Fatalf("missing leftover: err %v, want ErrLeftoverLost", err)
	}

	// Deleting the checkpoint removes its file.
	if err := save(one, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.DeleteCheckpoint("j") }); err != nil {
		t.Fatal(err)
	}
	if files := leftoverFiles(t, db); len(files) != 0 {
		t.Fatalf("after delete: files %v, want none", files)
	}

	// The sweep removes old unreferenced files only.
	if err := save(two, nil); err != nil {
		t.Fatal(err)
	}
	kept := leftoverFiles(t, db)
	orphan := filepath.Join(db.LeftoverDir(), "orphan.bin")
	young := filepath.Join(db.LeftoverDir(), "young.bin")
	for _, p := range []string{orphan, young} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{orphan, filepath.Join(db.LeftoverDir(), kept[0])} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.SweepLeftovers(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("sweep removed %d files (%v), want 1", n, err)
	}
	if files := leftoverFiles(t, db); len(files) != 2 {
		t.Fatalf("after the sweep: files %v, want the referenced one and the young orphan", files)
	}
	if cp, err := get(); err != nil || !bytes.Equal(cp.Leftover, two) {
		t.Fatalf("referenced leftover after the sweep: %v", err)
	}
}

// TestLeftoverBlobStillRead: a checkpoint written before leftover files
// (schema version 1) keeps its leftover in the BLOB column.
func TestLeftoverBlobStillRead(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	now := time.Now().UTC()
	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertJob(&sluice.Job{ID: "j", State: sluice.StateRunning, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.exec(`INSERT INTO checkpoints (job_id, cursor, upload, leftover, updated_at) VALUES ('j', '{}', '{}', ?, 1)`, nil, []byte("old"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var cp *Checkpoint
	if err := db.View(ctx, func(tx *Tx) (err error) { cp, err = tx.GetCheckpoint("j"); return err }); err != nil || string(cp.Leftover) != "old" {
		t.Fatalf("old-style leftover: %v %+v", err, cp)
	}
}

// TestLeftoverWrittenAhead: a leftover file written before the
// transaction (DB.WriteLeftover) is the one the saved checkpoint refers
// to, and a save that does not happen leaves no file once discarded.
func TestLeftoverWrittenAhead(t *testing.T) {
	ctx := context.Background()
	db, now := openWithJob(t)
	b := bytes.Repeat([]byte("w"), 4000)
	for _, tc := range []struct {
		name  string
		fail  error // the transaction's own error, before SaveCheckpoint
		files int   // leftover files after the save (and a discard on failure)
	}{
		{"committed", nil, 1},
		{"not saved", errors.New("lease lost"), 1}, // the committed one stays
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := &Checkpoint{JobID: "j", Cursor: []byte(`{}`), Leftover: b, UpdatedAt: now}
			if err := db.WriteLeftover(cp); err != nil {
				t.Fatal(err)
			}
			ahead := cp.written.name
			err := db.Update(ctx, func(tx *Tx) error {
				if tc.fail != nil {
					return tc.fail
				}
				return tx.SaveCheckpoint(cp)
			})
			if err != nil {
				db.DiscardLeftover(cp)
			}
			files := leftoverFiles(t, db)
			if len(files) != tc.files {
				t.Fatalf("files %v, want %d", files, tc.files)
			}
			if tc.fail == nil && files[0] != ahead {
				t.Fatalf("checkpoint refers to %v, want the file written ahead, %s", files, ahead)
			}
			var got *Checkpoint
			if err := db.View(ctx, func(tx *Tx) (err error) { got, err = tx.GetCheckpoint("j"); return err }); err != nil || !bytes.Equal(got.Leftover, b) {
				t.Fatalf("saved leftover: %v", err)
			}
		})
	}
}
