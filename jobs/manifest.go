package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

// metaJob is the metadata key naming the job that stored an object or
// manifest: what tells housekeeping a manifest is sluice's own.
const metaJob = "sluice-job"

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
		objstore.PutOptions{ContentType: "application/json", Metadata: map[string]string{metaJob: job.ID}}); err != nil {
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

// removeStoredBy deletes what a failed or cancelled job stored at its
// key: the object and the manifest of a job that completed its upload but
// was cancelled or failed before it was recorded as completed. Only what
// carries the job's own tag (metaJob) goes, so another job's export at
// the same key (a race both submits won) is kept.
func (s *Service) removeStoredBy(ctx context.Context, jobID string) error {
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
	for _, k := range []string{key, verify.ManifestKey(key)} {
		info, err := s.store.Head(ctx, k)
		if errors.Is(err, objstore.ErrNotExist) || (err == nil && info.Metadata[metaJob] != jobID) {
			continue
		}
		if err != nil {
			return fmt.Errorf("head %s: %w", k, err)
		}
		if err := s.store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
}

// removeOrphanManifests deletes the manifests whose object is gone: a
// crash between deleting an object and its manifest, or an object removed
// out of band. Only manifests that are sluice's own are touched: at a key
// one of its jobs used, under Config.KeyPrefix when set, or stored by a
// job (metaJob). A job writes its manifest after Complete, so a manifest
// without its object is normally never young; the grace
// (Config.OrphanGrace, on the manifest's time) still covers a manifest
// whose object is being completed again at the same key, and writers that
// store the manifest first. The object is looked up last, just before
// the delete, so a manifest whose object exists is never deleted.
func (s *Service) removeOrphanManifests(ctx context.Context) error {
	keys, err := s.jobKeys(ctx)
	if err != nil {
		return err
	}
	objs, err := s.store.List(ctx, s.cfg.KeyPrefix)
	if err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	present := make(map[string]bool, len(objs))
	for _, o := range objs {
		present[o.Key] = true
	}
	cutoff := s.now().Add(-s.cfg.OrphanGrace)
	var errs []error
	for _, m := range objs {
		key, ok := strings.CutSuffix(m.Key, verify.ManifestSuffix)
		if !ok || present[key] || m.LastModified.After(cutoff) {
			continue
		}
		if err := s.removeOrphanManifest(ctx, m, key, keys[key]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeOrphanManifest deletes manifest m of the object at key if it is
// sluice's own and the object is still missing.
func (s *Service) removeOrphanManifest(ctx context.Context, m objstore.ObjectInfo, key string, known bool) error {
	ours := known || (s.cfg.KeyPrefix != "" && strings.HasPrefix(m.Key, s.cfg.KeyPrefix))
	if !ours {
		// S3 lists no metadata: ask for it.
		info, err := s.store.Head(ctx, m.Key)
		if errors.Is(err, objstore.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("head %s: %w", m.Key, err)
		}
		if info.Metadata[metaJob] == "" {
			return nil
		}
	}
	switch _, err := s.store.Head(ctx, key); {
	case err == nil:
		return nil // stored meanwhile
	case !errors.Is(err, objstore.ErrNotExist):
		return fmt.Errorf("head %s: %w", key, err)
	}
	if err := s.store.Delete(ctx, m.Key); err != nil {
		return fmt.Errorf("delete orphan manifest %s: %w", m.Key, err)
	}
	s.log.Info("jobs: removed orphaned manifest", "key", m.Key)
	return nil
}
