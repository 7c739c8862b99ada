package state

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
)

// Task is one unit of durable due work.
type Task struct {
	ID         int64
	Kind       string // what runs it: "tick", "callback", "schedule", "housekeeping"
	Key        string // at most one task per key, e.g. TickKey(jobID)
	DueAt      time.Time
	Payload    []byte
	Attempts   int // failed attempts so far, maintained by the runner
	LeaseUntil time.Time
	LeaseOwner string
	Rev        int64 // bumped by every PutTask on the same key
}

// TickKey is the task key of a job's tick task.
func TickKey(jobID string) string { return "tick:" + jobID }

// CallbackKey is the task key of a job's callback delivery.
func CallbackKey(jobID string) string { return "callback:" + jobID }

const taskColumns = `id, kind, key, due_at, payload, attempts, lease_until, lease_owner, rev`

func scanTask(s *sqlite.Stmt) Task {
	return Task{
		ID:         s.ColumnInt64(0),
		Kind:       s.ColumnText(1),
		Key:        s.ColumnText(2),
		DueAt:      fromMS(s.ColumnInt64(3)),
		Payload:    columnBytes(s, 4),
		Attempts:   s.ColumnInt(5),
		LeaseUntil: fromMS(s.ColumnInt64(6)),
		LeaseOwner: s.ColumnText(7),
		Rev:        s.ColumnInt64(8),
	}
}

// PutTask enqueues a task, or, if a task with the same key exists,
// moves it to t.DueAt with t.Payload and bumps its revision. A task that
// is leased stays leased: its runner's FinishTask then sees the newer
// revision and leaves the task queued instead of deleting it.
func (tx *Tx) PutTask(t Task) error {
	err := tx.exec(`INSERT INTO tasks (kind, key, due_at, payload, attempts) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at,
			payload = excluded.payload, rev = rev + 1`, nil,
		t.Kind, t.Key, ms(t.DueAt), t.Payload, t.Attempts)
	if err != nil {
		return fmt.Errorf("state: put task %s: %w", t.Key, err)
	}
	return nil
}

// GetTask returns the task with key, or nil.
func (tx *Tx) GetTask(key string) (*Task, error) {
	var out *Task
	err := tx.exec(`SELECT `+taskColumns+` FROM tasks WHERE key = ?`, func(s *sqlite.Stmt) error {
		t := scanTask(s)
		out = &t
		return nil
	}, key)
	if err != nil {
		return nil, fmt.Errorf("state: get task %s: %w", key, err)
	}
	return out, nil
}

// ListTasks returns every task, soonest first.
func (tx *Tx) ListTasks() ([]Task, error) {
	var out []Task
	err := tx.exec(`SELECT `+taskColumns+` FROM tasks ORDER BY due_at, id`, func(s *sqlite.Stmt) error {
		out = append(out, scanTask(s))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: list tasks: %w", err)
	}
	return out, nil
}

// kindFilter restricts a task query to the kinds in its parameter n, as
// kindList encodes them: all kinds when that is empty.
func kindFilter(n int) string {
	return fmt.Sprintf("(?%d = '' OR instr(?%d, ',' || kind || ',') > 0)", n, n)
}

// kindList encodes kinds for kindFilter: ",a,b," or "" for all.
func kindList(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return "," + strings.Join(kinds, ",") + ","
}

// ClaimTasks leases up to limit tasks of the given kinds (nil: any kind)
// that are due at now and not leased, oldest due first, to owner until
// leaseUntil. The selection and the lease are one UPDATE inside the
// caller's write transaction, so two processes on one state database
// never claim the same task.
func (tx *Tx) ClaimTasks(owner string, now, leaseUntil time.Time, limit int, kinds []string) ([]Task, error) {
	var out []Task
	err := tx.exec(`UPDATE tasks SET lease_owner = ?, lease_until = ?
		WHERE id IN (SELECT id FROM tasks WHERE due_at <= ?3 AND lease_until < ?3 AND `+kindFilter(5)+`
			ORDER BY due_at, id LIMIT ?4)
		RETURNING `+taskColumns, func(s *sqlite.Stmt) error {
		out = append(out, scanTask(s))
		return nil
	}, owner, ms(leaseUntil), ms(now), limit, kindList(kinds))
	if err != nil {
		return nil, fmt.Errorf("state: claim tasks: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].DueAt.Equal(out[j].DueAt) {
			return out[i].DueAt.Before(out[j].DueAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ClaimTask leases the task with key to owner if it is not leased by
// anyone else at now, whether or not it is due. It reports the task, or
// nil when it is missing or leased elsewhere.
func (tx *Tx) ClaimTask(key, owner string, now, leaseUntil time.Time) (*Task, error) {
	var out *Task
	err := tx.exec(`UPDATE tasks SET lease_owner = ?, lease_until = ?
		WHERE key = ? AND (lease_until < ? OR lease_owner = ?1) RETURNING `+taskColumns, func(s *sqlite.Stmt) error {
		t := scanTask(s)
		out = &t
		return nil
	}, owner, ms(leaseUntil), key, ms(now))
	if err != nil {
		return nil, fmt.Errorf("state: claim task %s: %w", key, err)
	}
	return out, nil
}

// RenewLease extends owner's lease on task id; false means the lease was
// lost (the task is gone or another owner took it over).
func (tx *Tx) RenewLease(id int64, owner string, until time.Time) (bool, error) {
	if err := tx.exec(`UPDATE tasks SET lease_until = ? WHERE id = ? AND lease_owner = ?`, nil, ms(until), id, owner); err != nil {
		return false, fmt.Errorf("state: renew lease: %w", err)
	}
	return tx.conn.Changes() == 1, nil
}

// HoldsLease reports whether owner holds an unexpired lease on task id at
// now. Checkpoints check it in their transaction, so a runner that lost
// its lease can never overwrite the new owner's progress.
func (tx *Tx) HoldsLease(id int64, owner string, now time.Time) (bool, error) {
	held := false
	err := tx.exec(`SELECT 1 FROM tasks WHERE id = ? AND lease_owner = ? AND lease_until >= ?`, func(*sqlite.Stmt) error {
		held = true
		return nil
	}, id, owner, ms(now))
	if err != nil {
		return false, fmt.Errorf("state: check lease: %w", err)
	}
	return held, nil
}

// FinishTask ends owner's run of a claimed task. If nobody re-enqueued it
// since the claim (same rev) it is deleted; otherwise its lease is
// released so it runs again at its new due time.
func (tx *Tx) FinishTask(t Task, owner string) error {
	if err := tx.exec(`DELETE FROM tasks WHERE id = ? AND lease_owner = ? AND rev = ?`, nil, t.ID, owner, t.Rev); err != nil {
		return fmt.Errorf("state: finish task %s: %w", t.Key, err)
	}
	if tx.conn.Changes() == 1 {
		return nil
	}
	return tx.ReleaseTask(t.ID, owner)
}

// ReleaseTask drops owner's lease on task id, keeping its due time.
func (tx *Tx) ReleaseTask(id int64, owner string) error {
	if err := tx.exec(`UPDATE tasks SET lease_until = 0, lease_owner = '' WHERE id = ? AND lease_owner = ?`, nil, id, owner); err != nil {
		return fmt.Errorf("state: release task: %w", err)
	}
	return nil
}

// RescheduleTask drops owner's lease on task id and makes it due at due
// with the given attempt count. It reports false if owner no longer held
// the task.
func (tx *Tx) RescheduleTask(id int64, owner string, due time.Time, attempts int) (bool, error) {
	if err := tx.exec(`UPDATE tasks SET lease_until = 0, lease_owner = '', due_at = ?, attempts = ?
		WHERE id = ? AND lease_owner = ?`, nil, ms(due), attempts, id, owner); err != nil {
		return false, fmt.Errorf("state: reschedule task: %w", err)
	}
	return tx.conn.Changes() == 1, nil
}

// DeleteTask removes the task with key, leased or not.
func (tx *Tx) DeleteTask(key string) error {
	if err := tx.exec(`DELETE FROM tasks WHERE key = ?`, nil, key); err != nil {
		return fmt.Errorf("state: delete task %s: %w", key, err)
	}
	return nil
}

// ReleaseOwner drops every lease held by owner (a process known to be
// dead) and returns how many it dropped.
func (tx *Tx) ReleaseOwner(owner string) (int, error) {
	if err := tx.exec(`UPDATE tasks SET lease_until = 0, lease_owner = '' WHERE lease_owner = ?`, nil, owner); err != nil {
		return 0, fmt.Errorf("state: release owner: %w", err)
	}
	return tx.conn.Changes(), nil
}

// LeaseOwners returns the owners holding an unexpired lease at now.
func (tx *Tx) LeaseOwners(now time.Time) ([]string, error) {
	var out []string
	err := tx.exec(`SELECT DISTINCT lease_owner FROM tasks WHERE lease_owner != '' AND lease_until >= ?`, func(s *sqlite.Stmt) error {
		out = append(out, s.ColumnText(0))
		return nil
	}, ms(now))
	if err != nil {
		return nil, fmt.Errorf("state: lease owners: %w", err)
	}
	return out, nil
}

// NextDue returns the earliest due time among unleased tasks of the
// given kinds (nil: any kind), or ok false when there are none. Leased
// tasks are skipped; their lease expiry is covered by the caller's
// polling interval.
func (tx *Tx) NextDue(kinds []string) (t time.Time, ok bool, err error) {
	err = tx.exec(`SELECT min(due_at) FROM tasks WHERE lease_owner = '' AND `+kindFilter(1), func(s *sqlite.Stmt) error {
		if s.ColumnType(0) != sqlite.TypeNull {
			t, ok = fromMS(s.ColumnInt64(0)), true
		}
		return nil
	}, kindList(kinds))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("state: next due: %w", err)
	}
	return t, ok, nil
}
