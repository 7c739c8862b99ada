package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/state"
)

// Task kinds.
const (
	kindTick         = "tick"
	kindCallback     = "callback"
	kindSchedule     = "schedule"
	kindHousekeeping = "housekeeping"

	housekeepingKey = "housekeeping"
)

// loop claims due tasks while workers are free and runs each in its own
// goroutine. It sleeps until poked, until the next due task, or for
// Config.Poll (other processes enqueue work it cannot be poked about).
func (s *Service) loop() {
	defer s.wg.Done()
	sem := make(chan struct{}, s.cfg.Workers)
	done := make(chan struct{}, s.cfg.Workers)
	reap := time.NewTicker(s.cfg.Lease)
	defer reap.Stop()
	for {
		if s.stopCtx.Err() != nil {
			return
		}
		free := cap(sem) - len(sem)
		if free > 0 {
			tasks, err := s.claim(free)
			if err != nil && s.stopCtx.Err() == nil {
				s.log.Error("jobs: claim tasks", "err", err)
			}
			for _, t := range tasks {
				sem <- struct{}{}
				s.wg.Add(1)
				go func(t state.Task) {
					defer s.wg.Done()
					s.run(t)
					<-sem
					select {
					case done <- struct{}{}:
					default:
					}
				}(t)
			}
			if len(tasks) == free {
				continue // there may be more due work
			}
		}
		wait := s.cfg.Poll
		if next, ok, err := s.nextDue(); err == nil && ok {
			if d := next.Sub(s.now()); d < wait {
				wait = max(d, 0)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-s.stopCtx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-done:
		case <-reap.C:
			if err := s.reapDeadOwners(s.stopCtx); err != nil && s.stopCtx.Err() == nil {
				s.log.Error("jobs: reap dead owners", "err", err)
			}
			s.closeIdleSources()
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Service) claim(n int) ([]state.Task, error) {
	var tasks []state.Task
	now := s.now()
	err := s.st.Update(s.stopCtx, func(tx *state.Tx) (err error) {
		tasks, err = tx.ClaimTasks(s.owner, now, now.Add(s.cfg.Lease), n, s.cfg.Role.kinds())
		return err
	})
	return tasks, err
}

func (s *Service) nextDue() (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := s.st.View(s.stopCtx, func(tx *state.Tx) (err error) {
		t, ok, err = tx.NextDue(s.cfg.Role.kinds())
		return err
	})
	return t, ok, err
}

// run runs one claimed task, renewing its lease while it runs. If the
// lease is lost (another process took the task over after a stall), the
// task's context is cancelled; checkpoints are fenced on the lease too.
func (s *Service) run(t state.Task) {
	ctx, cancel := context.WithCancelCause(s.hardCtx)
	defer cancel(nil)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(s.cfg.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				var held bool
				err := s.st.Update(ctx, func(tx *state.Tx) (err error) {
					held, err = tx.RenewLease(t.ID, s.owner, s.now().Add(s.cfg.Lease))
					return err
				})
				if err == nil && !held {
					cancel(errLeaseLost)
					return
				}
			}
		}
	}()
	// Everything but a tick stops at once on Close (a tick stops at its
	// next page boundary, after a checkpoint).
	soft := ctx
	if t.Kind != kindTick {
		var stop context.CancelFunc
		soft, stop = context.WithCancel(ctx)
		defer stop()
		defer context.AfterFunc(s.stopCtx, stop)()
	}
	var err error
	switch t.Kind {
	case kindTick:
		err = s.runTick(ctx, t)
	case kindCallback:
		err = s.runCallback(soft, t)
	case kindSchedule:
		err = s.runSchedule(soft, t)
	case kindHousekeeping:
		err = s.runHousekeeping(soft, t)
	case kindVerify:
		err = s.runVerify(soft, t)
	default:
		err = fmt.Errorf("unknown task kind %q", t.Kind)
		s.finish(t)
	}
	cancel(nil)
	<-renewDone
	if err != nil && !errors.Is(err, errStopped) {
		s.log.Error("jobs: task failed", "kind", t.Kind, "key", t.Key, "err", err)
	}
}

var errLeaseLost = errors.New("jobs: task lease lost")

// finish ends a task run: deleted unless re-enqueued meanwhile.
func (s *Service) finish(t state.Task) {
	if err := s.st.Update(s.hardCtx, func(tx *state.Tx) error { return tx.FinishTask(t, s.owner) }); err != nil {
		s.log.Error("jobs: finish task", "key", t.Key, "err", err)
	}
}

// reschedule makes a task due again at due after attempts failures.
func (s *Service) reschedule(t state.Task, due time.Time, attempts int) {
	if err := s.st.Update(s.hardCtx, func(tx *state.Tx) error {
		_, err := tx.RescheduleTask(t.ID, s.owner, due, attempts)
		return err
	}); err != nil {
		s.log.Error("jobs: reschedule task", "key", t.Key, "err", err)
	}
	s.poke()
}

// release drops this process's lease on a task without changing it, so
// it runs again as soon as it is due (used when stopping).
func (s *Service) release(t state.Task) {
	if err := s.st.Update(s.hardCtx, func(tx *state.Tx) error { return tx.ReleaseTask(t.ID, s.owner) }); err != nil {
		s.log.Warn("jobs: release task", "key", t.Key, "err", err)
	}
}

// closeIdleSources closes snapshots kept for jobs that have had no tick
// here for a while (another process took them over, or they wait behind
// a full running cap), so that no read transaction pins the WAL for
// nothing. A later tick here reopens the job in a new snapshot.
func (s *Service) closeIdleSources() {
	idle := 3*s.cfg.Lease + 2*s.cfg.TickBudget
	s.mu.Lock()
	var stale []*openSource
	for id, src := range s.sources {
		if s.running[id] == nil && time.Since(src.lastUsed) > idle {
			stale = append(stale, src)
			delete(s.sources, id)
		}
	}
	s.mu.Unlock()
	for _, src := range stale {
		src.src.Close()
	}
}
