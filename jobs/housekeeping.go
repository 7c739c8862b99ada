package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
)

// runHousekeeping expires old jobs, applies schedule retention, aborts
// orphaned uploads and removes orphaned snapshot copies, manifests and
// verification scratch files, then queues its next run.
func (s *Service) runHousekeeping(ctx context.Context, t state.Task) error {
	err := s.housekeep(ctx)
	if ctx.Err() != nil && s.stopCtx.Err() != nil {
		s.release(t)
		return errStopped
	}
	if uerr := s.st.Update(s.hardCtx, func(tx *state.Tx) error {
		_, err := tx.RescheduleTask(t.ID, s.owner, s.now().Add(s.cfg.Housekeeping), 0)
		return err
	}); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// housekeep does one housekeeping pass; errors do not stop later steps.
func (s *Service) housekeep(ctx context.Context) error {
	var errs []error
	if err := s.reapDeadOwners(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.abortOrphanUploads(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.expireJobs(ctx); err != nil {
		errs = append(errs, err)
	}
	for name := range s.scheds {
		if err := s.applyRetention(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("retention %s: %w", name, err))
		}
	}
	if err := s.removeOrphanSnapshots(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.removeOrphanManifests(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.removeVerifyScratch(); err != nil {
		errs = append(errs, err)
	}
	// Leftover files a crash left unreferenced (state/leftover.go).
	if _, err := s.st.SweepLeftovers(ctx, time.Hour); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// expireJobs deletes finished jobs older than Config.JobTTL with their
// objects. Jobs of a configured schedule follow its retention instead,
// except failed and cancelled ones, which have no object to keep.
func (s *Service) expireJobs(ctx context.Context) error {
	if s.cfg.JobTTL <= 0 {
		return nil
	}
	cutoff := s.now().Add(-s.cfg.JobTTL)
	var old []*sluice.Job
	err := s.st.View(ctx, func(tx *state.Tx) error {
		jobs, err := tx.ListJobs(state.JobFilter{States: []sluice.State{sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled}, Limit: 1 << 30})
		for _, j := range jobs {
			if j.FinishedAt == nil || !j.FinishedAt.Before(cutoff) {
				continue
			}
			if j.State == sluice.StateCompleted && s.scheds[j.Spec.ScheduleID] != nil {
				continue
			}
			old = append(old, j)
		}
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range old {
		if err := s.deleteJob(ctx, j); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("jobs: expired job", "job", j.ID, "state", j.State, "key", j.Key)
	}
	return errors.Join(errs...)
}

// abortOrphanUploads aborts incomplete uploads that no live job owns and
// that are older than Config.OrphanGrace (younger ones may belong to a
// tick that has not checkpointed them yet). Only uploads under
// Config.KeyPrefix (when set) or at a key one of sluice's jobs used are
// considered, so a shared bucket's other uploads are never touched.
func (s *Service) abortOrphanUploads(ctx context.Context) error {
	keys, err := s.jobKeys(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{} // upload ids in live checkpoints
	err = s.st.View(ctx, func(tx *state.Tx) error {
		cps, err := tx.ListCheckpoints()
		for _, cp := range cps {
			var ust objstore.State
			if json.Unmarshal(cp.Upload, &ust) == nil && ust.UploadID != "" {
				live[ust.UploadID] = true
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	ups, err := s.store.ListUploads(ctx, s.cfg.KeyPrefix)
	if err != nil {
		return fmt.Errorf("list uploads: %w", err)
	}
	cutoff := s.now().Add(-s.cfg.OrphanGrace)
	var errs []error
	for _, u := range ups {
		ours := keys[u.Key] || (s.cfg.KeyPrefix != "" && strings.HasPrefix(u.Key, s.cfg.KeyPrefix))
		if !ours || live[u.UploadID] {
			continue
		}
		// A young upload may belong to a tick that has not checkpointed
		// it yet.
		if !u.Initiated.IsZero() && u.Initiated.After(cutoff) {
			continue
		}
		if err := s.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil && !errors.Is(err, objstore.ErrNotExist) {
			errs = append(errs, fmt.Errorf("abort orphan upload %s: %w", u.Key, err))
			continue
		}
		s.log.Info("jobs: aborted orphaned upload", "key", u.Key, "upload", u.UploadID)
	}
	return errors.Join(errs...)
}

// jobKeys returns the keys of every job sluice knows.
func (s *Service) jobKeys(ctx context.Context) (map[string]bool, error) {
	keys := map[string]bool{}
	err := s.st.View(ctx, func(tx *state.Tx) error {
		jobs, err := tx.ListJobs(state.JobFilter{Limit: 1 << 30})
		for _, j := range jobs {
			keys[j.Key] = true
		}
		return err
	})
	return keys, err
}

// removeOrphanSnapshots deletes snapshot copies of jobs that are not live.
func (s *Service) removeOrphanSnapshots(ctx context.Context) error {
	dir := filepath.Join(s.cfg.DataDir, "snapshots")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		var live bool
		if err := s.st.View(ctx, func(tx *state.Tx) error {
			j, err := tx.GetJob(id)
			if errors.Is(err, sluice.ErrNotFound) {
				return nil
			}
			live = err == nil && !j.State.Terminal()
			return err
		}); err != nil {
			return err
		}
		if !live {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("jobs: remove orphan snapshot copy", "file", e.Name(), "err", err)
			}
		}
	}
	return nil
}
