package state

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

const jobColumns = `id, spec, state, progress, error, key, size, sha256, consistency, resumed,
	created_at, started_at, updated_at, finished_at`

// progressRecord is what the progress column holds: the progress and,
// beside it, the verification outcome (one JSON object, so no migration).
type progressRecord struct {
	sluice.Progress
	Verification *sluice.Verification `json:"verification,omitempty"`
}

// InsertJob stores a new job. The ID must be unique.
func (tx *Tx) InsertJob(j *sluice.Job) error {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return fmt.Errorf("state: insert job: %w", err)
	}
	prog, err := json.Marshal(progressRecord{j.Progress, j.Verification})
	if err != nil {
		return fmt.Errorf("state: insert job: %w", err)
	}
	err = tx.exec(`INSERT INTO jobs (id, spec, state, progress, error, key, size, sha256, consistency, resumed,
			schedule_id, database, created_at, started_at, updated_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, nil,
		j.ID, string(spec), string(j.State), string(prog), j.Error, j.Key, j.Size, j.SHA256,
		string(j.Consistency), j.Resumed, j.Spec.ScheduleID, j.Spec.Database,
		ms(j.CreatedAt), optMS(j.StartedAt), ms(j.UpdatedAt), optMS(j.FinishedAt))
	if err != nil {
		if sqlite.ErrCode(err) == sqlite.ResultConstraintPrimaryKey {
			return fmt.Errorf("state: insert job %s: %w", j.ID, sluice.ErrExists)
		}
		return fmt.Errorf("state: insert job %s: %w", j.ID, err)
	}
	return nil
}

// UpdateJob overwrites a job's mutable fields (state, progress, error,
// key, size, sha256, consistency, resumed and the timestamps).
func (tx *Tx) UpdateJob(j *sluice.Job) error {
	prog, err := json.Marshal(progressRecord{j.Progress, j.Verification})
	if err != nil {
		return fmt.Errorf("state: update job: %w", err)
	}
	err = tx.exec(`UPDATE jobs SET state = ?, progress = ?, error = ?, key = ?, size = ?, sha256 = ?,
			consistency = ?, resumed = ?, started_at = ?, updated_at = ?, finished_at = ?
		WHERE id = ?`, nil,
		string(j.State), string(prog), j.Error, j.Key, j.Size, j.SHA256,
		string(j.Consistency), j.Resumed, optMS(j.StartedAt), ms(j.UpdatedAt), optMS(j.FinishedAt), j.ID)
	if err != nil {
		return fmt.Errorf("state: update job %s: %w", j.ID, err)
	}
	if tx.conn.Changes() == 0 {
		return fmt.Errorf("state: update job %s: %w", j.ID, sluice.ErrNotFound)
	}
	return nil
}

// GetJob returns a job; a missing one is sluice.ErrNotFound.
func (tx *Tx) GetJob(id string) (*sluice.Job, error) {
	var job *sluice.Job
	err := tx.exec(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`, func(s *sqlite.Stmt) error {
		j, err := scanJob(s)
		job = j
		return err
	}, id)
	if err != nil {
		return nil, fmt.Errorf("state: get job %s: %w", id, err)
	}
	if job == nil {
		return nil, fmt.Errorf("state: job %s: %w", id, sluice.ErrNotFound)
	}
	return job, nil
}

// JobFilter selects jobs for ListJobs.
type JobFilter struct {
	States     []sluice.State // any of these; empty means all
	Database   string         // only jobs of this database, if set
	ScheduleID string         // only jobs of this schedule, if set
	Before     string         // only IDs sorting before this one (paging, newest first)
	Limit      int            // at most this many; 0 means 100
}

// ListJobs returns jobs newest first (IDs sort by creation time).
func (tx *Tx) ListJobs(f JobFilter) ([]*sluice.Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE 1`
	var args []any
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(",?", len(f.States)-1) + `)`
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.Database != "" {
		q += ` AND database = ?`
		args = append(args, f.Database)
	}
	if f.ScheduleID != "" {
		q += ` AND schedule_id = ?`
		args = append(args, f.ScheduleID)
	}
	if f.Before != "" {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var out []*sluice.Job
	err := tx.exec(q, func(s *sqlite.Stmt) error {
		j, err := scanJob(s)
		if err != nil {
			return err
		}
		out = append(out, j)
		return nil
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list jobs: %w", err)
	}
	return out, nil
}

// SetDefaultDatabase names def as the database of the jobs that were
// stored without one (before the database column, by older builds), in
// the column and in their spec. It is the one place where "no database"
// means the default one.
func (tx *Tx) SetDefaultDatabase(def string) error {
	err := tx.exec(`UPDATE jobs SET database = ?, spec = json_set(spec, '$.database', ?) WHERE database = ''`, nil, def, def)
	if err != nil {
		return fmt.Errorf("state: set default database: %w", err)
	}
	return nil
}

// CountJobs returns how many jobs are in state st.
func (tx *Tx) CountJobs(st sluice.State) (int, error) {
	var n int
	err := tx.exec(`SELECT count(*) FROM jobs WHERE state = ?`, func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}, string(st))
	if err != nil {
		return 0, fmt.Errorf("state: count jobs: %w", err)
	}
	return n, nil
}

// DeleteJob removes a job with its checkpoint, tasks and callback
// attempts. Deleting a missing job is not an error.
func (tx *Tx) DeleteJob(id string) error {
	for _, q := range []string{
		`DELETE FROM checkpoints WHERE job_id = ?`,
		`DELETE FROM callback_attempts WHERE job_id = ?`,
		`DELETE FROM jobs WHERE id = ?`,
	} {
		if err := tx.exec(q, nil, id); err != nil {
			return fmt.Errorf("state: delete job %s: %w", id, err)
		}
	}
	if err := tx.exec(`DELETE FROM tasks WHERE key IN (?, ?)`, nil, TickKey(id), CallbackKey(id)); err != nil {
		return fmt.Errorf("state: delete job %s: %w", id, err)
	}
	return nil
}

func scanJob(s *sqlite.Stmt) (*sluice.Job, error) {
	j := &sluice.Job{
		ID:          s.ColumnText(0),
		State:       sluice.State(s.ColumnText(2)),
		Error:       s.ColumnText(4),
		Key:         s.ColumnText(5),
		Size:        s.ColumnInt64(6),
		SHA256:      s.ColumnText(7),
		Consistency: sluice.Consistency(s.ColumnText(8)),
		Resumed:     s.ColumnInt(9),
		CreatedAt:   fromMS(s.ColumnInt64(10)),
		StartedAt:   columnOptTime(s, 11),
		UpdatedAt:   fromMS(s.ColumnInt64(12)),
		FinishedAt:  columnOptTime(s, 13),
	}
	if err := json.Unmarshal([]byte(s.ColumnText(1)), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %s: decode spec: %w", j.ID, err)
	}
	var pr progressRecord
	if err := json.Unmarshal([]byte(s.ColumnText(3)), &pr); err != nil {
		return nil, fmt.Errorf("job %s: decode progress: %w", j.ID, err)
	}
	j.Progress, j.Verification = pr.Progress, pr.Verification
	return j, nil
}
