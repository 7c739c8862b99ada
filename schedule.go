package sluice

import "time"

// ScheduleStatus is what an operator sees of one configured schedule:
// its rule, its retention, when it runs next and how its last run went.
type ScheduleStatus struct {
	Name string
	Cron string
	Spec JobSpec // the job it submits
	// Retention rules (0: rule off).
	KeepLast int
	MaxAge   time.Duration
	NextRun  time.Time
	LastRun  *time.Time // nil until it has fired once
	// LastJob is the newest job the schedule started, nil when there is
	// none (never fired, or removed by retention or expiry).
	LastJob *Job
}
