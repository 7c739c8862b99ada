package jobs

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore/storetest"
	"github.com/sluice-dev/sluice/state"
)

// TestRoles runs a control service and an exports service on one data
// dir, as sluice serve and its export worker do, with their events wired
// to each other. The poll is an hour, so every prompt step below comes
// from an event: a job submitted to the control side runs in the exports
// side and wakes the control side's Ended; a cancel reaches the running
// tick at once; the control side never runs a tick.
func TestRoles(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.Poll = time.Hour
		c.TickBudget = time.Minute
		c.CheckpointInterval = time.Hour
	})
	ctx := context.Background()
	var toControl, toExports atomic.Pointer[Service]
	var slow atomic.Bool
	var mu sync.Mutex
	sent := map[Role][]Event{} // by sender
	start := func(role Role, peer *atomic.Pointer[Service], hook func(string, int) error) *Service {
		st, err := state.Open(ctx, filepath.Join(e.dataDir, state.FileName), e.log)
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cfg
		cfg.Role, cfg.afterCheckpoint = role, hook
		cfg.Notify = func(ev Event) {
			mu.Lock()
			sent[role] = append(sent[role], ev)
			mu.Unlock()
			if p := peer.Load(); p != nil {
				go p.Receive(ev) // as through a pipe: never on the sender's goroutine
			}
		}
		svc, err := New(ctx, cfg, st, e.store, e.log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			svc.Close(cctx)
			st.Close()
		})
		return svc
	}
	control := start(RoleControl, &toExports, func(id string, _ int) error {
		t.Errorf("job %s ticked in the control service", id)
		return errors.New("tick in the control service")
	})
	exports := start(RoleExports, &toControl, func(string, int) error {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	toControl.Store(control)
	toExports.Store(exports)

	var kept, cancelled string // the completed job's object, the cancelled job
	t.Run("submit, run elsewhere, wake Ended", func(t *testing.T) {
		ended := control.Ended()
		j, err := control.Submit(ctx, sluice.JobSpec{Tables: []string{"Track"}, ChunkSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Fatal("the control service's Ended did not fire")
		}
		done := waitJob(t, control, j.ID, 5*time.Second, sluice.StateCompleted)
		kept = done.Key
		if got, want := storetest.ReadObject(t, e.store, done.Key), referenceDump(t, e.dbPath, done.Spec); !bytes.Equal(got, want) {
			t.Error("object differs from an uninterrupted dump")
		}
	})

	t.Run("cancel stops the tick in the other service", func(t *testing.T) {
		slow.Store(true)
		defer slow.Store(false)
		j, err := control.Submit(ctx, sluice.JobSpec{Tables: []string{"PlaylistTrack"}, ChunkSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		cancelled = j.ID
		waitJob(t, control, j.ID, 30*time.Second, sluice.StateRunning)
		if _, err := control.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		// The event stops the tick at its next page; without it, the
		// tick would see the cancel when it next saves its progress.
		waitTaskGone(t, exports.st, j.ID, 4*time.Second)
		assertClean(t, e.store, kept)
	})

	mu.Lock()
	defer mu.Unlock()
	for _, want := range []struct {
		from Role
		ev   Event
	}{
		{RoleControl, Event{Kind: EventWork}},
		{RoleControl, Event{Kind: EventCancel, JobID: cancelled}},
		{RoleExports, Event{Kind: EventEnded}},
	} {
		if !slices.Contains(sent[want.from], want.ev) {
			t.Errorf("role %d never sent %+v; sent %+v", want.from, want.ev, sent[want.from])
		}
	}
}
