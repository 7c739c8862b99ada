package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), FileName)
	}
	db, err := Open(context.Background(), path, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	a := openTest(t, path)
	b := openTest(t, path) // a second process-like handle on the same file
	for _, db := range []*DB{a, b} {
		v, err := db.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := migrations()
		if v != len(ms) {
			t.Fatalf("schema version %d, want %d", v, len(ms))
		}
	}
}

func TestJobs(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		j := &sluice.Job{
			ID: fmt.Sprintf("j%02d", i), State: sluice.StateQueued, Key: fmt.Sprintf("k%d", i),
			Spec:      sluice.JobSpec{Database: "d", Format: sluice.FormatSQL, Tables: []string{"a", "b"}, ScheduleID: map[bool]string{true: "nightly"}[i%2 == 0]},
			CreatedAt: base, UpdatedAt: base, Consistency: sluice.ConsistencySnapshot,
		}
		if err := db.Update(ctx, func(tx *Tx) error { return tx.InsertJob(j) }); err != nil {
			t.Fatal(err)
		}
	}
	err := db.Update(ctx, func(tx *Tx) error {
		return tx.InsertJob(&sluice.Job{ID: "j00", CreatedAt: base, UpdatedAt: base})
	})
	if !errors.Is(err, sluice.ErrExists) {
		t.Fatalf("duplicate insert: %v, want ErrExists", err)
	}
	// Update one to completed with progress and times.
	fin := base.Add(time.Minute)
	err = db.Update(ctx, func(tx *Tx) error {
		j, err := tx.GetJob("j03")
		if err != nil {
			return err
		}
		j.State, j.Progress.Rows, j.Progress.CurrentTable = sluice.StateCompleted, 42, "b"
		j.StartedAt, j.FinishedAt, j.SHA256, j.Size, j.Resumed = &base, &fin, "abc", 99, 2
		return tx.UpdateJob(j)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *sluice.Job
	if err := db.View(ctx, func(tx *Tx) (err error) { got, err = tx.GetJob("j03"); return err }); err != nil {
		t.Fatal(err)
	}
	if got.State != sluice.StateCompleted || got.Progress.Rows != 42 || got.Progress.CurrentTable != "b" ||
		!got.StartedAt.Equal(base) || !got.FinishedAt.Equal(fin) || got.Size != 99 || got.Resumed != 2 ||
		len(got.Spec.Tables) != 2 || got.Key != "k3" {
		t.Fatalf("round trip: %+v", got)
	}
	if err := db.View(ctx, func(tx *Tx) error { _, err := tx.GetJob("nope"); return err }); !errors.Is(err, sluice.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}

	tests := []struct {
		name string
		f    JobFilter
		want []string
	}{
		{"all newest first", JobFilter{}, []string{"j04", "j03", "j02", "j01", "j00"}},
		{"page", JobFilter{Limit: 2, Before: "j03"}, []string{"j02", "j01"}},
		{"state", JobFilter{States: []sluice.State{sluice.StateCompleted}}, []string{"j03"}},
		{"two states", JobFilter{States: []sluice.State{sluice.StateCompleted, sluice.StateQueued}, Limit: 2}, []string{"j04", "j03"}},
		{"schedule", JobFilter{ScheduleID: "nightly"}, []string{"j04", "j02", "j00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var jobs []*sluice.Job
			if err := db.View(ctx, func(tx *Tx) (err error) { jobs, err = tx.ListJobs(tc.f); return err }); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range jobs {
				ids = append(ids, j.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
		})
	}
	err = db.Update(ctx, func(tx *Tx) error {
		if err := tx.SaveCheckpoint(&Checkpoint{JobID: "j01", Cursor: []byte(`{}`), UpdatedAt: base}); err != nil {
			return err
		}
		if err := tx.PutTask(Task{Kind: "tick", Key: TickKey("j01"), DueAt: base}); err != nil {
			return err
		}
		return tx.DeleteJob("j01")
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(ctx, func(tx *Tx) error {
		if cp, _ := tx.GetCheckpoint("j01"); cp != nil {
			t.Error("checkpoint survived DeleteJob")
		}
		if task, _ := tx.GetTask(TickKey("j01")); task != nil {
			t.Error("tick task survived DeleteJob")
		}
		return nil
	})
}

func TestCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	now := time.Now().UTC().Truncate(time.Millisecond)
	j := &sluice.Job{ID: "j", State: sluice.StateRunning, CreatedAt: now, UpdatedAt: now}
	leftover := bytes.Repeat([]byte{0, 1, 2, 255}, 1<<18) // 1 MiB with NULs
	cp := &Checkpoint{JobID: "j", Cursor: []byte(`{"step":3}`), Upload: []byte(`{"uploadId":"u"}`),
		Leftover: leftover, Snapshot: "/x/snap.db", UpdatedAt: now}
	if err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertJob(j); err != nil {
			return err
		}
		return tx.SaveCheckpoint(cp)
	}); err != nil {
		t.Fatal(err)
	}
	var got *Checkpoint
	if err := db.View(ctx, func(tx *Tx) (err error) { got, err = tx.GetCheckpoint("j"); return err }); err != nil {
		t.Fatal(err)
	}
	if string(got.Cursor) != string(cp.Cursor) || string(got.Upload) != string(cp.Upload) ||
		!bytes.Equal(got.Leftover, leftover) || got.Snapshot != cp.Snapshot ||
		!got.UpdatedAt.Equal(now) {
		t.Fatalf("round trip mismatch: %+v", got)
	}
	// An empty leftover is stored as such, not confused with another job's.
	cp.Leftover = nil
	if err := db.Update(ctx, func(tx *Tx) error { return tx.SaveCheckpoint(cp) }); err != nil {
		t.Fatal(err)
	}
	_ = db.View(ctx, func(tx *Tx) (err error) { got, err = tx.GetCheckpoint("j"); return err })
	if len(got.Leftover) != 0 {
		t.Fatalf("leftover %d bytes, want 0", len(got.Leftover))
	}
}

func TestTaskLeases(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(key string, due time.Time) {
		t.Helper()
		if err := db.Update(ctx, func(tx *Tx) error { return tx.PutTask(Task{Kind: "k", Key: key, DueAt: due}) }); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(owner string, now time.Time, n int) []Task {
		t.Helper()
		var got []Task
		if err := db.Update(ctx, func(tx *Tx) (err error) {
			got, err = tx.ClaimTasks(owner, now, now.Add(time.Minute), n, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	put("b", t0.Add(2*time.Second))
	put("a", t0.Add(time.Second))
	put("later", t0.Add(time.Hour))

	if got := claim("p1", t0, 10); len(got) != 0 {
		t.Fatalf("claimed %d tasks before due", len(got))
	}
	got := claim("p1", t0.Add(5*time.Second), 10)
	if len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" {
		t.Fatalf("claim order: %+v", got)
	}
	if again := claim("p2", t0.Add(10*time.Second), 10); len(again) != 0 {
		t.Fatalf("p2 claimed leased tasks: %+v", again)
	}
	// Lease expiry hands the task to another owner; the old owner is fenced.
	after := t0.Add(2 * time.Minute)
	taken := claim("p2", after, 1)
	if len(taken) != 1 || taken[0].Key != "a" {
		t.Fatalf("after expiry p2 got %+v", taken)
	}
	_ = db.View(ctx, func(tx *Tx) error {
		if held, _ := tx.HoldsLease(taken[0].ID, "p1", after); held {
			t.Error("p1 still holds a lease p2 took")
		}
		if held, _ := tx.HoldsLease(taken[0].ID, "p2", after); !held {
			t.Error("p2 does not hold its lease")
		}
		return nil
	})
	// A re-enqueue during the run survives FinishTask.
	put("a", after)
	if err := db.Update(ctx, func(tx *Tx) error { return tx.FinishTask(taken[0], "p2") }); err != nil {
		t.Fatal(err)
	}
	again := claim("p3", after, 5) // "a" again, and "b" whose p1 lease expired
	if len(again) != 2 || again[0].Key != "b" || again[1].Key != "a" {
		t.Fatalf("re-enqueued task lost: %+v", again)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.FinishTask(again[1], "p3") }); err != nil {
		t.Fatal(err)
	}
	_ = db.View(ctx, func(tx *Tx) error {
		if task, _ := tx.GetTask("a"); task != nil {
			t.Errorf("finished task still there: %+v", task)
		}
		return nil
	})
	// ReleaseOwner frees a dead owner's tasks at once, before expiry.
	n := 0
	if err := db.Update(ctx, func(tx *Tx) (err error) { n, err = tx.ReleaseOwner("p3"); return err }); err != nil || n != 1 {
		t.Fatalf("release owner: %d, %v", n, err)
	}
	if got := claim("p4", after, 5); len(got) != 1 || got[0].Key != "b" {
		t.Fatalf("released task not claimable: %+v", got)
	}
}

// TestClaimExclusiveAcrossHandles claims from two independent handles on
// one file (as two processes would) at once, and checks that no task is
// ever claimed twice.
// TestClaimByKind: a claim and the next due time see only the kinds
// asked for, and nil means every kind.
func TestClaimByKind(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		kinds   []string
		nextDue time.Time
		claimAt time.Duration // after t0
		claimed []string      // keys, up to 3
	}{
		{"every kind", nil, t0, 10 * time.Second, []string{"t1", "c1", "t2"}},
		{"one kind", []string{"tick"}, t0, 10 * time.Second, []string{"t1", "t2"}},
		{"two kinds", []string{"callback", "verify"}, t0.Add(time.Second), 2 * time.Hour, []string{"c1", "v1"}},
		{"a kind with no tasks", []string{"schedule"}, time.Time{}, 2 * time.Hour, nil},
		{"a kind that prefixes another", []string{"tic"}, time.Time{}, 2 * time.Hour, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, "")
			for _, task := range []Task{
				{Kind: "tick", Key: "t1", DueAt: t0}, {Kind: "callback", Key: "c1", DueAt: t0.Add(time.Second)},
				{Kind: "tick", Key: "t2", DueAt: t0.Add(2 * time.Second)}, {Kind: "verify", Key: "v1", DueAt: t0.Add(time.Hour)},
			} {
				if err := db.Update(ctx, func(tx *Tx) error { return tx.PutTask(task) }); err != nil {
					t.Fatal(err)
				}
			}
			var next time.Time
			if err := db.View(ctx, func(tx *Tx) (err error) {
				next, _, err = tx.NextDue(tc.kinds)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !next.Equal(tc.nextDue) {
				t.Errorf("next due %v, want %v", next, tc.nextDue)
			}
			now := t0.Add(tc.claimAt)
			var got []Task
			if err := db.Update(ctx, func(tx *Tx) (err error) {
				got, err = tx.ClaimTasks("o", now, now.Add(time.Minute), 3, tc.kinds)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, task := range got {
				keys = append(keys, task.Key)
			}
			if !slices.Equal(keys, tc.claimed) {
				t.Errorf("claimed %v, want %v", keys, tc.claimed)
			}
		})
	}
}

func TestClaimExclusiveAcrossHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	dbs := []*DB{openTest(t, path), openTest(t, path)}
	now := time.Now()
	const n = 200
	if err := dbs[0].Update(ctx, func(tx *Tx) error {
		for i := range n {
			if err := tx.PutTask(Task{Kind: "k", Key: fmt.Sprint(i), DueAt: now}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, owner := dbs[w%2], fmt.Sprint("owner", w)
			for {
				var got []Task
				err := db.Update(ctx, func(tx *Tx) (err error) {
					got, err = tx.ClaimTasks(owner, now, now.Add(time.Hour), 3, nil)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, task := range got {
					if prev, dup := seen[task.Key]; dup {
						t.Errorf("task %s claimed by %s and %s", task.Key, prev, owner)
					}
					seen[task.Key] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d tasks, want %d", len(seen), n)
	}
}

func TestCallbackAttemptsAndSchedules(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := db.Update(ctx, func(tx *Tx) error {
		for i, st := range []int{500, 0, 200} {
			n, err := tx.AddCallbackAttempt(CallbackAttempt{JobID: "j", At: now, URL: "u", Status: st, Delivered: st == 200})
			if err != nil {
				return err
			}
			if n != i+1 {
				return fmt.Errorf("attempt number %d, want %d", n, i+1)
			}
		}
		if _, ok, _ := tx.ScheduleLastRun("s"); ok {
			return errors.New("unset schedule reported a run")
		}
		return tx.SetScheduleLastRun("s", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(ctx, func(tx *Tx) error {
		as, err := tx.CallbackAttempts("j")
		if err != nil || len(as) != 3 || !as[2].Delivered || as[0].Status != 500 {
			t.Errorf("attempts: %+v, %v", as, err)
		}
		last, ok, err := tx.ScheduleLastRun("s")
		if err != nil || !ok || !last.Equal(now) {
			t.Errorf("last run %v %v %v", last, ok, err)
		}
		return nil
	})
}

// TestJobDatabase checks the database column: ListJobs filters on it,
// and SetDefaultDatabase names the default for jobs stored without one
// (by builds before the column), in the column and in the spec.
func TestJobDatabase(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, "")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, name := range []string{"a", "b", "", "a"} {
		j := &sluice.Job{ID: fmt.Sprintf("j%d", i), State: sluice.StateQueued, Spec: sluice.JobSpec{Database: name},
			CreatedAt: base, UpdatedAt: base}
		if err := db.Update(ctx, func(tx *Tx) error { return tx.InsertJob(j) }); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(database string) string {
		t.Helper()
		var out []string
		err := db.View(ctx, func(tx *Tx) error {
			jobs, err := tx.ListJobs(JobFilter{Database: database})
			for _, j := range jobs {
				out = append(out, j.ID+"="+j.Spec.Database)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out)
	}
	if got := ids("a"); got != "[j3=a j0=a]" {
		t.Errorf("database a: %s", got)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.SetDefaultDatabase("a") }); err != nil {
		t.Fatal(err)
	}
	if got := ids("a"); got != "[j3=a j2=a j0=a]" {
		t.Errorf("database a after the default: %s", got)
	}
	if got := ids(""); got != "[j3=a j2=a j1=b j0=a]" {
		t.Errorf("every database: %s", got)
	}
}
