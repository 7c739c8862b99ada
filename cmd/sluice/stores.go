package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
	"github.com/sluice-dev/sluice/objstore/s3"
)

// openStore builds the store a URL names: the local directory store for
// file:// URLs, the S3 store (AWS_* variables and --s3-* flags) for s3://.
func openStore(ctx context.Context, e *env, log *slog.Logger, f *s3Flags, u storeURL) (objstore.Store, error) {
	switch u.Scheme {
	case "file":
		// The directory must exist: a typo should not create a tree.
		if fi, err := os.Stat(u.Root); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("file store directory %s does not exist", u.Root)
		}
		st, err := file.New(u.Root, file.Options{}, log)
		if err != nil {
			return nil, fmt.Errorf("file store %s: %w", u.Root, err)
		}
		return st, nil
	case "s3":
		st, err := s3.New(ctx, f.config(u.Bucket), log)
		if err != nil {
			return nil, fmt.Errorf("s3 store: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported store URL %s", u)
}

// storeSink streams a dump into a store through objstore's multipart
// Writer. It is opened (store built, destination checked) before the
// database is read, and the Writer is started once the plan's size
// estimate is known, since the part size depends on it.
type storeSink struct {
	u      storeURL
	store  objstore.Store
	log    *slog.Logger
	opts   objstore.WriterOptions
	ctx    context.Context
	cancel context.CancelFunc
	w      *objstore.Writer
}

func openStoreSink(ctx context.Context, e *env, log *slog.Logger, f *s3Flags, u storeURL, format sluice.Format, c sluice.Compression) (*storeSink, error) {
	store, err := openStore(ctx, e, log, f, u)
	if err != nil {
		return nil, err
	}
	// Fail before reading the database if the destination is taken or
	// unreachable (missing bucket, bad credentials, no server).
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch _, err := store.Head(hctx, u.Key); {
	case err == nil:
		return nil, fmt.Errorf("%s already exists; sluice never overwrites an object", u)
	case errors.Is(err, objstore.ErrNotExist):
		// Expected; but a missing bucket is also "not exist" on some
		// servers, which the first part upload will report.
	default:
		return nil, fmt.Errorf("check %s: %w", u, err)
	}
	sctx, scancel := context.WithCancel(ctx)
	return &storeSink{
		u: u, store: store, log: log, ctx: sctx, cancel: scancel,
		opts: objstore.WriterOptions{
			ContentType: sluice.ContentType(format, c),
			Metadata:    map[string]string{"sluice-format": string(format), "sluice-compression": string(c)},
		},
	}, nil
}

// start creates the Writer for an output of about expected bytes.
func (s *storeSink) start(expected int64) error {
	opts := s.opts
	opts.ExpectedSize = expected
	w, err := objstore.NewWriter(s.ctx, s.store, s.u.Key, opts, s.log)
	if err != nil {
		return fmt.Errorf("upload %s: %w", s.u, err)
	}
	s.w = w
	setUploadMemoryLimit(w.PartSize(), opts.Concurrency)
	return nil
}

// setUploadMemoryLimit sets a soft memory limit for an upload unless the
// user set GOMEMLIMIT. Go's collector lets the heap grow to about twice
// its live size by default. Where the Writer's (N+1) part buffers live on
// the Go heap (objstore's fallback where mmap is not available) they
// dominate that live size, and without a limit an upload's peak RSS is
// far above what it needs; where they are mapped outside the heap (unix)
// the limit is only a generous cap on the rest. The limit is soft: the
// collector works harder near it, it never fails an allocation. 24 MiB
// above the buffers was the lowest headroom that cost no time on the 1 GB
// benchmark database (16 MiB made the collector run 490 times for no
// lower RSS); see docs/benchmarks.md.
func setUploadMemoryLimit(partSize int64, concurrency int) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if concurrency <= 0 {
		concurrency = objstore.DefaultConcurrency
	}
	debug.SetMemoryLimit(int64(concurrency+1)*partSize + 24*objstore.MiB)
}

func (s *storeSink) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *storeSink) String() string { return s.u.String() }

// partsUploaded counts the parts stored so far, for the progress bar.
func (s *storeSink) partsUploaded() int {
	if s.w == nil {
		return 0
	}
	return s.w.PartsUploaded()
}

func (s *storeSink) commit(context.Context) error {
	defer s.cancel()
	if err := s.w.Close(); err != nil {
		if errors.Is(err, objstore.ErrExist) {
			return fmt.Errorf("%s already exists; sluice never overwrites an object", s.u)
		}
		return fmt.Errorf("upload %s: %w", s.u, err)
	}
	return nil
}

// sha256 is the stored object's SHA-256, which the Writer computed and
// recorded in its metadata; valid after commit.
func (s *storeSink) sha256() string { return s.w.SHA256() }

// abort removes the incomplete upload, with its own deadline since the
// command's context may be what was cancelled.
func (s *storeSink) abort() {
	defer s.cancel()
	if s.w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.w.Abort(ctx); err != nil {
		s.log.Warn("abort upload", "url", s.u.String(), "err", err)
	}
}
