package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore/file"
)

// sink is where a dump's final (compressed) bytes go.
type sink interface {
	io.Writer
	// commit makes the output durable and visible under its real name.
	commit(ctx context.Context) error
	// abort discards whatever was written; it is safe after commit fails.
	abort()
	// String names the destination for messages.
	String() string
}

// fileSink writes a regular file atomically: the bytes go to <path>.tmp,
// which is fsynced and renamed over <path> on commit, so a failed dump
// never leaves a half file under the real name. Special files such as
// /dev/null or a FIFO are written in place.
type fileSink struct {
	path   string // the real name
	tmp    string // "" when writing in place
	f      *os.File
	bw     *bufio.Writer
	closed bool
}

// openFileSink checks that path can be written and opens the temporary
// file; it is called before the database is read, so an unwritable path
// fails fast.
func openFileSink(path string) (*fileSink, error) {
	if path == "" {
		return nil, usagef("empty output path")
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("output %s is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		// A device or FIFO: there is no half file to protect against.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open output: %w", err)
		}
		return &fileSink{path: path, f: f, bw: bufio.NewWriterSize(f, 256<<10)}, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("output %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if di, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("output directory %s: %w", dir, err)
	} else if !di.IsDir() {
		return nil, fmt.Errorf("output directory %s is not a directory", dir)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot write output %s: %w", path, err)
	}
	return &fileSink{path: path, tmp: tmp, f: f, bw: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (s *fileSink) Write(p []byte) (int, error) { return s.bw.Write(p) }

func (s *fileSink) String() string { return s.path }

func (s *fileSink) commit(context.Context) error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.tmp == "" {
		s.closed = true
		return s.f.Close()
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.tmp, err)
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.tmp, err)
	}
	if err := os.Rename(s.tmp, s.path); err != nil {
		return fmt.Errorf("rename %s: %w", s.tmp, err)
	}
	s.tmp = ""
	return syncDir(filepath.Dir(s.path))
}

func (s *fileSink) abort() {
	if !s.closed {
		s.f.Close()
		s.closed = true
	}
	if s.tmp != "" {
		os.Remove(s.tmp)
	}
}

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	if err := (file.OS{}).SyncDir(dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// writerSink writes to an already open stream (stdout).
type writerSink struct {
	name string
	bw   *bufio.Writer
}

func newWriterSink(name string, w io.Writer) *writerSink {
	return &writerSink{name: name, bw: bufio.NewWriterSize(w, 256<<10)}
}

func (s *writerSink) Write(p []byte) (int, error)  { return s.bw.Write(p) }
func (s *writerSink) commit(context.Context) error { return s.bw.Flush() }
func (s *writerSink) abort()                       {}
func (s *writerSink) String() string               { return s.name }

// pipeline carries the engine's uncompressed stream through compression
// into the sink, hashing and counting the final bytes on the way. The
// compression, hashing and sink writes run on a second goroutine (see
// asyncWriter), so they overlap with reading and formatting.
type pipeline struct {
	sink  sink
	hash  hash.Hash
	count atomic.Int64 // final bytes passed to the sink
	comp  io.WriteCloser
	async *asyncWriter
}

// newPipeline builds the stages for compression c in front of s, hashing
// the final bytes if hash is set (a selfHashing sink hashes them itself).
func newPipeline(s sink, c sluice.Compression, hash bool) (*pipeline, error) {
	p := &pipeline{sink: s}
	if _, ok := s.(selfHashing); !ok && hash {
		p.hash = sha256.New()
	}
	final := io.Writer(finalWriter{p})
	var stage io.Writer = final
	switch c {
	case sluice.CompressGzip:
		gz, err := gzip.NewWriterLevel(final, gzip.DefaultCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		p.comp, stage = gz, gz
	case sluice.CompressZstd:
		zw, err := zstd.NewWriter(final, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		p.comp, stage = zw, zw
	}
	p.async = newAsyncWriter(stage, 4, 512<<10)
	return p, nil
}

// finalWriter hashes and counts the bytes it passes to the sink.
type finalWriter struct{ p *pipeline }

func (f finalWriter) Write(b []byte) (int, error) {
	n, err := f.p.sink.Write(b)
	if f.p.hash != nil {
		f.p.hash.Write(b[:n])
	}
	f.p.count.Add(int64(n))
	return n, err
}

// Write takes the engine's uncompressed bytes.
func (p *pipeline) Write(b []byte) (int, error) { return p.async.Write(b) }

// finish drains the stages and flushes the compressor; the sink is not
// committed (the caller decides).
func (p *pipeline) finish() error {
	if err := p.async.Close(); err != nil {
		return err
	}
	if p.comp != nil {
		if err := p.comp.Close(); err != nil {
			return fmt.Errorf("compress: %w", err)
		}
	}
	return nil
}

// stop abandons the pipeline after a failure, releasing its goroutine.
func (p *pipeline) stop() {
	p.async.Close()
	if p.comp != nil {
		if zw, ok := p.comp.(*zstd.Encoder); ok {
			zw.Close()
		}
	}
}

// sum is the hex SHA-256 of the final bytes, valid after finish, and
// only if the pipeline was built to hash them. For a selfHashing sink it
// is the sink's, valid after commit.
func (p *pipeline) sum() string {
	if sh, ok := p.sink.(selfHashing); ok {
		return sh.sha256()
	}
	if p.hash == nil {
		return ""
	}
	return hex.EncodeToString(p.hash.Sum(nil))
}

// selfHashing is a sink that computes the SHA-256 of what it stores
// itself (the multipart Writer does, for the object's metadata), so the
// pipeline does not hash the same bytes twice.
type selfHashing interface {
	sha256() string
}

// asyncWriter hands writes to a goroutine through a fixed set of reused
// buffers, so the writer's caller and the downstream work (compression,
// hashing, I/O) run on different cores with bounded memory:
// n buffers of size bytes.
type asyncWriter struct {
	dst    io.Writer
	free   chan []byte
	full   chan []byte
	buf    []byte
	done   chan struct{}
	err    atomic.Pointer[error]
	closed bool
}

func newAsyncWriter(dst io.Writer, n, size int) *asyncWriter {
	a := &asyncWriter{
		dst:  dst,
		free: make(chan []byte, n),
		full: make(chan []byte, n),
		done: make(chan struct{}),
	}
	for i := 0; i < n; i++ {
		a.free <- make([]byte, 0, size)
	}
	a.buf = <-a.free
	go a.loop()
	return a
}

func (a *asyncWriter) loop() {
	defer close(a.done)
	for b := range a.full {
		if a.err.Load() == nil {
			if _, err := a.dst.Write(b); err != nil {
				a.err.Store(&err)
			}
		}
		a.free <- b[:0]
	}
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.closed {
		return 0, errors.New("write after close")
	}
	n := 0
	for len(p) > 0 {
		if e := a.err.Load(); e != nil {
			return n, *e
		}
		k := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf = a.buf[:len(a.buf)+k]
		p = p[k:]
		n += k
		if len(a.buf) == cap(a.buf) {
			a.full <- a.buf
			a.buf = <-a.free
		}
	}
	return n, nil
}

// Close hands over the last buffer, waits for the goroutine and returns
// the first downstream error. It is idempotent.
func (a *asyncWriter) Close() error {
	if !a.closed {
		a.closed = true
		if len(a.buf) > 0 {
			a.full <- a.buf
		}
		close(a.full)
		<-a.done
	}
	if e := a.err.Load(); e != nil {
		return *e
	}
	return nil
}
