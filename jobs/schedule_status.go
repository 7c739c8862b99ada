package jobs

import (
	"context"
	"fmt"
	"sort"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
)

// Schedules returns every configured schedule, by name, with its next
// and last run and the newest job it started.
func (s *Service) Schedules(ctx context.Context) ([]sluice.ScheduleStatus, error) {
	names := make([]string, 0, len(s.scheds))
	for n := range s.scheds {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]sluice.ScheduleStatus, 0, len(names))
	now := s.now()
	err := s.st.View(ctx, func(tx *state.Tx) error {
		for _, n := range names {
			sc := s.scheds[n]
			st := sluice.ScheduleStatus{Name: n, Cron: sc.Cron, Spec: sc.Spec, KeepLast: sc.KeepLast, MaxAge: sc.MaxAge}
			last, ok, err := tx.ScheduleLastRun(n)
			if err != nil {
				return err
			}
			from := now
			if ok {
				from = last
			}
			// As syncSchedules: a slot missed while sluice was down is
			// due now.
			if st.NextRun = sc.sched.Next(from); st.NextRun.Before(now) {
				st.NextRun = now
			}
			jobs, err := tx.ListJobs(state.JobFilter{ScheduleID: n, Limit: 1})
			if err != nil {
				return err
			}
			if len(jobs) > 0 {
				// syncSchedules records a first-seen schedule's "last
				// run" as the moment it was seen: it has run only once
				// it has a job.
				st.LastJob = jobs[0]
				if ok {
					st.LastRun = &last
				}
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: schedules: %w", err)
	}
	return out, nil
}
