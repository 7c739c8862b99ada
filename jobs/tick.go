package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
)

// cpCursor is the dump side of a checkpoint.
type cpCursor struct {
	Dump dump.Cursor `json:"dump"`
	// Instance names the open snapshot that wrote the checkpoint. A tick
	// that finds another instance (or none open) continues in a new
	// snapshot: the job has been resumed.
	Instance string `json:"instance,omitempty"`
}

var errCancelled = errors.New("jobs: job cancelled")

// outcome is what a tick, or one phase of it, ended with; runTick turns it
// into what happens to the job's task.
type outcome int

const (
	outNext      outcome = iota // the phase is done: go on to the next one
	outYielded                  // checkpointed and yielded: back of the queue
	outDone                     // the job completed
	outStopped                  // the service is stopping: release the task
	outLost                     // the lease is lost: touch nothing
	outCancelled                // the job was cancelled: clean up
	outRetry                    // a transient failure: retry within the attempt budget
	outFailed                   // a permanent failure: fail the job
)

type result struct {
	out outcome
	err error
}

var next = result{out: outNext}

// runTick advances one job by one tick and decides what happens to its
// task: yield to the back of the queue, retry later, or finish.
func (s *Service) runTick(ctx context.Context, t state.Task) error {
	jobID := t.Key[len("tick:"):]
	job, started, err := s.startJob(ctx, jobID)
	switch {
	case err != nil:
		s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts)
		return fmt.Errorf("tick %s: %w", jobID, err)
	case job == nil || job.State == sluice.StateCompleted:
		s.finish(t)
		return nil
	case job.State == sluice.StateCancelled || job.State == sluice.StateFailed:
		return s.settle(t, job, result{out: outCancelled})
	case job.State == sluice.StateQueued:
		// Every running slot is taken: wait our turn. Queued tasks all
		// move by the same step, so they keep their order.
		s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts)
		return nil
	}
	if started {
		s.log.Info("jobs: job started", "job", job.ID, "key", job.Key)
	}

	tickCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.Lock()
	s.running[job.ID] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, job.ID)
		s.mu.Unlock()
	}()

	tickStart := time.Now()
	k := &tick{s: s, ctx: tickCtx, t: t, job: job, start: tickStart}
	r := k.run()
	s.cfg.Metrics.ObserveTick(time.Since(tickStart))
	return s.settle(t, job, r)
}

// startJob loads the job and, if it is queued and a running slot is free,
// marks it running.
func (s *Service) startJob(ctx context.Context, jobID string) (job *sluice.Job, started bool, err error) {
	err = s.st.Update(ctx, func(tx *state.Tx) error {
		j, err := tx.GetJob(jobID)
		if errors.Is(err, sluice.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		job = j
		if j.State != sluice.StateQueued {
			return nil
		}
		n, err := tx.CountJobs(sluice.StateRunning)
		if err != nil || n >= s.cfg.MaxRunning {
			return err
		}
		now := s.now()
		j.State, j.StartedAt, j.UpdatedAt = sluice.StateRunning, &now, now
		started = true
		return tx.UpdateJob(j)
	})
	return job, started, err
}

// settle applies a tick's outcome to its task.
func (s *Service) settle(t state.Task, job *sluice.Job, r result) error {
	switch r.out {
	case outYielded:
		s.reschedule(t, s.now(), 0) // round robin: back of the queue
		return nil
	case outDone:
		s.finish(t)
		return nil
	case outStopped:
		s.release(t)
		return errStopped
	case outLost:
		return r.err
	case outCancelled:
		err := s.cleanup(s.hardCtx, job.ID)
		if err == nil && job.State != sluice.StateFailed {
			s.log.Info("jobs: job cancelled", "job", job.ID)
		}
		return s.endTask(t, job, err)
	}
	attempts := t.Attempts + 1
	if r.out == outRetry && attempts < s.cfg.MaxAttempts {
		delay := min(time.Second<<attempts, time.Minute)
		if errors.Is(r.err, objstore.ErrUploadGone) {
			s.cfg.Metrics.AddUploadRestart()
			s.log.Error("jobs: the job's multipart upload vanished from the store (aborted out of band, e.g. by a lifecycle rule); restarting the upload",
				"job", job.ID, "key", job.Key, "attempt", attempts, "of", s.cfg.MaxAttempts, "in", delay, "err", r.err)
		} else {
			s.log.Warn("jobs: tick failed, will retry", "job", job.ID, "attempt", attempts, "in", delay, "err", r.err)
		}
		s.reschedule(t, s.now().Add(delay), attempts)
		return nil
	}
	cerr := s.cleanup(s.hardCtx, job.ID)
	if err := s.markFailed(s.hardCtx, job.ID, r.err); err != nil {
		s.reschedule(t, s.now().Add(s.cfg.Poll), attempts)
		return err
	}
	return s.endTask(t, job, cerr)
}

// endTask finishes the task of a job that was cancelled or failed once
// cleanup succeeded. A failed cleanup is retried within the attempt
// budget; past it, the task ends anyway (housekeeping aborts what is
// left, as orphans), so that no task of a finished job runs forever.
func (s *Service) endTask(t state.Task, job *sluice.Job, cleanupErr error) error {
	if cleanupErr != nil && s.hardCtx.Err() != nil {
		return errStopped // stopped hard mid-cleanup: the next process runs it again
	}
	attempts := t.Attempts + 1
	if cleanupErr != nil && attempts < s.cfg.MaxAttempts && objstore.IsRetryable(cleanupErr) {
		s.reschedule(t, s.now().Add(min(time.Second<<attempts, time.Minute)), attempts)
		return cleanupErr
	}
	if cleanupErr != nil {
		s.log.Error("jobs: giving up cleaning up after the job; housekeeping removes what is left",
			"job", job.ID, "attempts", attempts, "err", cleanupErr)
	}
	s.finish(t)
	return nil
}

// classify turns the error that ended a tick into its outcome. ctx is the
// tick's context: its cause (lease lost, job cancelled) explains an error
// that its cancellation provoked.
func (s *Service) classify(ctx context.Context, err error) result {
	if err == nil {
		return result{out: outYielded}
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	var se storeError
	switch {
	case errors.Is(err, errLeaseLost):
		return result{outLost, err}
	case errors.Is(err, errCancelled):
		return result{outCancelled, err}
	case errors.Is(err, errStopped), s.hardCtx.Err() != nil, errors.Is(err, context.Canceled):
		// Stopping (or stopped hard): never blame the job for it.
		return result{outStopped, err}
	case errors.Is(err, objstore.ErrUploadGone):
		return result{outRetry, err}
	case errors.As(err, &se):
		if objstore.IsRetryable(se.err) {
			return result{outRetry, err}
		}
		return result{outFailed, err}
	case isPermanent(err):
		return result{outFailed, err}
	}
	return result{outRetry, err}
}

// tick is one run of a job, from its checkpoint for at most the tick
// budget. run calls its phases in order; each returns next or the
// outcome that ends the tick.
type tick struct {
	s     *Service
	ctx   context.Context
	t     state.Task
	job   *sluice.Job
	start time.Time

	cp   *state.Checkpoint
	cur  cpCursor
	ust  objstore.State
	lost error // the checkpoint's leftover bytes are gone: start over

	src  *openSource
	plan dump.Plan

	w      *objstore.Writer
	closed bool // w was closed (completed); nothing to suspend
	pipe   *pipeline
}

func (k *tick) run() result {
	defer k.suspend()
	for _, phase := range []func() result{
		k.loadCheckpoint, k.openSnapshot, k.openUpload, k.dump, k.complete,
	} {
		if r := phase(); r.out != outNext {
			return r
		}
	}
	return result{out: outDone}
}

// fail classifies err as the tick's outcome.
func (k *tick) fail(err error) result { return k.s.classify(k.ctx, err) }

// loadCheckpoint reads the job's checkpoint, if any.
func (k *tick) loadCheckpoint() result {
	if err := k.s.st.View(k.ctx, func(tx *state.Tx) (err error) {
		k.cp, err = tx.GetCheckpoint(k.job.ID)
		if errors.Is(err, state.ErrLeftoverLost) && k.cp != nil {
			k.lost, err = err, nil
		}
		return err
	}); err != nil {
		return k.fail(err)
	}
	if k.cp == nil {
		k.cp = &state.Checkpoint{JobID: k.job.ID}
	}
	if len(k.cp.Cursor) > 0 {
		if err := json.Unmarshal(k.cp.Cursor, &k.cur); err != nil {
			return k.fail(permanent(fmt.Errorf("checkpoint cursor: %w", err)))
		}
	}
	if len(k.cp.Upload) > 0 {
		if err := json.Unmarshal(k.cp.Upload, &k.ust); err != nil {
			return k.fail(permanent(fmt.Errorf("checkpoint upload state: %w", err)))
		}
	}
	return next
}

// openSnapshot opens the job's snapshot, or keeps the one this process
// has open for it. A new snapshot for a job that had started is a resume.
func (k *tick) openSnapshot() result {
	s, job := k.s, k.job
	path, err := s.sourcePath(k.ctx, k.t, job, k.cp, k.cur)
	if err != nil {
		return k.fail(err)
	}
	s.mu.Lock()
	src := s.sources[job.ID]
	s.mu.Unlock()
	if src == nil || src.instance != k.cur.Instance {
		if src != nil {
			s.dropSource(job.ID)
		}
		opened, err := s.cfg.Open(k.ctx, path, dumpOptions(job.Spec, s.cfg.ChunkSize), s.log)
		if err != nil {
			return k.fail(dumpErr(fmt.Errorf("open %s: %w", path, err)))
		}
		src = &openSource{src: opened, instance: newID(), path: path}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			src.walAtOpen = fi.Size()
		}
		s.mu.Lock()
		s.sources[job.ID] = src
		s.mu.Unlock()
		if k.cur.Dump.Step > 0 || k.cur.Dump.Bytes > 0 {
			job.Resumed++
			if job.Consistency != sluice.ConsistencyStrict {
				job.Consistency = sluice.ConsistencyResumed
			}
			s.log.Info("jobs: job resumed in a new snapshot", "job", job.ID, "resumed", job.Resumed,
				"bytes", k.cur.Dump.Bytes, "parts", len(k.ust.Parts))
		}
	}
	s.mu.Lock()
	src.lastUsed = time.Now()
	s.mu.Unlock()
	k.src = src
	k.plan = src.src.Plan()
	job.Progress.Tables = tableNames(k.plan)
	job.Progress.TablesTotal = len(k.plan.Tables)
	job.Progress.EstimatedBytes = k.plan.EstimatedBytes
	return next
}

// openUpload continues the checkpoint's upload, or starts one. An upload
// that cannot be resumed is discarded and the job starts over, unless a
// crash came right after the object was completed.
func (k *tick) openUpload() result {
	s, job := k.s, k.job
	opts := objstore.WriterOptions{
		ContentType:  job.Spec.ContentType(),
		Metadata:     map[string]string{metaJob: job.ID},
		ExpectedSize: k.plan.EstimatedBytes,
		Concurrency:  s.cfg.UploadConcurrency,
		Limits:       s.cfg.Limits,
		OnPart:       func(objstore.Part) { s.cfg.Metrics.AddPartUploaded() },
		OnRetry:      func(string, error) { s.cfg.Metrics.AddUploadRetry() },
		Go:           s.cfg.UploadGo,
	}
	if k.lost != nil && k.ust.Key == "" {
		// No upload yet, but the bytes dumped so far are gone with the
		// leftover: dump again from the start.
		s.log.Warn("jobs: checkpoint leftover lost; restarting the job from the start", "job", job.ID, "err", k.lost)
		k.restart()
	}
	var err error
	if k.ust.Key != "" {
		if k.lost != nil {
			err = fmt.Errorf("%w: %v", objstore.ErrResume, k.lost)
		} else {
			k.w, err = objstore.Resume(k.ctx, s.store, k.ust, k.cp.Leftover, opts, s.log)
			if err == nil {
				// The Writer holds those bytes now; a yield's leftover can be
				// a whole part, not to be kept on the heap for the tick.
				k.cp.Leftover = nil
			}
		}
		if errors.Is(err, objstore.ErrResume) {
			if k.cur.Dump.Done {
				// Complete may have succeeded just before a crash.
				if info, ok := s.ownObject(k.ctx, job.Key, k.ust.WriterID); ok {
					return k.completed(info.Size, info.Metadata[objstore.MetaSHA256], len(k.ust.Parts)+1)
				}
			}
			s.log.Warn("jobs: upload cannot be resumed; restarting the job from the start", "job", job.ID, "err", err)
			if derr := objstore.Discard(k.ctx, s.store, k.ust); derr != nil {
				return k.fail(storeErr(derr))
			}
			k.restart()
		}
	}
	if k.ust.Key == "" {
		k.w, err = objstore.NewWriter(k.ctx, s.store, job.Key, opts, s.log)
	}
	if err != nil {
		return k.fail(storeErr(fmt.Errorf("upload %s: %w", job.Key, err)))
	}
	return next
}

// checkpoint returns the checkpoint to persist at k.cur with leftover,
// a copy the tick may go on changing after; the caller adds the upload
// state.
func (k *tick) checkpoint(leftover []byte) state.Checkpoint {
	cp := *k.cp
	cp.Cursor, _ = json.Marshal(k.cur)
	cp.Leftover = leftover
	return cp
}

// restart forgets the checkpoint's position: the job dumps from the start
// into a new upload.
func (k *tick) restart() {
	k.cur.Dump, k.ust, k.cp.Leftover = dump.Cursor{}, objstore.State{}, nil
	k.job.Progress = sluice.Progress{Tables: k.job.Progress.Tables, TablesTotal: len(k.plan.Tables), EstimatedBytes: k.plan.EstimatedBytes}
}

// dump runs the dump from the cursor into the upload through the
// checkpoint pipeline, until the dump ends (next), the tick yields, or
// something fails.
func (k *tick) dump() result {
	if k.cur.Dump.Done {
		return next
	}
	k.pipe = newPipeline(k)
	rowsAtStart := k.cur.Dump.Rows
	final, err := k.src.src.Dump(k.ctx, k.pipe.fr, k.cur.Dump, k.pipe.boundary)
	if ferr := k.pipe.finish(); err == nil {
		err = ferr
	}
	// Rows this tick produced; after a crash the rows past the last
	// checkpoint are produced (and counted) again.
	k.s.cfg.Metrics.AddRowsExported(max(0, final.Rows-rowsAtStart))
	if err != nil {
		var se storeError
		if !errors.As(err, &se) {
			err = dumpErr(err)
		}
		return k.fail(err)
	}
	if !final.Done {
		if k.s.stopCtx.Err() != nil {
			return k.fail(errStopped)
		}
		if c := context.Cause(k.ctx); c != nil {
			return k.fail(c)
		}
		if k.pipe.release {
			k.s.dropSource(k.job.ID)
		}
		return result{out: outYielded}
	}
	// Everything is written: checkpoint before completing, so a crash
	// during Complete resumes here rather than dumping again.
	if err := k.pipe.saveAll(final); err != nil {
		return k.fail(err)
	}
	return next
}

// complete completes the upload: the object is stored.
func (k *tick) complete() result {
	k.closed = true
	if err := k.w.Close(); err != nil {
		if errors.Is(err, objstore.ErrExist) && k.ust.WriterID != "" {
			// A small object is stored with one Put; a crash after it and
			// before our record leaves it in place: accept it if ours.
			if info, ok := k.s.ownObject(k.ctx, k.job.Key, k.ust.WriterID); ok {
				return k.completed(info.Size, info.Metadata[objstore.MetaSHA256], max(len(k.ust.Parts), 1))
			}
		}
		return k.fail(storeErr(fmt.Errorf("complete upload %s: %w", k.job.Key, err)))
	}
	if k.pipe != nil {
		k.pipe.progress(k.cur.Dump)
	}
	return k.completed(k.w.Info().Size, k.w.SHA256(), len(k.ust.Parts)+k.w.PartsUploaded())
}

// completed is the one place where a job's object is known to be
// complete in the store (size bytes, SHA-256 sum, in parts parts): it
// records the job as completed.
func (k *tick) completed(size int64, sum string, parts int) result {
	if err := k.s.completeJob(k.ctx, k.t, k.job, size, sum, parts); err != nil {
		return k.fail(err)
	}
	return result{out: outDone}
}

// suspend releases the upload Writer of a tick that did not complete it;
// the upload stays in the store for the next tick.
func (k *tick) suspend() {
	if k.w != nil && !k.closed {
		k.w.Suspend(k.ctx)
	}
}

// tableNames lists a plan's tables in dump order.
func tableNames(plan dump.Plan) []string {
	names := make([]string, len(plan.Tables))
	for i, t := range plan.Tables {
		names[i] = t.Name
	}
	return names
}
