package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

// Submit validates spec and queues a job for it. Validation errors wrap
// sluice.ErrInvalid (bad format, compression, consistency, chunk size,
// key or callback URL), sluice.ErrNotFound (unknown database or table, a
// missing bucket) or sluice.ErrExists (the key holds an object).
func (s *Service) Submit(ctx context.Context, spec sluice.JobSpec) (*sluice.Job, error) {
	spec, path, tables, err := s.validate(ctx, spec)
	if err != nil {
		return nil, err
	}
	now := s.now()
	job := &sluice.Job{
		ID: newID(), State: sluice.StateQueued, Spec: spec, Consistency: sluice.ConsistencySnapshot,
		Progress:  sluice.Progress{Tables: tables, TablesTotal: len(tables)},
		CreatedAt: now, UpdatedAt: now,
	}
	if spec.Consistency == sluice.ConsistencyStrict {
		job.Consistency = sluice.ConsistencyStrict
	}
	job.Key = spec.Key
	if job.Key == "" {
		job.Key = s.defaultKey(spec, now, job.ID)
	}
	if err := s.checkDestination(ctx, job.Key); err != nil {
		return nil, err
	}
	err = s.st.Update(ctx, func(tx *state.Tx) error {
		// Counted in the transaction that inserts, so that concurrent
		// submits cannot all pass the check.
		if err := s.checkQueue(tx); err != nil {
			return err
		}
		if err := tx.InsertJob(job); err != nil {
			return err
		}
		return tx.PutTask(state.Task{Kind: kindTick, Key: state.TickKey(job.ID), DueAt: now})
	})
	if errors.Is(err, sluice.ErrBusy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: submit: %w", err)
	}
	s.log.Info("jobs: job queued", "job", job.ID, "database", spec.Database, "path", path, "key", job.Key)
	s.poke()
	return job, nil
}

// checkQueue refuses a new job when Config.MaxQueued jobs are already
// queued or running.
func (s *Service) checkQueue(tx *state.Tx) error {
	n := 0
	for _, st := range []sluice.State{sluice.StateQueued, sluice.StateRunning} {
		c, err := tx.CountJobs(st)
		if err != nil {
			return err
		}
		n += c
	}
	if n >= s.cfg.MaxQueued {
		return fmt.Errorf("jobs: %w: %d jobs are queued or running, the limit (limits.maxQueuedJobs); retry when some have finished", sluice.ErrBusy, n)
	}
	return nil
}

// validate normalises spec (sluice.JobSpec.Normalize) and checks what
// needs the configuration, the database or the store: the database, its
// tables, the key against the store's rules and the callback URL's
// addresses. It returns the database's path and the tables to dump, in
// dump order.
func (s *Service) validate(ctx context.Context, spec sluice.JobSpec) (sluice.JobSpec, string, []string, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return spec, "", nil, fmt.Errorf("jobs: %w", err)
	}
	if spec.Database == "" {
		spec.Database = s.cfg.DefaultDatabase
	}
	path, ok := s.cfg.Databases[spec.Database]
	if !ok {
		return spec, "", nil, fmt.Errorf("jobs: %w: unknown database %q", sluice.ErrNotFound, spec.Database)
	}
	if spec.Key != "" {
		// The store's own rule, reserved keys included, so that a job
		// cannot be accepted for a key its upload would be refused.
		if err := objstore.ValidateKey(spec.Key); err != nil {
			return spec, "", nil, fmt.Errorf("jobs: %w: %w", sluice.ErrInvalid, err)
		}
		if verify.IsManifestKey(spec.Key) {
			// Another job's manifest could be written over it.
			return spec, "", nil, fmt.Errorf("jobs: %w: key %q: keys ending in %s are reserved for manifests", sluice.ErrInvalid, spec.Key, verify.ManifestSuffix)
		}
	}
	if spec.CallbackURL != "" {
		if err := s.guard.checkURL(ctx, spec.CallbackURL); err != nil {
			return spec, "", nil, fmt.Errorf("jobs: %w: callback URL: %w", sluice.ErrInvalid, err)
		}
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return spec, "", nil, fmt.Errorf("jobs: %w: database %q (%s) does not exist", sluice.ErrNotFound, spec.Database, path)
		}
		return spec, "", nil, fmt.Errorf("jobs: database %q: %w", spec.Database, err)
	}
	// Check the tables against the database's real schema.
	src, err := s.cfg.Open(ctx, path, dumpOptions(spec, 1), s.log)
	if errors.Is(err, sluice.ErrNotFound) {
		return spec, "", nil, fmt.Errorf("jobs: database %q: %w", spec.Database, err)
	}
	if err != nil {
		return spec, "", nil, fmt.Errorf("jobs: %w: open database %q: %w", sluice.ErrInvalid, spec.Database, err)
	}
	tables := tableNames(src.Plan())
	src.Close()
	return spec, path, tables, nil
}

// checkDestination lists the store at the key: this proves the store is
// reachable and the bucket exists, and that the key is free.
func (s *Service) checkDestination(ctx context.Context, key string) error {
	objs, err := s.store.List(ctx, key)
	switch {
	case errors.Is(err, objstore.ErrNotExist):
		return fmt.Errorf("jobs: %w: destination bucket does not exist: %w", sluice.ErrNotFound, err)
	case errors.Is(err, objstore.ErrInvalidKey):
		return fmt.Errorf("jobs: %w: %w", sluice.ErrInvalid, err)
	case err != nil:
		return fmt.Errorf("jobs: %w: destination store unreachable: %w", sluice.ErrInvalid, err)
	}
	for _, o := range objs {
		if o.Key == key {
			return fmt.Errorf("jobs: %w: an object already exists at key %q", sluice.ErrExists, key)
		}
	}
	return nil
}

// defaultKey names the database, the UTC time, the job and the format.
func (s *Service) defaultKey(spec sluice.JobSpec, now time.Time, id string) string {
	return fmt.Sprintf("%s%s-%s-%s%s", s.cfg.KeyPrefix, safeName(spec.Database), now.UTC().Format("20060102T150405Z"),
		id[len(id)-8:], spec.Ext())
}

func safeName(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '/' || r == '\\' || r == 0 || r == '.' && len(out) == 0 {
			r = '_'
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return "db"
	}
	return string(out)
}

// Get returns a job's status; an unknown id is sluice.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (*sluice.Job, error) {
	var job *sluice.Job
	err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		job, err = tx.GetJob(id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return job, nil
}

// List returns jobs newest first, and the token of the next page ("" at
// the end). The database filter is the state's own column.
func (s *Service) List(ctx context.Context, q sluice.JobQuery) ([]*sluice.Job, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = sluice.DefaultPageSize
	}
	if limit > sluice.MaxPageSize {
		return nil, "", fmt.Errorf("jobs: %w: limit %d over %d", sluice.ErrInvalid, limit, sluice.MaxPageSize)
	}
	for _, st := range q.States {
		switch st {
		case sluice.StateQueued, sluice.StateRunning, sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled:
		default:
			return nil, "", fmt.Errorf("jobs: %w: unknown state %q", sluice.ErrInvalid, st)
		}
	}
	var jobs []*sluice.Job
	err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		jobs, err = tx.ListJobs(state.JobFilter{Database: q.Database, States: q.States, Before: q.After, Limit: limit + 1})
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("jobs: %w", err)
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = jobs[limit-1].ID
	}
	return jobs, next, nil
}

// Cancel cancels a queued or running job: the job becomes cancelled at
// once, its upload is aborted and its temporary objects and snapshot copy
// are deleted (by the running tick at its next page boundary, or here).
// Cancelling a cancelled job returns it unchanged; cancelling a completed
// or failed one is sluice.ErrConflict.
func (s *Service) Cancel(ctx context.Context, id string) (*sluice.Job, error) {
	var job *sluice.Job
	now := s.now()
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		j, err := tx.GetJob(id)
		if err != nil {
			return err
		}
		job = j
		switch j.State {
		case sluice.StateCancelled:
			return nil
		case sluice.StateCompleted, sluice.StateFailed:
			return fmt.Errorf("%w: job %s is already %s", sluice.ErrConflict, id, j.State)
		}
		j.State, j.FinishedAt, j.UpdatedAt, j.Error = sluice.StateCancelled, &now, now, "cancelled by request"
		if err := tx.UpdateJob(j); err != nil {
			return err
		}
		// Wake the job's task: it does the cleanup if no tick is running.
		return tx.PutTask(state.Task{Kind: kindTick, Key: state.TickKey(id), DueAt: now})
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: cancel: %w", err)
	}
	s.stopRunning(id)
	s.notify(Event{Kind: EventCancel, JobID: id})
	s.signalEnded()
	s.poke()
	s.waitCleanup(ctx, id)
	return job, nil
}

// waitCleanup waits a little for a cancelled job's cleanup, so that a
// caller that lists the store right after Cancel finds nothing left.
func (s *Service) waitCleanup(ctx context.Context, id string) {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var pending bool
		_ = s.st.View(ctx, func(tx *state.Tx) error {
			t, err := tx.GetTask(state.TickKey(id))
			pending = err == nil && t != nil
			return err
		})
		if !pending {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// Open returns the completed job's object from offset (length < 0: to
// the end) with its description. A job that is not completed is
// sluice.ErrConflict.
func (s *Service) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, objstore.ObjectInfo, error) {
	job, err := s.completed(ctx, id)
	if err != nil {
		return nil, objstore.ObjectInfo{}, err
	}
	rc, info, err := s.store.Get(ctx, job.Key, offset, length)
	if err != nil {
		if errors.Is(err, objstore.ErrNotExist) {
			return nil, objstore.ObjectInfo{}, fmt.Errorf("jobs: %w: object %s of job %s is gone", sluice.ErrNotFound, job.Key, id)
		}
		return nil, objstore.ObjectInfo{}, fmt.Errorf("jobs: open %s: %w", job.Key, err)
	}
	return rc, info, nil
}

// DownloadURL returns a URL that fetches the completed job's object
// without credentials until expiry (the store's presigned URL).
func (s *Service) DownloadURL(ctx context.Context, id string, expiry time.Duration) (string, error) {
	job, err := s.completed(ctx, id)
	if err != nil {
		return "", err
	}
	u, err := s.store.PresignGet(ctx, job.Key, expiry)
	if err != nil {
		return "", fmt.Errorf("jobs: presign %s: %w", job.Key, err)
	}
	return u, nil
}

func (s *Service) completed(ctx context.Context, id string) (*sluice.Job, error) {
	job, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if job.State != sluice.StateCompleted {
		return nil, fmt.Errorf("jobs: %w: job %s is %s, not completed", sluice.ErrConflict, id, job.State)
	}
	return job, nil
}
