package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
)

// ErrLeftoverLost: a checkpoint's leftover file is missing, or its bytes
// do not match the length and SHA-256 recorded with it. The checkpoint
// cannot be resumed byte for byte; GetCheckpoint still returns its other
// fields so the caller can discard its upload and start over.
var ErrLeftoverLost = errors.New("state: checkpoint leftover bytes lost")

// A checkpoint's leftover bytes (output not yet in an uploaded part, up to
// one part) are kept in a file of their own in LeftoverDir, not in the
// database: written and fsynced before the transaction that records its
// name and SHA-256 commits, removed if it rolls back, and the file it
// replaces is removed once it commits. A crash between those steps leaves
// an unreferenced file, which SweepLeftovers removes.

// LeftoverDir is the directory of leftover files: the database path with
// ".leftovers" appended.
func (db *DB) LeftoverDir() string { return db.path + ".leftovers" }

// WriteLeftover writes c's leftover bytes (if any, and if not written
// yet) to a new file and fsyncs it. SaveCheckpoint calls it; a caller may
// call it first, beside other work and outside the transaction, so that
// the transaction holds the database's write lock for its own commit
// only. c.Leftover must not change until that save. If the checkpoint
// is then not saved, DiscardLeftover removes the file (SweepLeftovers
// does, after a crash).
func (db *DB) WriteLeftover(c *Checkpoint) error {
	if len(c.Leftover) == 0 || c.written.name != "" {
		return nil
	}
	name, sum, err := db.writeLeftover(c.JobID, c.Leftover)
	if err != nil {
		return fmt.Errorf("state: save checkpoint %s: %w", c.JobID, err)
	}
	c.written = leftoverRef{name: name, sum: sum}
	return nil
}

// DiscardLeftover removes the file WriteLeftover wrote for c, which no
// committed checkpoint refers to, and forgets it.
func (db *DB) DiscardLeftover(c *Checkpoint) {
	db.removeLeftover(c.written.name)
	c.written = leftoverRef{}
}

// writeLeftover stores b in a new file and returns its name and SHA-256.
func (db *DB) writeLeftover(jobID string, b []byte) (name, sum string, err error) {
	dir := db.LeftoverDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("leftover: %w", err)
	}
	h := sha256.Sum256([]byte(jobID))
	name = fmt.Sprintf("%x-%d.bin", h[:8], time.Now().UnixNano())
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("leftover: %w", err)
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = syncDir(dir)
	}
	if werr != nil {
		_ = os.Remove(filepath.Join(dir, name))
		return "", "", fmt.Errorf("leftover: write %s: %w", name, werr)
	}
	s := sha256.Sum256(b)
	return name, hex.EncodeToString(s[:]), nil
}

// readLeftover returns the bytes of a leftover file, checked against its
// SHA-256; a missing or damaged file is ErrLeftoverLost.
func (db *DB) readLeftover(name, sum string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("%w: bad file name %q", ErrLeftoverLost, name)
	}
	b, err := os.ReadFile(filepath.Join(db.LeftoverDir(), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing", ErrLeftoverLost, name)
	}
	if err != nil {
		return nil, fmt.Errorf("leftover: read %s: %w", name, err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		return nil, fmt.Errorf("%w: %s does not match its SHA-256", ErrLeftoverLost, name)
	}
	return b, nil
}

// removeLeftover deletes a leftover file; a failure is only logged (the
// sweep retries it).
func (db *DB) removeLeftover(name string) {
	if name == "" {
		return
	}
	if err := os.Remove(filepath.Join(db.LeftoverDir(), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		db.log.Warn("state: remove leftover file", "file", name, "err", err)
	}
}

// leftoverFile returns the leftover file a job's checkpoint refers to.
func (tx *Tx) leftoverFile(jobID string) (string, error) {
	var name string
	err := tx.exec(`SELECT leftover_file FROM checkpoints WHERE job_id = ?`, func(s *sqlite.Stmt) error {
		name = s.ColumnText(0)
		return nil
	}, jobID)
	return name, err
}

// SweepLeftovers removes leftover files that no checkpoint refers to and
// that are older than minAge: those of deleted jobs, and those a crash
// left between writing a file and committing (or after committing its
// replacement). minAge protects a file another process has written but
// not yet committed. It returns how many files it removed.
func (db *DB) SweepLeftovers(ctx context.Context, minAge time.Duration) (int, error) {
	ents, err := os.ReadDir(db.LeftoverDir())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("state: sweep leftovers: %w", err)
	}
	used := map[string]bool{}
	err = db.View(ctx, func(tx *Tx) error {
		return tx.exec(`SELECT leftover_file FROM checkpoints WHERE leftover_file != ''`, func(s *sqlite.Stmt) error {
			used[s.ColumnText(0)] = true
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("state: sweep leftovers: %w", err)
	}
	cutoff := time.Now().Add(-minAge)
	n := 0
	for _, e := range ents {
		if used[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(db.LeftoverDir(), e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// syncDir fsyncs a directory, so a file created in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
