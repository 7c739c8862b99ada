package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
	"zombiezen.com/go/sqlite"
)

// cpCursor is the dump side of a checkpoint.
type cpCursor struct {
	Dump dump.Cursor `json:"dump"`
	// Instance names the open snapshot that wrote the checkpoint. A tick
	// that finds another instance (or none open) continues in a new
	// snapshot: the job has been resumed.
	Instance string `json:"instance,omitempty"`
}

var (
	errCancelled = errors.New("jobs: job cancelled")
	errDone      = errors.New("jobs: job finished")
)

// runTick advances one job by one tick and decides what happens to its
// task: yield to the back of the queue, retry later, or finish.
func (s *Service) runTick(ctx context.Context, t state.Task) error {
	jobID := t.Key[len("tick:"):]
	var job *sluice.Job
	started := false
	err := s.st.Update(ctx, func(tx *state.Tx) error {
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
	switch {
	case err != nil:
		s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts)
		return fmt.Errorf("tick %s: %w", jobID, err)
	case job == nil || job.State == sluice.StateCompleted:
		s.finish(t)
		return nil
	case job.State == sluice.StateCancelled || job.State == sluice.StateFailed:
		err := s.cleanup(ctx, job.ID)
		if err != nil {
			s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts+1)
			return err
		}
		s.finish(t)
		return nil
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
	err = s.tick(tickCtx, t, job)
	s.cfg.Metrics.ObserveTick(time.Since(tickStart))
	if errors.Is(err, errAbandon) {
		return err
	}
	if cause := context.Cause(tickCtx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	switch {
	case err == nil:
		s.reschedule(t, s.now(), 0) // round robin: back of the queue
		return nil
	case errors.Is(err, errDone):
		s.finish(t)
		return nil
	case errors.Is(err, errStopped):
		s.release(t)
		return errStopped
	case errors.Is(err, errLeaseLost):
		return err
	case errors.Is(err, errCancelled):
		if err := s.cleanup(s.hardCtx, job.ID); err != nil {
			s.reschedule(t, s.now().Add(s.cfg.Poll), t.Attempts+1)
			return err
		}
		s.log.Info("jobs: job cancelled", "job", job.ID)
		s.finish(t)
		return nil
	}
	if s.hardCtx.Err() != nil || errors.Is(err, context.Canceled) {
		// Stopping (or stopped hard): never blame the job for it.
		s.release(t)
		return errStopped
	}
	attempts := t.Attempts + 1
	if !isPermanent(err) && attempts < s.cfg.MaxAttempts {
		delay := min(time.Second<<attempts, time.Minute)
		s.log.Warn("jobs: tick failed, will retry", "job", job.ID, "attempt", attempts, "in", delay, "err", err)
		s.reschedule(t, s.now().Add(delay), attempts)
		return nil
	}
	if ferr := s.failJob(s.hardCtx, job.ID, err); ferr != nil {
		s.reschedule(t, s.now().Add(s.cfg.Poll), attempts)
		return ferr
	}
	s.finish(t)
	return nil
}

// tick runs the job from its checkpoint for at most the tick budget.
// It returns nil when it yielded with a fresh checkpoint, errDone when the
// job reached a terminal state, or the error that stopped it.
func (s *Service) tick(ctx context.Context, t state.Task, job *sluice.Job) error {
	var cp *state.Checkpoint
	var lost error // the checkpoint's leftover bytes are gone: start over
	if err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		cp, err = tx.GetCheckpoint(job.ID)
		if errors.Is(err, state.ErrLeftoverLost) && cp != nil {
			lost, err = err, nil
		}
		return err
	}); err != nil {
		return err
	}
	if cp == nil {
		cp = &state.Checkpoint{JobID: job.ID}
	}
	var cur cpCursor
	var ust objstore.State
	if len(cp.Cursor) > 0 {
		if err := json.Unmarshal(cp.Cursor, &cur); err != nil {
			return permanent(fmt.Errorf("checkpoint cursor: %w", err))
		}
	}
	if len(cp.Upload) > 0 {
		if err := json.Unmarshal(cp.Upload, &ust); err != nil {
			return permanent(fmt.Errorf("checkpoint upload state: %w", err))
		}
	}

	path, err := s.sourcePath(ctx, t, job, cp, cur)
	if err != nil {
		return err
	}

	// The snapshot: kept open across this process's ticks.
	s.mu.Lock()
	src := s.sources[job.ID]
	s.mu.Unlock()
	if src == nil || src.instance != cur.Instance {
		if src != nil {
			s.dropSource(job.ID)
		}
		opened, err := s.cfg.Open(ctx, path, dumpOptions(job.Spec, s.cfg.ChunkSize), s.log)
		if err != nil {
			return dumpErr(fmt.Errorf("open %s: %w", path, err))
		}
		src = &openSource{src: opened, instance: newID()}
		s.mu.Lock()
		s.sources[job.ID] = src
		s.mu.Unlock()
		if cur.Dump.Step > 0 || cur.Dump.Bytes > 0 {
			job.Resumed++
			if job.Consistency != sluice.ConsistencyStrict {
				job.Consistency = sluice.ConsistencyResumed
			}
			s.log.Info("jobs: job resumed in a new snapshot", "job", job.ID, "resumed", job.Resumed,
				"bytes", cur.Dump.Bytes, "parts", len(ust.Parts))
		}
	}
	s.mu.Lock()
	src.lastUsed = time.Now()
	s.mu.Unlock()
	plan := src.src.Plan()
	job.Progress.Tables = tableNames(plan)
	job.Progress.TablesTotal = len(plan.Tables)
	job.Progress.EstimatedBytes = plan.EstimatedBytes

	wopts := objstore.WriterOptions{
		ContentType:  job.Spec.ContentType(),
		Metadata:     map[string]string{"sluice-job": job.ID},
		ExpectedSize: plan.EstimatedBytes,
		Concurrency:  s.cfg.UploadConcurrency,
		Limits:       s.cfg.Limits,
		OnPart:       func(objstore.Part) { s.cfg.Metrics.AddPartUploaded() },
		OnRetry:      func(string, error) { s.cfg.Metrics.AddUploadRetry() },
		Go:           s.cfg.UploadGo,
	}
	var w *objstore.Writer
	if lost != nil && ust.Key == "" {
		// No upload yet, but the bytes dumped so far are gone with the
		// leftover: dump again from the start.
		s.log.Warn("jobs: checkpoint leftover lost; restarting the job from the start", "job", job.ID, "err", lost)
		cur.Dump, cp.Leftover = dump.Cursor{}, nil
		job.Progress = sluice.Progress{Tables: job.Progress.Tables, TablesTotal: len(plan.Tables), EstimatedBytes: plan.EstimatedBytes}
	}
	if ust.Key == "" {
		w, err = objstore.NewWriter(ctx, s.store, job.Key, wopts, s.log)
	} else {
		if lost != nil {
			err = fmt.Errorf("%w: %v", objstore.ErrResume, lost)
		} else {
			w, err = objstore.Resume(ctx, s.store, ust, cp.Leftover, wopts, s.log)
		}
		if errors.Is(err, objstore.ErrResume) {
			if cur.Dump.Done {
				// Complete may have succeeded just before a crash.
				if info, ok := s.ownObject(ctx, job.Key, ust.WriterID); ok {
					return s.completeJob(ctx, t, job, info.Size, info.Metadata[objstore.MetaSHA256], len(ust.Parts)+1)
				}
			}
			s.log.Warn("jobs: upload cannot be resumed; restarting the job from the start", "job", job.ID, "err", err)
			if derr := objstore.Discard(ctx, s.store, ust); derr != nil {
				return derr
			}
			cur.Dump, ust, cp.Leftover = dump.Cursor{}, objstore.State{}, nil
			job.Progress = sluice.Progress{Tables: job.Progress.Tables, TablesTotal: len(plan.Tables), EstimatedBytes: plan.EstimatedBytes}
			w, err = objstore.NewWriter(ctx, s.store, job.Key, wopts, s.log)
		}
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", job.Key, err)
	}
	abandon := true
	defer func() {
		if abandon {
			w.Suspend(ctx) // release buffers; the upload stays for the next tick
		}
	}()

	cw := &countWriter{w: w, n: ust.Bytes + int64(len(cp.Leftover))}
	rowsAtStart := cur.Dump.Rows
	defer func() {
		// Rows this tick produced; after a crash the rows past the last
		// checkpoint are produced (and counted) again.
		s.cfg.Metrics.AddRowsExported(max(0, job.Progress.Rows-rowsAtStart))
	}()
	fr := newFramer(cw, job.Spec.Compression)
	partsBase := len(ust.Parts)
	start := time.Now()
	// A checkpoint follows the first page boundary after each part is
	// cut, and waits for that part: then at most the one part cut after
	// the last checkpoint can be uploaded twice after a crash. The price
	// is that dumping and uploading do not overlap across parts.
	cutAtCP := w.PartsCut()
	lastProgress := time.Now()

	progress := func(c dump.Cursor) {
		p := &job.Progress
		p.Rows, p.TablesDone, p.CurrentTable, p.RowOffset = c.Rows, c.TablesDone, c.Table, c.TableRows
		p.Bytes = cw.n
		p.PartsUploaded = partsBase + w.PartsUploaded()
		ratio := 1.0
		if c.Bytes > 0 {
			ratio = float64(cw.n) / float64(c.Bytes)
		}
		est := int(math.Ceil(float64(plan.EstimatedBytes) * ratio / float64(w.PartSize())))
		p.PartsTotal = max(p.PartsUploaded, est)
	}
	save := func(c dump.Cursor) error {
		if err := fr.endFrame(); err != nil {
			return err
		}
		wst, left, err := w.Checkpoint(ctx)
		if err != nil {
			return err
		}
		progress(c)
		cur.Dump = c
		cur.Instance = src.instance
		cp.Cursor, _ = json.Marshal(cur)
		cp.Upload, _ = json.Marshal(wst)
		cp.Leftover = left
		if err := s.saveCheckpoint(ctx, t, job, cp); err != nil {
			return err
		}
		cutAtCP = w.PartsCut()
		if s.afterCheckpoint != nil {
			return s.afterCheckpoint(job.ID, len(wst.Parts))
		}
		return nil
	}
	checkpoint := func(c dump.Cursor) error {
		yield := time.Since(start) >= s.cfg.TickBudget || s.stopCtx.Err() != nil || ctx.Err() != nil
		if yield || w.PartsCut() > cutAtCP {
			if err := save(c); err != nil {
				return err
			}
		} else if time.Since(lastProgress) >= time.Second {
			progress(c)
			if err := s.saveProgress(ctx, t, job); err != nil {
				return err
			}
			lastProgress = time.Now()
		}
		if yield {
			return dump.ErrStop
		}
		return nil
	}

	if !cur.Dump.Done {
		final, err := src.src.Dump(ctx, fr, cur.Dump, checkpoint)
		if err != nil {
			if isTickControl(err) || isStoreErr(err) || errors.Is(err, errAbandon) {
				return err
			}
			return dumpErr(err)
		}
		if !final.Done {
			if s.stopCtx.Err() != nil {
				return errStopped
			}
			if c := context.Cause(ctx); c != nil {
				return c
			}
			return nil // yielded after a checkpoint
		}
		// Everything is written: checkpoint before completing, so a crash
		// during Complete resumes here rather than dumping again.
		if err := save(final); err != nil {
			return err
		}
	}
	abandon = false
	if err := w.Close(); err != nil {
		if errors.Is(err, errAbandon) {
			return err
		}
		if errors.Is(err, objstore.ErrExist) && ust.WriterID != "" {
			// A small object is stored with one Put; a crash after it and
			// before our record leaves it in place: accept it if ours.
			if info, ok := s.ownObject(ctx, job.Key, ust.WriterID); ok {
				return s.completeJob(ctx, t, job, info.Size, info.Metadata[objstore.MetaSHA256], max(len(ust.Parts), 1))
			}
		}
		return fmt.Errorf("complete upload %s: %w", job.Key, err)
	}
	progress(cur.Dump)
	return s.completeJob(ctx, t, job, w.Info().Size, w.SHA256(), partsBase+w.PartsUploaded())
}

// ownObject reports whether the object at key was completed by the upload
// writerID, i.e. a crash came between storing it and recording the job.
func (s *Service) ownObject(ctx context.Context, key, writerID string) (objstore.ObjectInfo, bool) {
	info, err := s.store.Head(ctx, key)
	if err != nil || info.Metadata[objstore.MetaWriter] != writerID || info.Metadata[objstore.MetaSHA256] == "" {
		return info, false
	}
	return info, true
}

// saveCheckpoint writes the checkpoint and the job's progress in one
// transaction, fenced on the task lease. A job cancelled meanwhile stops
// the tick.
func (s *Service) saveCheckpoint(ctx context.Context, t state.Task, job *sluice.Job, cp *state.Checkpoint) error {
	now := s.now()
	cp.UpdatedAt = now
	return s.update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		if err := tx.SaveCheckpoint(cp); err != nil {
			return err
		}
		job.UpdatedAt = now
		return tx.UpdateJob(job)
	})
}

// saveProgress persists the job's progress only (between checkpoints, so
// status stays current), fenced like a checkpoint.
func (s *Service) saveProgress(ctx context.Context, t state.Task, job *sluice.Job) error {
	return s.update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		job.UpdatedAt = s.now()
		return tx.UpdateJob(job)
	})
}

// update runs a state transaction from the dump's checkpoint callback on
// a goroutine of its own. The callback runs on the engine's thread, which
// a server lowers to nice 19 (dump.Gate.WithNice), and SQLite's memory
// allocator (modernc libc) takes a process-wide lock: a checkpoint
// writing megabytes of leftover bytes while holding that lock at the
// lowest priority stalled every query of the server (p99 from 4 to 40
// ms). A new goroutine is never run by that locked thread.
func (s *Service) update(ctx context.Context, fn func(tx *state.Tx) error) error {
	ch := make(chan error, 1)
	go func() { ch <- s.st.Update(ctx, fn) }()
	return <-ch
}

// fence checks inside a write transaction that this process still holds
// the task's lease and that the job was not cancelled.
func (s *Service) fence(tx *state.Tx, t state.Task, jobID string) error {
	held, err := tx.HoldsLease(t.ID, s.owner, s.now())
	if err != nil {
		return err
	}
	if !held {
		return errLeaseLost
	}
	j, err := tx.GetJob(jobID)
	if err != nil {
		return err
	}
	if j.State != sluice.StateRunning {
		return errCancelled
	}
	return nil
}

// completeJob records a finished upload: completed state, size, SHA-256,
// no checkpoint, and the callback queued, all in one transaction.
func (s *Service) completeJob(ctx context.Context, t state.Task, job *sluice.Job, size int64, sum string, parts int) error {
	if err := s.writeManifest(ctx, job, size, sum); err != nil {
		return err
	}
	now := s.now()
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		job.State, job.Size, job.SHA256 = sluice.StateCompleted, size, sum
		job.FinishedAt, job.UpdatedAt, job.Error = &now, now, ""
		job.Progress.PartsUploaded, job.Progress.PartsTotal = parts, parts
		job.Progress.CurrentTable = ""
		if err := tx.UpdateJob(job); err != nil {
			return err
		}
		if err := tx.DeleteCheckpoint(job.ID); err != nil {
			return err
		}
		return s.afterComplete(tx, job)
	})
	if errors.Is(err, errCancelled) {
		// Cancelled while completing: the object is ours and unwanted.
		if derr := s.deleteExport(s.hardCtx, job.Key); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	if err != nil {
		return err
	}
	s.dropSource(job.ID)
	s.removeSnapshot(job.ID)
	// Uploads a crash left behind before their first checkpoint.
	if err := s.abortUploadsOf(ctx, job.ID, ""); err != nil {
		s.log.Warn("jobs: abort stale uploads", "job", job.ID, "err", err)
	}
	s.cfg.Metrics.AddBytesExported(size)
	s.log.Info("jobs: job completed", "job", job.ID, "key", job.Key, "size", size, "sha256", sum, "resumed", job.Resumed)
	if job.Spec.ScheduleID != "" {
		if err := s.applyRetention(ctx, job.Spec.ScheduleID); err != nil {
			s.log.Error("jobs: retention", "schedule", job.Spec.ScheduleID, "err", err)
		}
	}
	s.poke()
	return errDone
}

// failJob removes what the job's upload created, then marks it failed
// with cause's message and queues its callback; so a failed job never
// shows its leftovers. A cleanup error is returned after the job is
// marked, and the task retries the cleanup.
func (s *Service) failJob(ctx context.Context, jobID string, cause error) error {
	cerr := s.cleanup(ctx, jobID)
	now := s.now()
	var failed bool
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		job, err := tx.GetJob(jobID)
		if err != nil || job.State.Terminal() {
			return err
		}
		job.State, job.Error, job.FinishedAt, job.UpdatedAt = sluice.StateFailed, cause.Error(), &now, now
		failed = true
		if err := tx.UpdateJob(job); err != nil {
			return err
		}
		return s.queueCallback(tx, job)
	})
	if err != nil {
		return err
	}
	if failed {
		s.log.Error("jobs: job failed", "job", jobID, "err", cause)
	}
	return cerr
}

// cleanup removes what a cancelled or failed job left behind: its
// incomplete upload (and any partial object), its snapshot copy and its
// checkpoint. It is idempotent.
func (s *Service) cleanup(ctx context.Context, jobID string) error {
	s.dropSource(jobID)
	var cp *state.Checkpoint
	if err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		cp, err = tx.GetCheckpoint(jobID)
		if errors.Is(err, state.ErrLeftoverLost) {
			err = nil // only the upload state is needed here
		}
		return err
	}); err != nil {
		return err
	}
	if cp != nil && len(cp.Upload) > 0 {
		var ust objstore.State
		if err := json.Unmarshal(cp.Upload, &ust); err == nil && ust.Key != "" {
			if err := objstore.Discard(ctx, s.store, ust); err != nil {
				return fmt.Errorf("discard upload of job %s: %w", jobID, err)
			}
		}
	}
	// Uploads created after the last checkpoint are not in it.
	if err := s.abortUploadsOf(ctx, jobID, ""); err != nil {
		return err
	}
	if err := s.removeManifestOf(ctx, jobID); err != nil {
		return err
	}
	s.removeSnapshot(jobID)
	return s.st.Update(ctx, func(tx *state.Tx) error { return tx.DeleteCheckpoint(jobID) })
}

// abortUploadsOf aborts every incomplete upload of the job's key except
// keep.
func (s *Service) abortUploadsOf(ctx context.Context, jobID, keep string) error {
	var key string
	if err := s.st.View(ctx, func(tx *state.Tx) error {
		j, err := tx.GetJob(jobID)
		if err == nil {
			key = j.Key
		}
		return err
	}); err != nil {
		return err
	}
	ups, err := s.store.ListUploads(ctx, key)
	if err != nil {
		return fmt.Errorf("list uploads of %s: %w", key, err)
	}
	for _, u := range ups {
		if u.Key != key || u.UploadID == keep {
			continue
		}
		if err := s.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return fmt.Errorf("abort upload %s: %w", u.Key, err)
		}
	}
	return nil
}

func (s *Service) removeSnapshot(jobID string) {
	p := s.snapshotPath(jobID)
	for _, f := range []string{p, p + ".tmp", p + "-journal", p + "-wal", p + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("jobs: remove snapshot copy", "path", f, "err", err)
		}
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

func dumpOptions(spec sluice.JobSpec, defChunk int) dump.Options {
	chunk := spec.ChunkSize
	if chunk == 0 {
		chunk = defChunk
	}
	return dump.Options{Format: spec.Format, Tables: spec.Tables, Exclude: spec.Exclude, ChunkSize: chunk,
		PreserveRowids: spec.PreserveRowids, PlainCSV: spec.PlainCSV()}
}

// dumpErr classifies an error from the dump engine: a busy database is
// worth retrying, anything else (missing table, schema changed, corrupt
// file) fails the job.
func dumpErr(err error) error {
	code := sqlite.ErrCode(err).ToPrimary()
	if code == sqlite.ResultBusy || code == sqlite.ResultLocked {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return permanent(fmt.Errorf("dump: %w", err))
}

func isTickControl(err error) bool {
	return errors.Is(err, errCancelled) || errors.Is(err, errLeaseLost) || errors.Is(err, errStopped) ||
		errors.Is(err, context.Canceled)
}

// isStoreErr reports errors that came from the upload, which the dump
// engine passes through from its writer.
func isStoreErr(err error) bool {
	return objstore.IsRetryable(err) || errors.Is(err, objstore.ErrExist) || errors.Is(err, objstore.ErrInvalidKey) ||
		errors.Is(err, objstore.ErrAccessDenied) || errors.Is(err, objstore.ErrClosed)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
