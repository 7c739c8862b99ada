package jobs

// Role is the share of the task table a process runs. Every sluice
// process on one data directory coordinates through the state database,
// so the work can be split between processes by task kind: a server runs
// the exports (job ticks and verifications) in a worker process of its
// own, niced as a whole, and keeps the control work (callbacks, schedules,
// housekeeping) next to its HTTP API. See docs/architecture.md.
type Role int

const (
	// RoleAll runs every kind of task (the default).
	RoleAll Role = iota
	// RoleControl runs callbacks, schedules and housekeeping.
	RoleControl
	// RoleExports runs job ticks and verifications.
	RoleExports
)

// kinds lists the task kinds a role claims; nil means every kind.
func (r Role) kinds() []string {
	switch r {
	case RoleControl:
		return []string{kindCallback, kindSchedule, kindHousekeeping}
	case RoleExports:
		return []string{kindTick, kindVerify}
	}
	return nil
}

// EventKind says what an Event announces.
type EventKind string

const (
	// EventWork: tasks may have become due (a job was submitted or
	// rescheduled, a callback queued). The receiver looks for work now
	// instead of at its next poll.
	EventWork EventKind = "work"
	// EventCancel: job JobID was cancelled. The receiver stops the job's
	// tick if it runs there, instead of at the tick's next checkpoint.
	EventCancel EventKind = "cancel"
	// EventEnded: a job ended (completed, failed or cancelled). The
	// receiver wakes its status long polls (Service.Ended).
	EventEnded EventKind = "ended"
)

// Event is news one process sends the other sluice processes sharing its
// data directory through Config.Notify, and that they apply with
// Service.Receive. It only hastens what the state database already
// holds: a lost event delays work by at most Config.Poll.
type Event struct {
	Kind  EventKind `json:"kind"`
	JobID string    `json:"jobId,omitempty"`
}

// notify passes e to Config.Notify, if set.
func (s *Service) notify(e Event) {
	if s.cfg.Notify != nil {
		s.cfg.Notify(e)
	}
}

// Receive applies an event that another process sent (see Event).
func (s *Service) Receive(e Event) {
	switch e.Kind {
	case EventWork:
		s.wakeLoop()
	case EventCancel:
		s.stopRunning(e.JobID)
		s.wakeLoop()
	case EventEnded:
		s.wakeEnded()
	}
}
