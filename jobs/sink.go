package jobs

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
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
