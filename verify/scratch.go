package verify

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scratchPrefix begins the name of every scratch directory (a SQL dump's
// restored database) and spool file (a csv zip) that verification
// creates in Input.TempDir.
const scratchPrefix = "sluice-verify-"

// SweepScratch removes from dir the scratch directories and spool files
// that verifications killed before their cleanup left behind: entries
// named like ours whose newest modification (the entry's or, for a
// directory, any file's in it) is before olderThan. A live
// verification's scratch database is written while it restores, so it
// stays young; one being digested is only read, and on Linux its open
// files stay readable even if removed. It returns the names removed.
func SweepScratch(dir string, olderThan time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verify: sweep scratch: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), scratchPrefix) || (e.IsDir() == strings.HasSuffix(e.Name(), ".zip")) {
			continue // not ours: ours are directories, or .zip spool files
		}
		p := filepath.Join(dir, e.Name())
		if newest(p).After(olderThan) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("verify: sweep scratch: %w", err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// newest returns the latest modification time of p and, for a directory,
// of everything in it; an error reading counts as now, so a path that
// cannot be examined is kept.
func newest(p string) time.Time {
	var t time.Time
	err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(t) {
			t = info.ModTime()
		}
		return nil
	})
	if err != nil {
		return time.Now()
	}
	return t
}
