package dump

import (
	"bytes"
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// TestSnapshotIgnoresConcurrentWriter: in WAL mode a writer commits rows
// while the dump runs; the writer is not blocked and its rows do not
// appear in the dump.
func TestSnapshotIgnoresConcurrentWriter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wal.db")
	w, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustExec(t, w, "PRAGMA journal_mode=WAL")
	mustExec(t, w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := 0; i < 50; i++ {
		mustExec(t, w, "INSERT INTO t(v) VALUES('before')")
	}
	ctx := context.Background()
	src, err := Open(ctx, path, Options{ChunkSize: 5}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Commit after Open (snapshot pinned) and again in the middle of the dump.
	mustExec(t, w, "INSERT INTO t(v) VALUES('after-open')")
	var out bytes.Buffer
	wrote := 0
	_, err = src.Dump(ctx, &out, Cursor{}, func(b *Boundary) error {
		c := b.Progress()
		if c.After != nil && wrote == 0 {
			done := make(chan struct{})
			go func() {
				defer close(done)
				mustExec(t, w, "INSERT INTO t(v) VALUES('during-dump'); UPDATE t SET v = 'changed' WHERE id = 50; DELETE FROM t WHERE id = 49")
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("writer blocked by the dump's read transaction")
			}
			wrote++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wrote == 0 {
		t.Fatal("the writer never ran")
	}
	s := out.String()
	for _, bad := range []string{"after-open", "during-dump", "changed"} {
		if strings.Contains(s, bad) {
			t.Errorf("dump contains %q, committed after the snapshot", bad)
		}
	}
	if n := strings.Count(s, "'before'"); n != 50 {
		t.Errorf("dump has %d of the 50 rows of the snapshot", n)
	}
}

func TestOpenBadInput(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not.db")
	os.WriteFile(notDB, []byte("this is certainly not a SQLite database, just text\n"), 0o644)
	encrypted := filepath.Join(dir, "enc.db")
	noise := make([]byte, 8192)
	for i := range noise {
		noise[i] = byte(i*131 + 7)
	}
	os.WriteFile(encrypted, noise, 0o644)
	corrupt := filepath.Join(dir, "corrupt.db")
	good, err := os.ReadFile(testsupport.Corpus(t, "chinook.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	for i := 100; i < 4096; i++ { // page 1 after the header: the schema b-tree
		bad[i] = 0xA5
	}
	os.WriteFile(corrupt, bad, 0o644)
	small := smallDB(t, dir)

	cases := []struct {
		name  string
		path  string
		opts  Options
		is    error
		inMsg string
	}{
		{"missing file", filepath.Join(dir, "missing.db"), Options{}, sluice.ErrNotFound, "no such file"},
		{"not sqlite", notDB, Options{}, sluice.ErrInvalid, "not a SQLite database"},
		{"encrypted", encrypted, Options{}, sluice.ErrInvalid, "not a SQLite database"},
		{"corrupt", corrupt, Options{}, nil, "malformed"},
		{"unknown table", small, Options{Tables: []string{"a", "nope"}}, sluice.ErrNotFound, `"nope"`},
		{"unknown exclude", small, Options{Exclude: []string{"zzz"}}, sluice.ErrNotFound, `"zzz"`},
		{"schema and data only", small, Options{SchemaOnly: true, DataOnly: true}, sluice.ErrInvalid, "exclude each other"},
		{"chunk too big", small, Options{ChunkSize: MaxChunkSize + 1}, sluice.ErrInvalid, "chunk size"},
		{"negative chunk", small, Options{ChunkSize: -1}, sluice.ErrInvalid, "chunk size"},
		{"bad format", small, Options{Format: "xml"}, sluice.ErrInvalid, "format"},
		{"directory", dir, Options{}, sluice.ErrInvalid, "directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if fi, err := os.Stat(tc.path); err == nil && !fi.IsDir() {
				before, _ = os.ReadFile(tc.path)
			}
			src, err := Open(context.Background(), tc.path, tc.opts, testsupport.Logger(t))
			if err == nil {
				// Corruption may only show when the pages are read.
				_, err = src.Dump(context.Background(), &bytes.Buffer{}, Cursor{}, nil)
				src.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Errorf("error %q does not mention %q", err, tc.inMsg)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "missing.db")); statErr == nil {
				t.Fatal("Open created the missing file")
			}
			if before != nil {
				after, _ := os.ReadFile(tc.path)
				if !bytes.Equal(before, after) {
					t.Error("file changed")
				}
			}
		})
	}
}

// TestOpenLockedDatabase: a rollback-journal database held under an
// exclusive lock by a writer fails clearly after the busy timeout.
func TestOpenLockedDatabase(t *testing.T) {
	path := smallDB(t, t.TempDir())
	w, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustExec(t, w, "BEGIN EXCLUSIVE")
	mustExec(t, w, "INSERT INTO empty(x) VALUES('locked')")
	start := time.Now()
	_, err = Open(context.Background(), path, Options{BusyTimeout: 300 * time.Millisecond}, testsupport.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("got %v, want a 'database is locked' error", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("failed after %v, want about the 300ms busy timeout", d)
	}
	mustExec(t, w, "ROLLBACK")
	src, err := Open(context.Background(), path, Options{BusyTimeout: 300 * time.Millisecond}, testsupport.Logger(t))
	if err != nil {
		t.Fatalf("after the lock is released: %v", err)
	}
	src.Close()
}

// TestDumpCancel: cancelling the context stops the dump with ctx's error.
func TestDumpCancel(t *testing.T) {
	db := buildEdgeDB(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	src, err := Open(ctx, db, Options{ChunkSize: 1}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	n := 0
	_, err = src.Dump(ctx, &bytes.Buffer{}, Cursor{}, func(*Boundary) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestFilters: include/exclude, schema-only and data-only.
func TestFilters(t *testing.T) {
	db := smallDB(t, t.TempDir())
	cases := []struct {
		name       string
		opts       Options
		want, nope []string
	}{
		{"tables", Options{Tables: []string{"w"}}, []string{"CREATE TABLE w(", "INSERT INTO w VALUES"}, []string{"CREATE TABLE a(", "INSERT INTO a "}},
		{"exclude", Options{Exclude: []string{"w", "va"}}, []string{"CREATE TABLE a(", "INSERT INTO a "}, []string{"CREATE TABLE w(", "CREATE VIEW va"}},
		{"schema only", Options{SchemaOnly: true}, []string{"CREATE TABLE a(", "CREATE VIEW va", "COMMIT;"}, []string{"INSERT INTO"}},
		{"data only", Options{DataOnly: true}, []string{"INSERT INTO a ", "INSERT INTO sqlite_sequence"}, []string{"CREATE", "BEGIN TRANSACTION", "COMMIT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := string(dumpAll(t, db, tc.opts))
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("missing %q in:\n%s", s, out)
				}
			}
			for _, s := range tc.nope {
				if strings.Contains(out, s) {
					t.Errorf("unexpected %q in:\n%s", s, out)
				}
			}
		})
	}
}

// TestLargeValuesUseBlobIO: once a table's rows are large, values over
// largeValue are read with incremental blob I/O, and the output is the
// same as with the plain query (checked by the round trips).
func TestLargeValuesUseBlobIO(t *testing.T) {
	db := buildEdgeDB(t, t.TempDir())
	src, err := Open(context.Background(), db, Options{Tables: []string{"big"}, ChunkSize: 3}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	if _, err := src.Dump(context.Background(), &out, Cursor{}, nil); err != nil {
		t.Fatal(err)
	}
	if src.largeReads.Load() == 0 {
		t.Fatal("no value was read with blob I/O")
	}
	plain := dumpAll(t, db, Options{Tables: []string{"big"}, ChunkSize: 1000})
	if !bytes.Equal(out.Bytes(), plain) {
		t.Fatal("blob I/O changed the output")
	}
}
