package state

import (
	"fmt"
	"time"

	"zombiezen.com/go/sqlite"
)

// Checkpoint is everything a job needs to continue after a restart. The
// byte fields are opaque here: package jobs owns their encoding.
type Checkpoint struct {
	JobID     string
	Cursor    []byte // dump cursor, JSON
	Upload    []byte // multipart upload state with its hash state, JSON
	Leftover  []byte // output bytes not yet in an uploaded part
	Snapshot  string // strict consistency: path of the snapshot copy
	UpdatedAt time.Time

	written leftoverRef // the file DB.WriteLeftover wrote for Leftover
}

// leftoverRef names a leftover file and the SHA-256 of its bytes.
type leftoverRef struct{ name, sum string }

// SaveCheckpoint writes (replacing) a job's checkpoint. Its leftover
// bytes go to a file of their own (see leftover.go), written and fsynced
// here unless DB.WriteLeftover wrote it before the transaction; the file
// of the checkpoint it replaces is removed once the transaction commits,
// the new one if it does not.
func (tx *Tx) SaveCheckpoint(c *Checkpoint) error {
	prev, err := tx.leftoverFile(c.JobID)
	if err != nil {
		return fmt.Errorf("state: save checkpoint %s: %w", c.JobID, err)
	}
	if err := tx.db.WriteLeftover(c); err != nil {
		return err
	}
	name, sum := c.written.name, c.written.sum
	if name != "" {
		tx.onRollback = append(tx.onRollback, func() { tx.db.DiscardLeftover(c) })
		// The file is the saved checkpoint's now: a later save of c
		// writes its own.
		tx.onCommit = append(tx.onCommit, func() { c.written = leftoverRef{} })
	}
	err = tx.exec(`INSERT INTO checkpoints (job_id, cursor, upload, leftover, leftover_file, leftover_sha256, snapshot, updated_at)
		VALUES (?, ?, ?, NULL, ?, ?, ?, ?)
		ON CONFLICT (job_id) DO UPDATE SET cursor = excluded.cursor, upload = excluded.upload,
			leftover = NULL, leftover_file = excluded.leftover_file, leftover_sha256 = excluded.leftover_sha256,
			snapshot = excluded.snapshot, updated_at = excluded.updated_at`, nil,
		c.JobID, string(c.Cursor), string(c.Upload), name, sum, c.Snapshot, ms(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("state: save checkpoint %s: %w", c.JobID, err)
	}
	if prev != "" && prev != name {
		tx.onCommit = append(tx.onCommit, func() { tx.db.removeLeftover(prev) })
	}
	return nil
}

// GetCheckpoint returns a job's checkpoint, or nil if it has none. When
// its leftover file is missing or damaged it returns the checkpoint
// without the leftover, and an error wrapping ErrLeftoverLost.
func (tx *Tx) GetCheckpoint(jobID string) (*Checkpoint, error) {
	var out *Checkpoint
	var file, sum string
	err := tx.exec(`SELECT job_id, cursor, upload, leftover, snapshot, updated_at, leftover_file, leftover_sha256
		FROM checkpoints WHERE job_id = ?`,
		func(s *sqlite.Stmt) error {
			out = &Checkpoint{
				JobID:     s.ColumnText(0),
				Cursor:    []byte(s.ColumnText(1)),
				Upload:    []byte(s.ColumnText(2)),
				Leftover:  columnBytes(s, 3), // rows written before leftover files
				Snapshot:  s.ColumnText(4),
				UpdatedAt: fromMS(s.ColumnInt64(5)),
			}
			file, sum = s.ColumnText(6), s.ColumnText(7)
			return nil
		}, jobID)
	if err != nil {
		return nil, fmt.Errorf("state: get checkpoint %s: %w", jobID, err)
	}
	if out != nil && file != "" {
		if out.Leftover, err = tx.db.readLeftover(file, sum); err != nil {
			return out, fmt.Errorf("state: get checkpoint %s: %w", jobID, err)
		}
	}
	return out, nil
}

// DeleteCheckpoint removes a job's checkpoint, if any, and its leftover
// file once the transaction commits.
func (tx *Tx) DeleteCheckpoint(jobID string) error {
	prev, err := tx.leftoverFile(jobID)
	if err == nil {
		err = tx.exec(`DELETE FROM checkpoints WHERE job_id = ?`, nil, jobID)
	}
	if err != nil {
		return fmt.Errorf("state: delete checkpoint %s: %w", jobID, err)
	}
	if prev != "" {
		tx.onCommit = append(tx.onCommit, func() { tx.db.removeLeftover(prev) })
	}
	return nil
}

// ListCheckpoints returns every checkpoint (without the leftover bytes), for housekeeping.
func (tx *Tx) ListCheckpoints() ([]Checkpoint, error) {
	var out []Checkpoint
	err := tx.exec(`SELECT job_id, upload, snapshot, updated_at FROM checkpoints ORDER BY job_id`, func(s *sqlite.Stmt) error {
		out = append(out, Checkpoint{
			JobID:     s.ColumnText(0),
			Upload:    []byte(s.ColumnText(1)),
			Snapshot:  s.ColumnText(2),
			UpdatedAt: fromMS(s.ColumnInt64(3)),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: list checkpoints: %w", err)
	}
	return out, nil
}

// CallbackAttempt records one delivery attempt of a job's callback.
type CallbackAttempt struct {
	JobID     string
	Attempt   int // 1-based
	At        time.Time
	URL       string
	Status    int // HTTP status; 0 when there was no response
	Error     string
	Delivered bool
}

// AddCallbackAttempt records an attempt; its number is one more than the
// job's last recorded attempt, and is returned.
func (tx *Tx) AddCallbackAttempt(a CallbackAttempt) (int, error) {
	n := 0
	if err := tx.exec(`SELECT coalesce(max(attempt), 0) FROM callback_attempts WHERE job_id = ?`, func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}, a.JobID); err != nil {
		return 0, fmt.Errorf("state: add callback attempt: %w", err)
	}
	n++
	err := tx.exec(`INSERT INTO callback_attempts (job_id, attempt, at, url, status, error, delivered)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, nil, a.JobID, n, ms(a.At), a.URL, a.Status, a.Error, a.Delivered)
	if err != nil {
		return 0, fmt.Errorf("state: add callback attempt: %w", err)
	}
	return n, nil
}

// CallbackAttempts returns a job's recorded attempts in order.
func (tx *Tx) CallbackAttempts(jobID string) ([]CallbackAttempt, error) {
	var out []CallbackAttempt
	err := tx.exec(`SELECT job_id, attempt, at, url, status, error, delivered FROM callback_attempts
		WHERE job_id = ? ORDER BY attempt`, func(s *sqlite.Stmt) error {
		out = append(out, CallbackAttempt{
			JobID:     s.ColumnText(0),
			Attempt:   s.ColumnInt(1),
			At:        fromMS(s.ColumnInt64(2)),
			URL:       s.ColumnText(3),
			Status:    s.ColumnInt(4),
			Error:     s.ColumnText(5),
			Delivered: s.ColumnBool(6),
		})
		return nil
	}, jobID)
	if err != nil {
		return nil, fmt.Errorf("state: callback attempts: %w", err)
	}
	return out, nil
}

// ScheduleLastRun returns the slot time of a schedule's last fired run, or
// ok false if it never ran.
func (tx *Tx) ScheduleLastRun(name string) (t time.Time, ok bool, err error) {
	err = tx.exec(`SELECT last_run FROM schedules WHERE name = ?`, func(s *sqlite.Stmt) error {
		t, ok = fromMS(s.ColumnInt64(0)), true
		return nil
	}, name)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("state: schedule %s: %w", name, err)
	}
	return t, ok, nil
}

// SetScheduleLastRun records the slot time of a schedule's last run.
func (tx *Tx) SetScheduleLastRun(name string, t time.Time) error {
	err := tx.exec(`INSERT INTO schedules (name, last_run) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run`, nil, name, ms(t))
	if err != nil {
		return fmt.Errorf("state: schedule %s: %w", name, err)
	}
	return nil
}
