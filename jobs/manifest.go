package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

// digestSource is implemented by sources that report their digests
// (*dump.Source does); a source without it yields a manifest without a
// schema digest.
type digestSource interface {
	Digests(final dump.Cursor) (dump.Digests, bool)
}

// writeManifest stores <key>.manifest.json beside a job's completed
// object. The digests come from the job's final checkpoint, which the
// tick saves before it completes the upload, so a job completed after a
// restart gets the same manifest.
func (s *Service) writeManifest(ctx context.Context, job *sluice.Job, size int64, sum string) error {
	var cp *state.Checkpoint
	if err := s.st.View(ctx, func(tx *state.Tx) (err error) {
		cp, err = tx.GetCheckpoint(job.ID)
		if errors.Is(err, state.ErrLeftoverLost) {
			err = nil // the cursor is all that is needed
		}
		return err
	}); err != nil {
		return err
	}
	var cur cpCursor
	if cp != nil && len(cp.Cursor) > 0 {
		if err := json.Unmarshal(cp.Cursor, &cur); err != nil {
			return fmt.Errorf("manifest: checkpoint cursor: %w", err)
		}
	}
	final := cur.Dump
	var d dump.Digests
	var plan dump.Plan
	s.mu.Lock()
	src := s.sources[job.ID]
	s.mu.Unlock()
	if src != nil {
		plan = src.src.Plan()
		if ds, ok := src.src.(digestSource); ok {
			d, _ = ds.Digests(final)
		}
	}
	if d.Tables == nil && final.Digest != nil {
		d.Tables = final.Digest.Tables
	}
	m := verify.NewManifest(dumpOptions(job.Spec, s.cfg.ChunkSize), job.Spec.Compression, plan, d)
	m.Sluice = s.cfg.Version
	m.Database.Name = job.Spec.Database
	m.Consistency = job.Consistency
	m.Resumed = job.Resumed > 0
	m.Object = verify.Object{Key: job.Key, Size: size, SHA256: sum}
	body := m.Marshal()
	key := verify.ManifestKey(job.Key)
	if _, err := s.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)),
		objstore.PutOptions{ContentType: "application/json", Metadata: map[string]string{"sluice-job": job.ID}}); err != nil {
		return fmt.Errorf("store manifest %s: %w", key, err)
	}
	return nil
}

// deleteExport removes a job's object and its manifest: the manifest is
// part of the export and never outlives it.
func (s *Service) deleteExport(ctx context.Context, key string) error {
	if err := s.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := s.store.Delete(ctx, verify.ManifestKey(key)); err != nil {
		return fmt.Errorf("delete %s: %w", verify.ManifestKey(key), err)
	}
	return nil
}

// removeManifestOf deletes the manifest at a failed or cancelled job's
// key: one stored just before a crash or a cancel that came ahead of the
// job's completion.
func (s *Service) removeManifestOf(ctx context.Context, jobID string) error {
	var key string
	if err := s.st.View(ctx, func(tx *state.Tx) error {
		j, err := tx.GetJob(jobID)
		if err == nil && j.State != sluice.StateCompleted {
			key = j.Key
		}
		return err
	}); err != nil || key == "" {
		return err
	}
	if err := s.store.Delete(ctx, verify.ManifestKey(key)); err != nil {
		return fmt.Errorf("delete %s: %w", verify.ManifestKey(key), err)
	}
	return nil
}
