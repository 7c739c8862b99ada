package jobs

import (
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func scheduleJobs(t *testing.T, svc *Service, name string, states ...sluice.State) []*sluice.Job {
	t.Helper()
	var out []*sluice.Job
	err := svc.st.View(context.Background(), func(tx *state.Tx) (err error) {
		out, err = tx.ListJobs(state.JobFilter{ScheduleID: name, States: states, Limit: 1000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitRun waits until the schedule's run created at slot has finished.
func waitRun(t *testing.T, svc *Service, name string, slot time.Time) *sluice.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, j := range scheduleJobs(t, svc, name) {
			if j.CreatedAt.Equal(slot) && j.State.Terminal() {
				if j.State != sluice.StateCompleted {
					t.Fatalf("schedule %s run at %v: %s (%s)", name, slot, j.State, j.Error)
				}
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s: no finished run at %v", name, slot)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSchedulesAndRetention(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 30, 0, time.UTC)}
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.Now = clock.Now
		c.Lease = time.Hour // the fake clock jumps; leases must not expire under a running task
		c.Schedules = []Schedule{
			{Name: "keep2", Cron: "*/1 * * * *", Spec: sluice.JobSpec{Tables: []string{"Genre"}}, KeepLast: 2},
			{Name: "young", Cron: "* * * * *", Spec: sluice.JobSpec{Format: sluice.FormatJSON, Tables: []string{"Artist"}}, MaxAge: 90 * time.Second},
		}
	})
	svc := e.start()
	// Nothing is due before the first slot.
	time.Sleep(100 * time.Millisecond)
	if n := len(scheduleJobs(t, svc, "keep2")); n != 0 {
		t.Fatalf("%d jobs before the first slot", n)
	}
	checkScheduleStatus(t, svc, "keep2", time.Date(2026, 3, 1, 0, 1, 0, 0, time.UTC), nil, "")
	for m := 1; m <= 4; m++ {
		clock.Set(time.Date(2026, 3, 1, 0, m, 0, 0, time.UTC))
		svc.poke()
		for _, name := range []string{"keep2", "young"} {
			waitRun(t, svc, name, clock.Now())
		}
		// Retention runs after each completion; wait for it to settle.
		deadline := time.Now().Add(10 * time.Second)
		for len(scheduleJobs(t, svc, "keep2")) > 2 || len(scheduleJobs(t, svc, "young")) > 2 {
			if time.Now().After(deadline) {
				t.Fatalf("retention did not settle at minute %d", m)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	keep := scheduleJobs(t, svc, "keep2", sluice.StateCompleted)
	young := scheduleJobs(t, svc, "young", sluice.StateCompleted)
	if len(keep) != 2 || len(young) != 2 {
		t.Fatalf("after 4 runs: keep2 has %d, young has %d; want 2 and 2", len(keep), len(young))
	}
	// The survivors are the newest, and their objects are the only ones.
	if keep[0].CreatedAt.Minute() != 4 || keep[1].CreatedAt.Minute() != 3 {
		t.Errorf("keep2 kept runs of minutes %d and %d", keep[0].CreatedAt.Minute(), keep[1].CreatedAt.Minute())
	}
	assertClean(t, e.store, keep[0].Key, keep[1].Key, young[0].Key, young[1].Key)
	last := time.Date(2026, 3, 1, 0, 4, 0, 0, time.UTC)
	checkScheduleStatus(t, svc, "keep2", last.Add(time.Minute), &last, keep[0].ID)

	// Downtime: ten slots are missed; the restart runs each schedule once.
	e.stop()
	clock.Set(time.Date(2026, 3, 1, 0, 14, 30, 0, time.UTC))
	svc = e.start()
	waitRun(t, svc, "keep2", clock.Now())
	time.Sleep(200 * time.Millisecond)
	var runs int
	_ = svc.st.View(context.Background(), func(tx *state.Tx) error {
		last, _, _ := tx.ScheduleLastRun("keep2")
		if !last.Equal(clock.Now()) {
			t.Errorf("last run %v, want %v", last, clock.Now())
		}
		task, _ := tx.GetTask(schedulePrefix + "keep2")
		if task == nil || !task.DueAt.Equal(time.Date(2026, 3, 1, 0, 15, 0, 0, time.UTC)) {
			t.Errorf("next slot %+v, want 00:15", task)
		}
		return nil
	})
	for _, j := range scheduleJobs(t, svc, "keep2") {
		if j.CreatedAt.Minute() == 14 {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("%d catch-up runs, want 1", runs)
	}
}

// checkScheduleStatus checks what Schedules reports of one schedule.
func checkScheduleStatus(t *testing.T, svc *Service, name string, next time.Time, last *time.Time, lastJob string) {
	t.Helper()
	list, err := svc.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name != name {
			continue
		}
		gotJob := ""
		if st.LastJob != nil {
			gotJob = st.LastJob.ID
		}
		if !st.NextRun.Equal(next) || (last == nil) != (st.LastRun == nil) || (last != nil && !st.LastRun.Equal(*last)) || gotJob != lastJob {
			t.Errorf("schedule %s: next %v last %v job %q; want %v, %v, %q", name, st.NextRun, st.LastRun, gotJob, next, last, lastJob)
		}
		return
	}
	t.Errorf("schedule %s not listed in %+v", name, list)
}

func TestScheduleConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		s    []Schedule
	}{
		{"bad cron", []Schedule{{Name: "a", Cron: "every minute"}}},
		{"no name", []Schedule{{Cron: "* * * * *"}}},
		{"duplicate", []Schedule{{Name: "a", Cron: "* * * * *"}, {Name: "a", Cron: "@daily"}}},
		{"negative retention", []Schedule{{Name: "a", Cron: "@daily", KeepLast: -1}}},
		{"fixed key", []Schedule{{Name: "a", Cron: "@daily", Spec: sluice.JobSpec{Key: "x.sql"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseSchedules(tc.s, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
