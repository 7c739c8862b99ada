package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/verify"
)

const verifySynopsis = `<file|-|s3://bucket/key|file:///dir/key> [--manifest m.json] [--db source.db]

Proves that a dump holds exactly the rows of the database it came from.
Per-table digests (each value's storage class and bytes, in key order) are
recomputed from the dump and compared with its manifest (by default
<dump>.manifest.json beside it) or, with --db, with a snapshot of a live
database — which also works for plain sqlite3 .dump output. A SQL dump is
restored into a scratch database first, under the same safety as
'sluice restore'. Prints one line per table and a verdict; exits 0 when
everything matches, 1 otherwise.`

// errMismatch is returned when verification ran and found a difference;
// the report has been printed.
var errMismatch = errors.New("verification failed")

type verifyArgs struct {
	input    string
	manifest string
	db       string
	format   string
	preserve bool
	progress string
	tmpDir   string
	s3       *s3Flags
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fl := newFlagSet(e, "verify", verifySynopsis)
	a := &verifyArgs{}
	fl.StringVar(&a.manifest, "manifest", "", "manifest to compare with (default: <dump>.manifest.json beside the dump)")
	fl.StringVar(&a.db, "db", "", "compare with a snapshot of this live database instead of a manifest")
	fl.StringVar(&a.format, "format", "", "format of the dump when there is no manifest: sql, csv, json, json-typed or ndjson (default: from the name, else sql)")
	fl.BoolVar(&a.preserve, "preserve-rowids", false, "with --db and no manifest: the dump kept implicit rowids")
	fl.StringVar(&a.progress, "progress", "auto", "progress bar on stderr: auto, always or never")
	fl.StringVar(&a.tmpDir, "tmp-dir", "", "directory for the scratch database (default: the system's)")
	a.s3 = registerS3Flags(fl)
	newLogger := logFlags(fl, "warn")
	var rest []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") || len(args) > 0 && args[0] == "-" {
		rest, args = args[:1], args[1:]
	}
	if err := parseFlags(e, fl, args); err != nil {
		return err
	}
	rest = append(rest, fl.Args()...)
	if len(rest) != 1 {
		return usagef("want exactly one dump (file, -, s3://bucket/key or file:///dir/key), got %d arguments", len(rest))
	}
	a.input = rest[0]
	switch a.progress {
	case "auto", "always", "never":
	default:
		return usagef("bad --progress %q (want auto, always or never)", a.progress)
	}
	if a.input == "-" && a.manifest == "" && a.db == "" {
		return usagef("reading stdin needs --manifest or --db")
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	return verifyDump(ctx, e, log, a)
}

// verifyDump runs one verification and prints its report.
func verifyDump(ctx context.Context, e *env, log *slog.Logger, a *verifyArgs) error {
	start := time.Now()
	in, err := openVerifyInput(ctx, e, log, a)
	if err != nil {
		return err
	}
	defer in.close()

	var m *verify.Manifest
	if a.manifest != "" || a.db == "" {
		if m, err = in.readManifest(ctx, a.manifest); err != nil {
			return err
		}
	}
	format := sluice.FormatSQL
	preserve := a.preserve
	switch {
	case m != nil:
		format, preserve = m.Format, m.Options.PreserveRowids
	case a.format != "":
		if format, err = sluice.ParseFormat(a.format); err != nil {
			return usagef("%s", invalidMsg(err))
		}
	default:
		format = formatFromName(a.input)
	}

	var want dump.Digests
	source := "manifest"
	if a.db != "" {
		if _, err := checkDatabaseFile(a.db); err != nil {
			return err
		}
		opts := dump.Options{Format: format, PreserveRowids: preserve}
		if m != nil {
			opts = m.DumpOptions()
		}
		if want, err = verify.FromDB(ctx, a.db, opts, log); err != nil {
			return err
		}
		source = a.db
	} else {
		want = m.Digests()
	}

	counted := &countingReader{r: in.r}
	r, closeDec, err := verify.Decompress(counted, compressionFromName(a.input))
	if err != nil {
		return fmt.Errorf("read dump %s: %w", a.input, err)
	}
	defer closeDec()
	stopBar := startByteBar(e, a.progress, in.size, "verify", counted)
	var firstKey string
	var inspect func(context.Context, string, dump.Digests)
	if a.db != "" {
		// With the source at hand, find the first differing row.
		inspect = func(ctx context.Context, scratch string, got dump.Digests) {
			rep := verify.Compare(want, got, false)
			if rep.OK() || rep.Mismatch.Table == "(schema)" {
				return
			}
			key, err := verify.FirstDifference(ctx, a.db, scratch, rep.Mismatch.Table)
			if err != nil {
				log.Warn("verify: look for the first differing row", "table", rep.Mismatch.Table, "err", err)
			}
			firstKey = key
		}
	}
	got, err := verify.FromDump(ctx, verify.Input{
		Inspect: inspect,
		R:       r, Format: format, PreserveRowids: preserve, TempDir: a.tmpDir,
		Restore: func(ctx context.Context, path string, r io.Reader) error {
			_, err := restoreInto(ctx, log, path, r, true)
			return err
		},
	}, log)
	stopBar()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		return fmt.Errorf("%s: %w", a.input, err)
	}
	rep := verify.Compare(want, got, verify.EmptyTablesOmitted(format))
	if rep.Mismatch != nil && firstKey != "" {
		rep.Mismatch.Key = firstKey
	}
	fmt.Fprintf(e.stdout, "verify %s (%s) against %s\n", a.input, format, source)
	if format == sluice.FormatCSV {
		fmt.Fprintln(e.stdout, "note: csv — storage classes read from the lexical form (quoted text, bare numbers, \\x blobs); see docs/verify.md")
	}
	rep.Print(e.stdout, string(format))
	fmt.Fprintf(e.stderr, "sluice: verify seconds=%.2f input_bytes=%d\n", time.Since(start).Seconds(), counted.n.Load())
	if !rep.OK() {
		return errMismatch
	}
	return nil
}

// formatFromName infers a dump's format from its name, sql by default.
func formatFromName(name string) sluice.Format {
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".zst")
	for _, f := range []sluice.Format{sluice.FormatNDJSON, sluice.FormatJSONTyped, sluice.FormatJSON, sluice.FormatCSV} {
		if strings.HasSuffix(base, "."+string(f)) {
			return f
		}
	}
	if strings.HasSuffix(base, ".zip") {
		return sluice.FormatCSV
	}
	return sluice.FormatSQL
}

// verifyInput is an opened dump: a file, stdin or a stored object.
type verifyInput struct {
	r     io.Reader
	size  int64
	close func()
	// manifest opens the manifest beside the dump.
	manifest func(ctx context.Context) (io.ReadCloser, error)
}

func openVerifyInput(ctx context.Context, e *env, log *slog.Logger, a *verifyArgs) (*verifyInput, error) {
	if a.input == "-" {
		return &verifyInput{r: e.stdin, size: -1, close: func() {}}, nil
	}
	if strings.Contains(a.input, "://") {
		u, err := parseStoreURL(a.input)
		if err != nil {
			return nil, usagef("%v", err)
		}
		store, err := openStore(ctx, e, log, a.s3, u)
		if err != nil {
			return nil, err
		}
		rc, info, err := store.Get(ctx, u.Key, 0, -1)
		if errors.Is(err, objstore.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", u)
		} else if err != nil {
			return nil, fmt.Errorf("get %s: %w", u, err)
		}
		return &verifyInput{r: rc, size: info.Size, close: func() { rc.Close() },
			manifest: func(ctx context.Context) (io.ReadCloser, error) {
				rc, _, err := store.Get(ctx, verify.ManifestKey(u.Key), 0, -1)
				if errors.Is(err, objstore.ErrNotExist) {
					return nil, fmt.Errorf("%s has no manifest (%s); give --manifest or --db", u, verify.ManifestKey(u.Key))
				}
				return rc, err
			}}, nil
	}
	f, err := os.Open(a.input)
	if err != nil {
		return nil, fmt.Errorf("open dump: %w", err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("dump %s is not a file", a.input)
	}
	return &verifyInput{r: f, size: fi.Size(), close: func() { f.Close() },
		manifest: func(context.Context) (io.ReadCloser, error) {
			mf, err := os.Open(a.input + verify.ManifestSuffix)
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s has no manifest (%s); give --manifest or --db", a.input, a.input+verify.ManifestSuffix)
			}
			return mf, err
		}}, nil
}

// readManifest reads the manifest named by path, or the one beside the
// dump when path is empty.
func (in *verifyInput) readManifest(ctx context.Context, path string) (*verify.Manifest, error) {
	var rc io.ReadCloser
	var err error
	if path != "" {
		rc, err = os.Open(path)
	} else {
		rc, err = in.manifest(ctx)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return verify.ReadManifest(rc)
}
