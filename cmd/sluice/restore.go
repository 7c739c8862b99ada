package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/sluice-dev/sluice/sqlload"
	"github.com/sluice-dev/sluice/verify"
)

const restoreSynopsis = `--db new.db [--force] dump.sql[.gz|.zst]|-

Loads a SQL dump (written by sluice dump or sqlite3 .dump) into a new
database, streaming one statement at a time. The dump is decompressed by
its suffix or, failing that, by its magic bytes. The database is built in
<db>.tmp and renamed into place only when the whole dump loaded and passed
PRAGMA quick_check, so a failed restore leaves nothing behind. The dump
is not trusted: ATTACH, VACUUM, TEMP objects and every PRAGMA but
foreign_keys are refused (see docs/security.md). An existing
database is refused unless --force is given; --force replaces it, and no
other process may have it open.`

func runRestore(ctx context.Context, e *env, args []string) error {
	fl := newFlagSet(e, "restore", restoreSynopsis)
	db := fl.String("db", "", "database file to create (required)")
	force := fl.Bool("force", false, "replace an existing database")
	check := fl.Bool("check", true, "run PRAGMA quick_check on the result before renaming it into place")
	progress := fl.String("progress", "auto", "progress bar on stderr: auto, always or never")
	newLogger := logFlags(fl, "warn")
	if err := parseFlags(e, fl, args); err != nil {
		return err
	}
	if *db == "" {
		return usagef("--db is required")
	}
	if fl.NArg() != 1 {
		return usagef("want exactly one dump file (or - for stdin), got %d arguments", fl.NArg())
	}
	switch *progress {
	case "auto", "always", "never":
	default:
		return usagef("bad --progress %q (want auto, always or never)", *progress)
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	input := fl.Arg(0)

	// Refuse before reading anything.
	if _, err := os.Stat(*db); err == nil && !*force {
		return fmt.Errorf("database %s already exists; use --force to replace it", *db)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("database %s: %w", *db, err)
	}
	if di, err := os.Stat(filepath.Dir(*db)); err != nil || !di.IsDir() {
		return fmt.Errorf("cannot create %s: directory %s does not exist", *db, filepath.Dir(*db))
	}

	var raw io.Reader
	var size int64 = -1
	if input == "-" {
		raw = e.stdin
	} else {
		f, err := os.Open(input)
		if err != nil {
			return fmt.Errorf("open dump: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			if fi.IsDir() {
				return fmt.Errorf("dump %s is a directory", input)
			}
			size = fi.Size()
		}
		raw = f
	}
	counted := &countingReader{r: raw}
	r, closeDec, err := verify.Decompress(counted, compressionFromName(input))
	if err != nil {
		return fmt.Errorf("read dump %s: %w", input, err)
	}
	defer closeDec()

	stopBar := startByteBar(e, *progress, size, "restore", counted)
	start := time.Now()
	st, err := restoreInto(ctx, log, *db, r, *check)
	stopBar()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; %s was not created", *db)
		}
		return err
	}
	fmt.Fprintf(e.stderr, "sluice: restore complete: statements=%d bytes=%d input_bytes=%d seconds=%.2f database=%s\n",
		st.Statements, st.Bytes, counted.n.Load(), time.Since(start).Seconds(), *db)
	return nil
}

// restoreInto loads r into <db>.tmp and renames it to db on success.
func restoreInto(ctx context.Context, log *slog.Logger, db string, r io.Reader, check bool) (sqlload.Stats, error) {
	tmp := db + ".tmp"
	removeDB(tmp)
	conn, err := sqlite.OpenConn(tmp, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		return sqlload.Stats{}, fmt.Errorf("create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if conn != nil {
			conn.Close()
		}
		if !ok {
			removeDB(tmp)
		}
	}()
	// The file is private until renamed and discarded on failure, so the
	// rollback journal only has to survive the load itself, not a crash.
	for _, p := range []string{"PRAGMA journal_mode=MEMORY", "PRAGMA synchronous=OFF"} {
		if err := sqlitex.ExecuteTransient(conn, p, nil); err != nil {
			return sqlload.Stats{}, fmt.Errorf("%s: %w", p, err)
		}
	}
	// The dump is untrusted: sqlload refuses what a dump never needs
	// (ATTACH, VACUUM INTO, PRAGMAs but foreign_keys, ...) and runs
	// quick_check before it commits.
	st, err := sqlload.Load(ctx, conn, r, sqlload.Options{Atomic: true, Check: check})
	if err != nil {
		return st, fmt.Errorf("load: %w", err)
	}
	log.Debug("restore: loaded", "statements", st.Statements, "bytes", st.Bytes)
	if err := conn.Close(); err != nil {
		conn = nil
		return st, fmt.Errorf("close %s: %w", tmp, err)
	}
	conn = nil
	if err := syncFile(tmp); err != nil {
		return st, err
	}
	// A replaced database's WAL or journal must not be applied to the new
	// file, so they go first.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("remove old %s%s: %w", db, suffix, err)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return st, fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	return st, syncDir(filepath.Dir(db))
}

// removeDB removes a database file and its side files, ignoring errors.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
