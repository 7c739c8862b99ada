package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
)

// Schedule is a cron-scheduled export.
type Schedule struct {
	Name string // unique; jobs it starts carry it as JobSpec.ScheduleID
	// Cron is a standard five-field expression ("*/5 * * * *") or a
	// descriptor ("@daily", "@every 1h"), in UTC.
	Cron string
	Spec sluice.JobSpec // the job to run (Spec.Database names the database)
	// Retention: keep the last KeepLast completed exports and/or those
	// younger than MaxAge (0 disables a rule; with both set an export
	// goes when either rule lets it go). The newest completed export is
	// never deleted.
	KeepLast int
	MaxAge   time.Duration
}

type schedule struct {
	Schedule
	sched cron.Schedule
}

const schedulePrefix = "schedule:"

func parseSchedules(list []Schedule, dbs map[string]string) (map[string]*schedule, error) {
	out := map[string]*schedule{}
	for _, sc := range list {
		if sc.Name == "" || strings.ContainsAny(sc.Name, "/\x00") {
			return nil, fmt.Errorf("jobs: %w: schedule name %q", sluice.ErrInvalid, sc.Name)
		}
		if _, dup := out[sc.Name]; dup {
			return nil, fmt.Errorf("jobs: %w: schedule %q defined twice", sluice.ErrInvalid, sc.Name)
		}
		cs, err := cron.ParseStandard(sc.Cron)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w: schedule %q: cron %q: %w", sluice.ErrInvalid, sc.Name, sc.Cron, err)
		}
		if sc.KeepLast < 0 || sc.MaxAge < 0 {
			return nil, fmt.Errorf("jobs: %w: schedule %q: negative retention", sluice.ErrInvalid, sc.Name)
		}
		if sc.Spec.Key != "" {
			return nil, fmt.Errorf("jobs: %w: schedule %q: a schedule's jobs get their own keys; remove key", sluice.ErrInvalid, sc.Name)
		}
		out[sc.Name] = &schedule{Schedule: sc, sched: cs}
	}
	return out, nil
}

// syncSchedules brings the schedule tasks in line with the configuration:
// one task per schedule, due at its next slot after its last run. A
// schedule that missed slots while sluice was down is due now, once. A
// schedule seen for the first time starts counting from now. Tasks of
// schedules no longer configured are removed.
func (s *Service) syncSchedules(ctx context.Context) error {
	now := s.now()
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		tasks, err := tx.ListTasks()
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if t.Kind == kindSchedule && s.scheds[strings.TrimPrefix(t.Key, schedulePrefix)] == nil {
				if err := tx.DeleteTask(t.Key); err != nil {
					return err
				}
			}
		}
		for name, sc := range s.scheds {
			last, ok, err := tx.ScheduleLastRun(name)
			if err != nil {
				return err
			}
			if !ok {
				last = now
				if err := tx.SetScheduleLastRun(name, now); err != nil {
					return err
				}
			}
			due := sc.sched.Next(last)
			if due.Before(now) {
				due = now
			}
			if err := tx.PutTask(state.Task{Kind: kindSchedule, Key: schedulePrefix + name, DueAt: due}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: schedules: %w", err)
	}
	return nil
}

// runSchedule fires a schedule: submits its job, records the run and
// queues the next slot after now (so missed slots collapse into one run).
func (s *Service) runSchedule(ctx context.Context, t state.Task) error {
	name := strings.TrimPrefix(t.Key, schedulePrefix)
	sc := s.scheds[name]
	if sc == nil {
		s.finish(t)
		return nil
	}
	spec := sc.Spec
	spec.ScheduleID = name
	job, subErr := s.Submit(ctx, spec)
	if subErr != nil && ctx.Err() != nil {
		s.release(t)
		return errStopped
	}
	now := s.now()
	err := s.st.Update(s.hardCtx, func(tx *state.Tx) error {
		if err := tx.SetScheduleLastRun(name, now); err != nil {
			return err
		}
		if err := tx.PutTask(state.Task{Kind: kindSchedule, Key: t.Key, DueAt: sc.sched.Next(now)}); err != nil {
			return err
		}
		return tx.FinishTask(t, s.owner) // keeps the task: PutTask bumped its revision
	})
	if err != nil {
		return fmt.Errorf("schedule %s: %w", name, err)
	}
	if subErr != nil {
		return fmt.Errorf("schedule %s: submit: %w", name, subErr)
	}
	s.log.Info("jobs: schedule fired", "schedule", name, "job", job.ID, "next", sc.sched.Next(now))
	return nil
}

// applyRetention deletes a schedule's completed exports that its rules
// let go, object first, never the newest.
func (s *Service) applyRetention(ctx context.Context, name string) error {
	sc := s.scheds[name]
	if sc == nil || (sc.KeepLast == 0 && sc.MaxAge == 0) {
		return nil
	}
	var done []*sluice.Job
	if err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		done, err = tx.ListJobs(state.JobFilter{States: []sluice.State{sluice.StateCompleted}, ScheduleID: name, Limit: 1 << 30})
		return err
	}); err != nil {
		return err
	}
	now := s.now()
	var errs []error
	verified := lastVerified(done)
	for i, j := range done { // newest first
		if i == 0 || j == verified {
			continue
		}
		old := sc.MaxAge > 0 && j.FinishedAt != nil && now.Sub(*j.FinishedAt) > sc.MaxAge
		over := sc.KeepLast > 0 && i >= sc.KeepLast
		if !old && !over {
			continue
		}
		if err := s.deleteJob(ctx, j); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("jobs: retention removed an export", "schedule", name, "job", j.ID, "key", j.Key)
	}
	return errors.Join(errs...)
}

// lastVerified returns the newest export that passed verification, which
// retention keeps so that a failed verification of a newer one never
// leaves a schedule without a verified export; nil if none passed.
func lastVerified(done []*sluice.Job) *sluice.Job {
	for _, j := range done {
		if j.Verification != nil && j.Verification.Status == sluice.VerifyPassed {
			return j
		}
	}
	return nil
}

// deleteJob removes a finished job's object, any incomplete upload at
// its key, and then its record.
func (s *Service) deleteJob(ctx context.Context, j *sluice.Job) error {
	if err := s.abortUploadsOf(ctx, j.ID, ""); err != nil {
		return err
	}
	if j.State == sluice.StateCompleted {
		if err := s.deleteExport(ctx, j.Key); err != nil {
			return err
		}
	}
	return s.st.Update(ctx, func(tx *state.Tx) error { return tx.DeleteJob(j.ID) })
}
