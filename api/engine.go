package api

import (
	"context"
	"io"
	"log/slog"

	"github.com/sluice-dev/sluice/dump"
)

// EngineDumper is the Dumper backed by package dump: it opens a snapshot
// on a read-only connection of its own and streams it from the start.
func EngineDumper(logger *slog.Logger) Dumper {
	return DumperFunc(func(ctx context.Context, w io.Writer, dbPath string, opts dump.Options) error {
		src, err := dump.Open(ctx, dbPath, opts, logger)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = src.Dump(ctx, w, dump.Cursor{}, nil)
		return err
	})
}
