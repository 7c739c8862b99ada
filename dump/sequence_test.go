package dump

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSubsetSequence checks that a table-filtered SQL dump carries only
// the selected tables' sqlite_sequence rows, and none at all (no DELETE
// either) when they have none, so that it loads into a fresh database
// with sqlite3 -bail.
func TestSubsetSequence(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "seq.db")
	runCLI(t, db, strings.NewReader(`
		CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
		CREATE TABLE b(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
		CREATE TABLE c(v);
		INSERT INTO a(v) VALUES (1),(2),(3);
		INSERT INTO b(v) VALUES (1);
		INSERT INTO c VALUES (1);`))
	tests := []struct {
		name    string
		opts    Options
		wantSeq string // sqlite_sequence after loading, "name=seq" rows
		lacks   []string
	}{
		{"no autoincrement table", Options{Tables: []string{"c"}}, "", []string{"sqlite_sequence"}},
		{"one of two", Options{Tables: []string{"a"}}, "a=3", []string{"'b'"}},
		{"exclude", Options{Exclude: []string{"a"}}, "b=1", []string{"'a'"}},
		{"whole database", Options{}, "a=3,b=1", nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Format = "sql"
			out := dumpAll(t, db, tc.opts)
			for _, s := range tc.lacks {
				if strings.Contains(string(out), s) {
					t.Errorf("dump contains %q:\n%s", s, out)
				}
			}
			fresh := filepath.Join(dir, "fresh"+string(rune('0'+i))+".db")
			restore(t, out, fresh)
			q := "SELECT group_concat(name||'='||seq, ',') FROM (SELECT * FROM sqlite_sequence ORDER BY name);"
			if tc.wantSeq == "" {
				q = "SELECT group_concat(name) FROM sqlite_schema WHERE name='sqlite_sequence';"
			}
			got := strings.TrimSpace(string(runCLI(t, fresh, strings.NewReader(q))))
			if got != tc.wantSeq {
				t.Errorf("sqlite_sequence %q, want %q", got, tc.wantSeq)
			}
		})
	}
}
