package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

const dumpSynopsis = `--db path.db [--format sql|csv|json|json-typed|ndjson] [--tables a,b] [--exclude c]
        [--schema-only|--data-only] [--preserve-rowids] [--chunk-size N] [--readers N]
        [--compress gzip|zstd] [-o out|-] [--to s3://bucket/key|file:///dir/key]

Dumps one read snapshot of a SQLite database. With -o the output is written
to <out>.tmp and renamed when complete. With --to it streams into a store
as a multipart upload. Without -o or --to it goes to stdout. A .gz or .zst
suffix on -o or --to selects the compression when --compress is not given.
A summary (rows, bytes, sha256 of the output, seconds) is printed on stderr;
--no-sha256 skips the hash. A --to object gets <key>.manifest.json beside
it (per-table digests, for 'sluice verify'); -o file gets
<file>.manifest.json with --manifest.`

// wantsManifest reports whether the dump writes a manifest: always for
// --to, with --manifest for -o file.
func (a *dumpArgs) wantsManifest() bool { return a.to != "" || a.manifest }

// wantsSHA256 reports whether the output is hashed for the summary:
// unless --no-sha256, which parseDumpArgs refuses where the hash is
// recorded (the object's metadata, the manifest). On BLOB-heavy data the
// SHA-256 of the hex output is what bounds the dump's speed
// (docs/benchmarks.md).
func (a *dumpArgs) wantsSHA256() bool { return !a.noSHA256 }

// dumpArgs are the parsed flags of `sluice dump`.
type dumpArgs struct {
	db       string
	opts     dump.Options
	compress sluice.Compression
	out      string // "" or "-" for stdout
	to       string
	progress string
	manifest bool
	noSHA256 bool
	s3       *s3Flags
}

func parseDumpArgs(e *env, args []string) (*dumpArgs, func(*env) (*slog.Logger, error), error) {
	fs := newFlagSet(e, "dump", dumpSynopsis)
	a := &dumpArgs{}
	fs.StringVar(&a.db, "db", "", "SQLite database to dump (required; opened read-only)")
	format := fs.String("format", "sql", "output format: sql, csv (a zip of one CSV per table), json ({table: rows}), json-typed or ndjson")
	tables := fs.String("tables", "", "comma-separated tables to dump (default: all)")
	exclude := fs.String("exclude", "", "comma-separated tables to leave out")
	fs.BoolVar(&a.opts.SchemaOnly, "schema-only", false, "dump the schema only, no rows")
	fs.BoolVar(&a.opts.DataOnly, "data-only", false, "dump the rows only, no schema")
	fs.BoolVar(&a.opts.PreserveRowids, "preserve-rowids", false, "keep implicit rowids (as sqlite3 .dump --preserve-rowids)")
	fs.IntVar(&a.opts.ChunkSize, "chunk-size", dump.DefaultChunkSize, fmt.Sprintf("rows read per page (1..%d)", dump.MaxChunkSize))
	fs.DurationVar(&a.opts.BusyTimeout, "busy-timeout", 5*time.Second, "how long to wait for a database locked by a writer")
	fs.IntVar(&a.opts.Readers, "readers", 0, fmt.Sprintf("connections reading a rowid table at once (1..%d; default 2 on a machine with more than one core)", dump.MaxReaders))
	compress := fs.String("compress", "", "compression: gzip or zstd (default: none, or from the -o/--to suffix)")
	fs.StringVar(&a.out, "o", "", "output file, or - for stdout (default: stdout)")
	fs.StringVar(&a.to, "to", "", "stream into a store: s3://bucket/key or file:///abs/dir/key")
	fs.BoolVar(&a.manifest, "manifest", false, "with -o file: also write <file>.manifest.json (always written beside a --to object)")
	fs.BoolVar(&a.noSHA256, "no-sha256", false, "with -o or stdout and no --manifest: do not hash the output (the summary then has no sha256)")
	fs.StringVar(&a.progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	a.s3 = registerS3Flags(fs)
	newLogger := logFlags(fs, "warn")
	if err := parseFlags(e, fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, usagef("unexpected argument %q (the database is given with --db)", fs.Arg(0))
	}
	if a.db == "" {
		return nil, nil, usagef("--db is required")
	}
	var err error
	if a.opts.Format, err = sluice.ParseFormat(*format); err != nil {
		return nil, nil, usagef("%s", invalidMsg(err))
	}
	if a.compress, err = sluice.ParseCompression(*compress); err != nil {
		return nil, nil, usagef("%s", invalidMsg(err))
	}
	if *compress == "" {
		a.compress = compressionFromName(a.out + a.to)
	}
	a.opts.Tables = splitList(*tables)
	a.opts.Exclude = splitList(*exclude)
	if a.opts.SchemaOnly && a.opts.DataOnly {
		return nil, nil, usagef("--schema-only and --data-only exclude each other")
	}
	if a.opts.ChunkSize < 1 || a.opts.ChunkSize > dump.MaxChunkSize {
		return nil, nil, usagef("--chunk-size %d out of range (1..%d)", a.opts.ChunkSize, dump.MaxChunkSize)
	}
	if a.opts.BusyTimeout < 0 {
		return nil, nil, usagef("--busy-timeout must not be negative")
	}
	if a.opts.Readers < 0 || a.opts.Readers > dump.MaxReaders {
		return nil, nil, usagef("--readers %d out of range (1..%d)", a.opts.Readers, dump.MaxReaders)
	}
	if a.out != "" && a.to != "" {
		return nil, nil, usagef("-o and --to exclude each other")
	}
	if a.manifest && (a.out == "" || a.out == "-") && a.to == "" {
		return nil, nil, usagef("--manifest needs -o file (a --to object always gets one)")
	}
	if a.noSHA256 && a.wantsManifest() {
		return nil, nil, usagef("--no-sha256: a --to object and a --manifest record the output's SHA-256")
	}
	a.opts.NoDigests = !a.wantsManifest()
	switch a.progress {
	case "auto", "always", "never":
	default:
		return nil, nil, usagef("bad --progress %q (want auto, always or never)", a.progress)
	}
	return a, newLogger, nil
}

// invalidMsg strips the "invalid argument: " of a sluice.ErrInvalid error:
// a usage message says it already.
func invalidMsg(err error) string {
	return strings.TrimPrefix(err.Error(), sluice.ErrInvalid.Error()+": ")
}

// compressionFromName infers compression from a file or key suffix.
func compressionFromName(name string) sluice.Compression {
	switch {
	case strings.HasSuffix(name, ".gz"):
		return sluice.CompressGzip
	case strings.HasSuffix(name, ".zst"):
		return sluice.CompressZstd
	}
	return sluice.CompressNone
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runDump(ctx context.Context, e *env, args []string) error {
	a, newLogger, err := parseDumpArgs(e, args)
	if err != nil {
		return err
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	dbInfo, err := checkDatabaseFile(a.db)
	if err != nil {
		return err
	}

	// Open the destination before reading anything, so an unwritable path
	// or a malformed URL fails fast and cleanly.
	var out sink
	var parts func() int
	switch {
	case a.to != "":
		u, err := parseStoreURL(a.to)
		if err != nil {
			return usagef("--to: %v", err)
		}
		ss, err := openStoreSink(ctx, e, log, a.s3, u, a.opts.Format, a.compress)
		if err != nil {
			return err
		}
		out, parts = ss, ss.partsUploaded
	case a.out == "" || a.out == "-":
		if e.stdoutTTY && (a.compress != sluice.CompressNone || a.opts.Format == sluice.FormatCSV) {
			return usagef("refusing to write binary output to a terminal; use -o file or a pipe")
		}
		out = newWriterSink("stdout", e.stdout)
	default:
		if fi, err := os.Stat(a.out); err == nil && os.SameFile(fi, dbInfo) {
			return usagef("-o %s is the database itself", a.out)
		}
		fsink, err := openFileSink(a.out)
		if err != nil {
			return err
		}
		out = fsink
	}
	committed := false
	defer func() {
		if !committed {
			out.abort()
		}
	}()

	start := time.Now()
	src, err := dump.Open(ctx, a.db, a.opts, log)
	if err != nil {
		return err // the engine's message names the file and the cause
	}
	defer src.Close()
	plan := src.Plan()
	if ss, ok := out.(*storeSink); ok {
		if err := ss.start(plan.EstimatedBytes); err != nil {
			return err
		}
	}

	pipe, err := newPipeline(out, a.compress, a.wantsSHA256())
	if err != nil {
		return err
	}
	bar := newProgressBar(e, a.progress, plan, parts)
	cur, err := src.Dump(ctx, pipe, dump.Cursor{}, func(b *dump.Boundary) error {
		bar.update(b.Progress())
		return nil
	})
	if err != nil {
		pipe.stop()
		bar.abandon()
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; %s was not written", out)
		}
		return err
	}
	if err := pipe.finish(); err != nil {
		bar.abandon()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := out.commit(ctx); err != nil {
		bar.abandon()
		return err
	}
	committed = true
	bar.done(cur)
	if a.wantsManifest() {
		if err := writeDumpManifest(ctx, out, a, src, cur, pipe); err != nil {
			return err
		}
	}
	sum := pipe.sum() // "" with --no-sha256
	if sum != "" {
		sum = " sha256=" + sum
	}
	fmt.Fprintf(e.stderr, "sluice: dump complete: tables=%d rows=%d bytes=%d raw_bytes=%d%s seconds=%.2f output=%s\n",
		cur.TablesDone, cur.Rows, pipe.count.Load(), cur.Bytes, sum, time.Since(start).Seconds(), out)
	return nil
}

// checkDatabaseFile gives a clear message for the common mistakes before
// SQLite gets a chance to say "unable to open database file".
func checkDatabaseFile(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("database %s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("database %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("database %s is a directory", path)
	}
	return fi, nil
}
