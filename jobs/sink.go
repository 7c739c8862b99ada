package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"zombiezen.com/go/sqlite"
)

// framer compresses a job's dump output into the upload writer, one gzip
// member or zstd frame per checkpoint. endFrame finishes the open member
// or frame before every checkpoint, so no compressor state ever needs
// saving: concatenated gzip members and zstd frames are valid streams
// that decompress to the concatenated input. A frame starts lazily at
// the first byte after a checkpoint, so no empty frames are written.
type framer struct {
	w       io.Writer
	comp    sluice.Compression
	gz      *gzip.Writer
	zs      *zstd.Encoder
	inFrame bool
}

func newFramer(w io.Writer, comp sluice.Compression) *framer {
	return &framer{w: w, comp: comp}
}

// Write takes uncompressed dump output.
func (f *framer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	switch f.comp {
	case sluice.CompressGzip:
		if !f.inFrame {
			if f.gz == nil {
				f.gz = gzip.NewWriter(f.w)
			} else {
				f.gz.Reset(f.w)
			}
			f.inFrame = true
		}
		return f.gz.Write(p)
	case sluice.CompressZstd:
		if !f.inFrame {
			if f.zs == nil {
				enc, err := zstd.NewWriter(f.w, zstd.WithEncoderConcurrency(1))
				if err != nil {
					return 0, fmt.Errorf("zstd: %w", err)
				}
				f.zs = enc
			} else {
				f.zs.Reset(f.w)
			}
			f.inFrame = true
		}
		return f.zs.Write(p)
	}
	return f.w.Write(p)
}

// endFrame finishes the open gzip member or zstd frame, if any, so that
// everything written so far has reached the upload writer.
func (f *framer) endFrame() error {
	if !f.inFrame {
		return nil
	}
	f.inFrame = false
	var err error
	switch f.comp {
	case sluice.CompressGzip:
		err = f.gz.Close()
	case sluice.CompressZstd:
		err = f.zs.Close()
	}
	if err != nil {
		return fmt.Errorf("end %s frame: %w", f.comp, err)
	}
	return nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// isPermanent reports whether err should fail a job at once rather than
// be retried on a later tick: only store errors that may succeed when
// repeated (objstore.IsRetryable) are retried.
func isPermanent(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	return !objstore.IsRetryable(err)
}

// storeError marks an error that came from the upload: it is tagged where
// it crosses the boundary of the objstore.Writer (countWriter, and the
// tick's calls of the Writer), so that the dump engine can pass it
// through and the tick still tells it from the dump's own errors. The
// store decides whether it is transient (objstore.IsRetryable).
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// storeErr tags a non-nil error from the upload.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return storeError{err}
}

// countWriter counts the bytes written into the upload and tags its
// errors.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, storeErr(err)
}

func dumpOptions(spec sluice.JobSpec, defChunk int) dump.Options {
	chunk := spec.ChunkSize
	if chunk == 0 {
		chunk = defChunk
	}
	return dump.Options{Format: spec.Format, Tables: spec.Tables, Exclude: spec.Exclude, ChunkSize: chunk,
		PreserveRowids: spec.PreserveRowids, PlainCSV: spec.PlainCSV()}
}

// dumpErr classifies an error from the dump engine: a busy database is
// worth retrying, anything else (missing table, schema changed, corrupt
// file) fails the job.
func dumpErr(err error) error {
	code := sqlite.ErrCode(err).ToPrimary()
	if code == sqlite.ResultBusy || code == sqlite.ResultLocked {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return permanent(fmt.Errorf("dump: %w", err))
}
