package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
)

// ownObject reports whether the object at key was completed by the upload
// writerID, i.e. a crash came between storing it and recording the job.
func (s *Service) ownObject(ctx context.Context, key, writerID string) (objstore.ObjectInfo, bool) {
	info, err := s.store.Head(ctx, key)
	if err != nil || info.Metadata[objstore.MetaWriter] != writerID || info.Metadata[objstore.MetaSHA256] == "" {
		return info, false
	}
	return info, true
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
	s.signalEnded()
	s.cfg.Metrics.AddBytesExported(size)
	s.log.Info("jobs: job completed", "job", job.ID, "key", job.Key, "size", size, "sha256", sum, "resumed", job.Resumed)
	if job.Spec.ScheduleID != "" {
		if err := s.applyRetention(ctx, job.Spec.ScheduleID); err != nil {
			s.log.Error("jobs: retention", "schedule", job.Spec.ScheduleID, "err", err)
		}
	}
	s.poke()
	return nil
}

// markFailed marks the job failed with cause's message and queues its
// callback, unless it already ended. The caller cleans up first, so a
// failed job never shows its leftovers.
func (s *Service) markFailed(ctx context.Context, jobID string, cause error) error {
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
		s.signalEnded()
		s.log.Error("jobs: job failed", "job", jobID, "err", cause)
	}
	return nil
}

// cleanup removes what a cancelled or failed job left behind: its
// incomplete upload (and any partial object), an object and manifest it
// stored but was not recorded as completed for, its snapshot copy and its
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
	if err := s.removeStoredBy(ctx, jobID); err != nil {
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
