package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/state"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// sourcePath returns the file a tick dumps: the configured database, or
// for consistency=strict the job's snapshot copy in the data dir, made
// on the job's first tick.
func (s *Service) sourcePath(ctx context.Context, t state.Task, job *sluice.Job, cp *state.Checkpoint, cur cpCursor) (string, error) {
	name := job.Spec.Database
	path, ok := s.cfg.Databases[name]
	if !ok {
		return "", permanent(fmt.Errorf("database %q is no longer configured", name))
	}
	started := cur.Dump.Step > 0 || cur.Dump.Bytes > 0
	if job.Spec.Consistency == sluice.ConsistencyStrict && cp.Snapshot != "" {
		if _, err := os.Stat(cp.Snapshot); err == nil {
			return cp.Snapshot, nil
		}
		if started {
			return "", permanent(fmt.Errorf("strict snapshot copy %s is gone, so the job cannot continue at the same point in time", cp.Snapshot))
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", permanent(fmt.Errorf("database %q (%s) no longer exists", name, path))
	} else if err != nil {
		return "", fmt.Errorf("database %q: %w", name, err)
	}
	if job.Spec.Consistency != sluice.ConsistencyStrict {
		return path, nil
	}
	snap := s.snapshotPath(job.ID)
	if err := s.copySnapshot(ctx, path, snap); err != nil {
		return "", err
	}
	cp.Snapshot = snap
	if len(cp.Cursor) == 0 {
		cp.Cursor = []byte(`{}`)
	}
	if len(cp.Upload) == 0 {
		cp.Upload = []byte(`{}`)
	}
	if err := s.saveCheckpoint(ctx, t, job, cp); err != nil {
		os.Remove(snap)
		return "", err
	}
	s.log.Info("jobs: strict snapshot copied", "job", job.ID, "path", snap)
	return snap, nil
}

// copySnapshot copies an online, consistent snapshot of the database at
// src to dst with VACUUM INTO (one read transaction: writers are not
// blocked in WAL mode). It writes dst.tmp first and renames it, so dst
// is always a complete copy. Close interrupts it.
func (s *Service) copySnapshot(ctx context.Context, src, dst string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("strict snapshot: %w", err)
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.stopCtx, cancel)
	defer stop()
	conn, err := sqlite.OpenConn(src, sqlite.OpenReadOnly)
	if err != nil {
		return dumpErr(fmt.Errorf("strict snapshot: open %s: %w", src, err))
	}
	defer conn.Close()
	conn.SetBusyTimeout(state.BusyTimeout)
	conn.SetInterrupt(ctx.Done())
	if err := sqlitex.ExecuteTransient(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{tmp}}); err != nil {
		os.Remove(tmp)
		if s.stopCtx.Err() != nil {
			return errStopped
		}
		return dumpErr(fmt.Errorf("strict snapshot of %s: %w", src, err))
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("strict snapshot: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("strict snapshot: %w", err)
	}
	return syncFile(filepath.Dir(dst))
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
