package verify

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepScratch: only our own names (directories, .zip spool files),
// and only once everything in them is older than the cut-off, go.
func TestSweepScratch(t *testing.T) {
	now := time.Now()
	old, young := now.Add(-2*time.Hour), now
	tests := []struct {
		name    string
		dir     bool
		mtime   time.Time // of the entry, and of its file for a directory
		inner   time.Time // of the directory's file when not zero
		removed bool
	}{
		{"sluice-verify-111", true, old, time.Time{}, true},
		{"sluice-verify-222", true, young, time.Time{}, false},
		{"sluice-verify-333", true, old, young, false}, // a restore still writing
		{"sluice-verify-444.zip", false, old, time.Time{}, true},
		{"sluice-verify-555.zip", false, young, time.Time{}, false},
		{"sluice-verify-666", false, old, time.Time{}, false}, // a file not named like our spool
		{"sluice-verify-777.zip", true, old, time.Time{}, false},
		{"other-111", true, old, time.Time{}, false},
		{"state.db", false, old, time.Time{}, false},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		p := filepath.Join(dir, tc.name)
		if tc.dir {
			inner := tc.inner
			if inner.IsZero() {
				inner = tc.mtime
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(p, "scratch.db")
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, inner, inner); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, tc.mtime, tc.mtime); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := SweepScratch(dir, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, n := range removed {
		got[n] = true
	}
	for _, tc := range tests {
		_, err := os.Stat(filepath.Join(dir, tc.name))
		gone := errors.Is(err, fs.ErrNotExist)
		if gone != tc.removed || got[tc.name] != tc.removed {
			t.Errorf("%s: removed %v (reported %v), want %v", tc.name, gone, got[tc.name], tc.removed)
		}
	}
	if removed, err := SweepScratch(filepath.Join(dir, "missing"), now); err != nil || len(removed) != 0 {
		t.Errorf("missing dir: %v %v", removed, err)
	}
}
