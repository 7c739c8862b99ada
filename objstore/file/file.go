// Package file is the local-directory objstore.Store: the embedded default
// and the reference implementation of the S3 semantics sluice relies on.
//
// Layout under the root directory:
//
//	<root>/<key>                          object bytes
//	<root>/.sluice/meta/<key>.json        object metadata (ETag, type, user metadata)
//	<root>/.sluice/uploads/<id>/upload.json  an incomplete multipart upload
//	<root>/.sluice/uploads/<id>/<n>.<md5>    its part n, named with its MD5
//	<root>/.sluice/tmp/                   files being written
//
// Every write goes to .sluice/tmp first, is fsynced, then renamed (or, with
// NoOverwrite, hard-linked, which fails atomically if the name exists) into
// place, and the directory is fsynced. Keys are validated before any file
// is touched.
package file

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// Options configure a Store.
type Options struct {
	// Limits are the multipart limits enforced (zero fields: S3's). Tests
	// shrink MinPartSize and MaxParts.
	Limits objstore.Limits
	// SigningKey signs the URLs of PresignGet; BaseURL is where sluice
	// serves them (for example "http://127.0.0.1:8080").
	SigningKey []byte
	BaseURL    string
	// MinFreeBytes is the free-disk floor: a write that would leave less
	// free space on the store's filesystem fails (ErrLowDisk) instead of
	// filling the disk. 0 means no floor.
	MinFreeBytes int64
	// FS is the filesystem seam; nil means OS{}.
	FS FS
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrLowDisk is returned by a write that would take the free space on
// the store's filesystem below Options.MinFreeBytes.
var ErrLowDisk = errors.New("free disk space below the floor")

// Store is a local-directory object store.
type Store struct {
	root   string
	opts   Options
	fs     FS
	limits objstore.Limits
	log    *slog.Logger

	// mu serialises commits (object + metadata) against reads of the pair.
	mu sync.RWMutex
	// layouts caches each upload's in-place layout (*layout by upload id).
	layouts sync.Map
	// copyBufs holds the buffers bodies are copied through (copyBody).
	copyBufs sync.Pool
}

var _ objstore.Syncer = (*Store)(nil)

var _ objstore.Store = (*Store)(nil)
var _ objstore.Limiter = (*Store)(nil)

// New opens (creating if needed) a store rooted at dir.
func New(dir string, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		return nil, errors.New("file: nil logger")
	}
	if dir == "" {
		return nil, errors.New("file: empty root directory")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file: root %s: %w", dir, err)
	}
	s := &Store{root: root, opts: opts, fs: opts.FS, log: logger.With("store", "file", "root", root)}
	if s.fs == nil {
		s.fs = OS{}
	}
	l := objstore.DefaultLimits()
	if opts.Limits.MinPartSize > 0 {
		l.MinPartSize = opts.Limits.MinPartSize
	}
	if opts.Limits.MaxPartSize > 0 {
		l.MaxPartSize = opts.Limits.MaxPartSize
	}
	if opts.Limits.MaxParts > 0 {
		l.MaxParts = opts.Limits.MaxParts
	}
	s.limits = l
	for _, d := range []string{s.metaDir(), s.uploadsDir(), s.tmpDir()} {
		if err := s.fs.MkdirAll(d, 0o755); err != nil {
			return nil, s.wrap("open", dir, err)
		}
	}
	s.sweepTmp()
	return s, nil
}

// staleTmp is the age after which a temporary file is a crash leftover:
// files being written are modified continuously.
const staleTmp = 24 * time.Hour

// sweepTmp removes temporary files a crashed process left behind.
func (s *Store) sweepTmp() {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || s.now().Sub(fi.ModTime()) < staleTmp {
			continue
		}
		if err := s.fs.Remove(filepath.Join(s.tmpDir(), e.Name())); err == nil {
			s.log.Info("removed a stale temporary file", "name", e.Name(), "modified", fi.ModTime())
		}
	}
}

// Limits implements objstore.Limiter.
func (s *Store) Limits() objstore.Limits { return s.limits }

// Root returns the absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *Store) metaDir() string    { return filepath.Join(s.root, reserved, "meta") }
func (s *Store) uploadsDir() string { return filepath.Join(s.root, reserved, "uploads") }
func (s *Store) tmpDir() string     { return filepath.Join(s.root, reserved, "tmp") }
func (s *Store) objPath(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}
func (s *Store) metaPath(key string) string {
	return filepath.Join(s.metaDir(), filepath.FromSlash(key)+".json")
}

// wrap names the operation and, for a full disk, says so plainly.
func (s *Store) wrap(op, key string, err error) error {
	if errors.Is(err, ErrLowDisk) {
		return fmt.Errorf("file: %s %s: %w", op, key, err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("file: %s %s: disk full under %s: %w", op, key, s.root, err)
	}
	if errors.Is(err, io.ErrShortWrite) {
		return fmt.Errorf("file: %s %s: short write under %s (disk full?): %w", op, key, s.root, err)
	}
	return fmt.Errorf("file: %s %s: %w", op, key, err)
}

// meta is the sidecar stored for each object.
type meta struct {
	ETag        string            `json:"etag"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// copyBufSize is the chunk a body is copied in. io.Copy's 32 KiB made
// an 8 MiB part 256 writes, each a system call; 128 KiB makes it 64, and
// a chunk still stays in the core's cache between the copy, the write
// and the checksum (1 MiB chunks made --to file:// slower).
// docs/benchmarks.md, session 8.
const copyBufSize = 128 << 10

// copyBody copies src to dst in copyBufSize chunks, stopping when ctx
// ends.
func (s *Store) copyBody(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	bp, _ := s.copyBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBufSize)
		bp = &b
	}
	defer s.copyBufs.Put(bp)
	// The wrappers hide ReadFrom and WriteTo, which would copy in
	// their own, smaller chunks (an *os.File's ReadFrom falls back to
	// io.Copy).
	return io.CopyBuffer(struct{ io.Writer }{dst}, ctxReader{ctx, src}, *bp)
}

// writeTemp copies r into a new temporary file, hashing it with h (if
// non-nil), and fsyncs it. With want >= 0 the body must be exactly want
// bytes. The caller renames or removes the returned file.
func (s *Store) writeTemp(ctx context.Context, r io.Reader, want int64, h hash.Hash) (string, int64, error) {
	f, err := s.fs.CreateTemp(s.tmpDir(), "w-*")
	if err != nil {
		return "", 0, err
	}
	name := f.Name()
	fail := func(err error) (string, int64, error) {
		_ = f.Close()
		_ = s.fs.Remove(name)
		return "", 0, err
	}
	var w io.Writer = f
	if s.opts.MinFreeBytes > 0 {
		if err := s.checkFloor(max(want, 0)); err != nil {
			return fail(err)
		}
		w = &floorWriter{w: f, s: s}
	}
	if h != nil {
		w = io.MultiWriter(w, h)
	}
	src := r
	if want >= 0 {
		src = io.LimitReader(src, want+1)
	}
	n, err := s.copyBody(ctx, w, src)
	if err != nil {
		return fail(err)
	}
	if want >= 0 && n != want {
		return fail(fmt.Errorf("body has %d bytes, want %d", n, want))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = s.fs.Remove(name)
		return "", 0, err
	}
	return name, n, nil
}

// floorCheckEvery is how many bytes a write makes between checks of the
// free-disk floor (a statfs each).
const floorCheckEvery = 8 << 20

// checkFloor fails with ErrLowDisk when writing need more bytes would
// leave less than Options.MinFreeBytes free.
func (s *Store) checkFloor(need int64) error {
	free, err := s.fs.Free(s.root)
	if err != nil {
		return fmt.Errorf("free disk space: %w", err)
	}
	if free >= 0 && free-need < s.opts.MinFreeBytes {
		return fmt.Errorf("%w: %d bytes free under %s, %d more needed, floor %d bytes (limits.minFreeBytes)",
			ErrLowDisk, free, s.root, need, s.opts.MinFreeBytes)
	}
	return nil
}

// floorWriter checks the free-disk floor as a write of unknown length
// proceeds.
type floorWriter struct {
	w       io.Writer
	s       *Store
	pending int64 // bytes written since the last check
}

func (f *floorWriter) Write(p []byte) (int, error) {
	if f.pending += int64(len(p)); f.pending >= floorCheckEvery {
		if err := f.s.checkFloor(f.pending); err != nil {
			return 0, err
		}
		f.pending = 0
	}
	return f.w.Write(p)
}

// commit moves the finished temporary file tmp to key, with its metadata.
// With noOverwrite it hard-links, which fails if the key exists.
func (s *Store) commit(key, tmp string, m meta, noOverwrite bool) error {
	defer func() { _ = s.fs.Remove(tmp) }()
	dst := s.objPath(key)
	if err := s.mkParents(dst); err != nil {
		return err
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	mtmp, _, err := s.writeTemp(context.Background(), bytes.NewReader(mb), int64(len(mb)), nil)
	if err != nil {
		return err
	}
	defer func() { _ = s.fs.Remove(mtmp) }()
	mdst := s.metaPath(key)
	if err := s.mkParents(mdst); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return fmt.Errorf("key names a directory of other keys: %w", objstore.ErrExist)
	}
	if noOverwrite {
		if err := s.fs.Link(tmp, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("object exists: %w", objstore.ErrExist)
			}
			return err
		}
	} else if err := s.fs.Rename(tmp, dst); err != nil {
		return err
	}
	if err := s.fs.Rename(mtmp, mdst); err != nil {
		return err
	}
	if err := s.fs.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	return s.fs.SyncDir(filepath.Dir(mdst))
}

// mkParents creates the directories above p, refusing to pass through a
// file (a key that is a prefix directory of another).
func (s *Store) mkParents(p string) error {
	if err := s.fs.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("a parent of the key is an object: %w", objstore.ErrExist)
		}
		return err
	}
	return nil
}

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return objstore.ObjectInfo{}, err
	}
	h := md5.New()
	tmp, _, err := s.writeTemp(ctx, r, size, h)
	if err != nil {
		return objstore.ObjectInfo{}, s.wrap("put", key, err)
	}
	m := meta{ETag: hex.EncodeToString(h.Sum(nil)), ContentType: opts.ContentType, Metadata: lowerKeys(opts.Metadata)}
	if err := s.commit(key, tmp, m, opts.NoOverwrite); err != nil {
		return objstore.ObjectInfo{}, s.wrap("put", key, err)
	}
	return s.Head(ctx, key)
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// open opens an object for reading, with its info.
func (s *Store) open(key string) (*os.File, objstore.ObjectInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, err := os.Open(s.objPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, objstore.ObjectInfo{}, fmt.Errorf("file: %s: %w", key, objstore.ErrNotExist)
		}
		return nil, objstore.ObjectInfo{}, s.wrap("open", key, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		f.Close()
		return nil, objstore.ObjectInfo{}, fmt.Errorf("file: %s: %w", key, objstore.ErrNotExist)
	}
	if err != nil {
		f.Close()
		return nil, objstore.ObjectInfo{}, s.wrap("stat", key, err)
	}
	info := objstore.ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime().UTC()}
	if b, err := os.ReadFile(s.metaPath(key)); err == nil {
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			f.Close()
			return nil, objstore.ObjectInfo{}, s.wrap("read metadata", key, err)
		}
		info.ETag, info.ContentType, info.Metadata = m.ETag, m.ContentType, m.Metadata
	}
	return f, info, nil
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, objstore.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, objstore.ObjectInfo{}, err
	}
	f, info, err := s.open(key)
	if err != nil {
		return nil, info, err
	}
	if offset < 0 || offset > info.Size || (offset == info.Size && info.Size > 0) {
		f.Close()
		return nil, info, fmt.Errorf("file: get %s: range start %d outside object of %d bytes", key, offset, info.Size)
	}
	n := info.Size - offset
	if length >= 0 && length < n {
		n = length
	}
	return readCloser{ctxReader{ctx, io.NewSectionReader(f, offset, n)}, f}, info, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Head implements objstore.Store.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return objstore.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, err
	}
	f, info, err := s.open(key)
	if err != nil {
		return info, err
	}
	f.Close()
	return info, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.objPath(key)
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return nil // a "directory" of other keys is no object
	}
	for _, f := range []string{p, s.metaPath(key)} {
		if err := s.fs.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return s.wrap("delete", key, err)
		}
	}
	s.prune(filepath.Dir(p), s.root)
	s.prune(filepath.Dir(s.metaPath(key)), s.metaDir())
	return nil
}

// prune removes empty directories from dir up to (not including) top, as
// S3 has no directories to leave behind.
func (s *Store) prune(dir, top string) {
	for dir != top && strings.HasPrefix(dir, top) {
		if err := os.Remove(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List implements objstore.Store: every object whose key starts with
// prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = s.objPath(prefix[:i])
	}
	var out []objstore.ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == reserved || (key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := s.Head(ctx, key)
		if errors.Is(err, objstore.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, s.wrap("list", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
