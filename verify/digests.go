package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

// Restorer loads a SQL dump into a new database file at path. The
// wiring passes the function `sluice restore` uses, so verification runs
// under the same untrusted-dump safety and at the same speed.
type Restorer func(ctx context.Context, path string, r io.Reader) error

// FromDB digests one snapshot of a database, with opts selecting the
// plan (format, tables, rowids) as the dump did.
func FromDB(ctx context.Context, path string, opts dump.Options, log *slog.Logger) (dump.Digests, error) {
	opts.DigestOnly = true
	opts.ChunkSize = 0
	src, err := dump.Open(ctx, path, opts, log)
	if err != nil {
		return dump.Digests{}, err
	}
	defer src.Close()
	cur, err := src.Dump(ctx, io.Discard, dump.Cursor{}, nil)
	if err != nil {
		return dump.Digests{}, err
	}
	d, ok := src.Digests(cur)
	if !ok {
		return dump.Digests{}, fmt.Errorf("verify: digest %s: no digests", path)
	}
	return d, nil
}

// Input is a dump to digest.
type Input struct {
	R              io.Reader // the dump's decompressed bytes
	Format         sluice.Format
	PreserveRowids bool     // the dump kept implicit rowids (sql: they are columns of the restored tables)
	Restore        Restorer // sql only
	// PlainCSVTable, for the csv format, names the one table of a plain
	// CSV document (a csv dump of one table); empty means a zip.
	PlainCSVTable string
	TempDir       string // where the scratch database or spooled zip goes; "" is os.TempDir()
	// Inspect, if set, is called for a SQL dump with the scratch database
	// and its digests before the scratch database is removed (the CLI
	// looks for the first differing row there).
	Inspect func(ctx context.Context, scratch string, got dump.Digests)
}

// EmptyTablesOmitted reports whether a format leaves empty tables'
// columns out of the dump (ndjson writes no line, json an empty array),
// so that Compare must take an absent table as empty.
func EmptyTablesOmitted(f sluice.Format) bool {
	return f == sluice.FormatNDJSON || f == sluice.FormatJSON
}

// FromDump digests a dump: a SQL dump is restored into a scratch
// database, which is then digested in the engine's key order; csv, json
// and ndjson are parsed into typed values. The schema digest is empty for
// the formats that carry no schema.
func FromDump(ctx context.Context, in Input, log *slog.Logger) (dump.Digests, error) {
	switch in.Format {
	case sluice.FormatSQL:
		return fromSQL(ctx, in, log)
	case sluice.FormatJSON:
		return fromKeyedJSON(in.R)
	case sluice.FormatJSONTyped:
		return fromJSON(in.R)
	case sluice.FormatNDJSON:
		return fromNDJSON(in.R)
	case sluice.FormatCSV:
		if in.PlainCSVTable != "" {
			td, err := csvDocument(in.R, in.PlainCSVTable, dump.NewTableHasher())
			return dump.Digests{Tables: []dump.TableDigest{td}}, err
		}
		return fromCSV(ctx, in)
	}
	return dump.Digests{}, fmt.Errorf("verify: %w: unknown format %q", sluice.ErrInvalid, in.Format)
}

func fromSQL(ctx context.Context, in Input, log *slog.Logger) (dump.Digests, error) {
	if in.Restore == nil {
		return dump.Digests{}, fmt.Errorf("verify: no restorer for a SQL dump")
	}
	dir, err := os.MkdirTemp(in.TempDir, scratchPrefix)
	if err != nil {
		return dump.Digests{}, fmt.Errorf("verify: scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "scratch.db")
	if err := in.Restore(ctx, db, in.R); err != nil {
		return dump.Digests{}, fmt.Errorf("verify: restore into a scratch database: %w", err)
	}
	d, err := FromDB(ctx, db, dump.Options{Format: sluice.FormatSQL, PreserveRowids: in.PreserveRowids}, log)
	if err == nil && in.Inspect != nil {
		in.Inspect(ctx, db, d)
	}
	return d, err
}
