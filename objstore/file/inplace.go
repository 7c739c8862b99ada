package file

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/objstore"
)

// The in-place layout of an upload (docs/storage.md, "The file store").
// Every part of a streaming upload but the last has one size P, so part k
// lives at offset (k−1)×P of one file, "data", and Complete turns that
// file into the object without copying it. A small sidecar, "parts.jsonl",
// records each stored part (number, size, checksum, where it lives); its
// last record per number wins. A part that does not fit the layout
// (another size than P, or any part before P is known) is a file of its
// own, as "<number>.<md5 hex>". A part written in place is checksummed
// with CRC32C, which the CPU computes at memory speed, unless its writer
// sent a Content-MD5 to check it against (MD5 cost the job path a sixth
// of its CPU; docs/benchmarks.md). Parts are not fsynced one by one: SyncUpload
// (objstore.Syncer), which the Writer calls before every checkpoint,
// fdatasyncs the data file and fsyncs the sidecar.
const (
	dataFile    = "data"
	sidecarFile = "parts.jsonl"
)

// partRecord is one line of the sidecar.
type partRecord struct {
	Number int    `json:"n"`
	Size   int64  `json:"size"`             // -1: the part is gone (being replaced)
	MD5    string `json:"md5,omitempty"`    // hex
	CRC32C string `json:"crc32c,omitempty"` // hex; in-place parts without a Content-MD5
	InFile bool   `json:"inFile,omitempty"`
	// PartSize, on a line of its own (Number 0), fixes P.
	PartSize int64 `json:"partSize,omitempty"`
}

// sum returns the part's checksum as raw bytes: its MD5, or its CRC32C.
func (r partRecord) sum() []byte {
	h := r.MD5
	if h == "" {
		h = r.CRC32C
	}
	b, _ := hex.DecodeString(h)
	return b
}

// part describes the recorded part as the store reports it: its ETag is
// the checksum's hex, its Checksum the same bytes in base64.
func (r partRecord) part() objstore.Part {
	sum := r.sum()
	return objstore.Part{Number: r.Number, Size: r.Size, ETag: hex.EncodeToString(sum), Checksum: base64.StdEncoding.EncodeToString(sum)}
}

// layout is the in-memory view of one upload's sidecar, loaded on first
// use in this process. Its mutex serialises the sidecar's appends.
type layout struct {
	mu       sync.Mutex
	loaded   bool
	partSize int64
	parts    map[int]partRecord
}

// records returns the part size and the sidecar records of parts, in
// their order, read under the layout's lock.
func (l *layout) records(parts []objstore.Part) (int64, []partRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs := make([]partRecord, len(parts))
	for i, part := range parts {
		recs[i] = l.parts[part.Number]
	}
	return l.partSize, recs
}

func (s *Store) layoutOf(id string) *layout {
	l, _ := s.layouts.LoadOrStore(id, &layout{})
	return l.(*layout)
}

// load reads the sidecar (and the part size the upload was created with),
// once. The caller holds l.mu.
func (l *layout) load(dir string, created int64) error {
	if l.loaded {
		return nil
	}
	l.parts, l.partSize = map[int]partRecord{}, created
	f, err := os.Open(filepath.Join(dir, sidecarFile))
	if errors.Is(err, fs.ErrNotExist) {
		// No part yet, or an upload an older build wrote, part by part.
		l.loaded = true
		return l.loadPartFiles(dir)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r partRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a line torn by a crash: its part is uploaded again
		}
		switch {
		case r.Number == 0 && r.PartSize > 0:
			l.partSize = r.PartSize
		case r.Number > 0 && r.Size < 0:
			delete(l.parts, r.Number)
		case r.Number > 0:
			l.parts[r.Number] = r
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	l.loaded = true
	return nil
}

// loadPartFiles records the parts stored as files of their own.
func (l *layout) loadPartFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		num, etag, ok := strings.Cut(e.Name(), ".")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || len(etag) != 32 {
			continue
		}
		if fi, err := e.Info(); err == nil {
			l.parts[n] = partRecord{Number: n, Size: fi.Size(), MD5: etag, InFile: true}
		}
	}
	return nil
}

// appendRecord adds a line to the sidecar. The caller holds l.mu.
func (s *Store) appendRecord(dir string, r partRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := s.fs.OpenAppend(filepath.Join(dir, sidecarFile))
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// storePart writes part number of the upload from r (size bytes): in
// place when it fits the layout, else as a file of its own. want is the
// part's expected base64 MD5, or "" to skip the check.
func (s *Store) storePart(ctx context.Context, op, key, id string, u upload, number int, r io.Reader, size int64, want string) (objstore.Part, error) {
	dir := s.uploadDir(id)
	l := s.layoutOf(id)
	l.mu.Lock()
	if err := l.load(dir, u.PartSize); err != nil {
		l.mu.Unlock()
		return objstore.Part{}, s.wrap(op, key, err)
	}
	if l.partSize == 0 && size >= s.limits.MinPartSize {
		// No size given at create: the first full-size part fixes it.
		if err := s.appendRecord(dir, partRecord{PartSize: size}); err != nil {
			l.mu.Unlock()
			return objstore.Part{}, s.gone(op, key, err)
		}
		l.partSize = size
	}
	p := l.partSize
	inPlace := p > 0 && size > 0 && size <= p
	if _, had := l.parts[number]; had {
		// The old part is gone from the moment its bytes may change.
		if err := s.appendRecord(dir, partRecord{Number: number, Size: -1}); err != nil {
			l.mu.Unlock()
			return objstore.Part{}, s.gone(op, key, err)
		}
		delete(l.parts, number)
	}
	l.mu.Unlock()

	rec := partRecord{Number: number, Size: size, InFile: !inPlace}
	var sum []byte
	var err error
	if inPlace {
		h := hash.Hash(md5.New())
		if want == "" {
			h = crc32.New(castagnoli)
		}
		sum, err = s.writeAt(ctx, filepath.Join(dir, dataFile), int64(number-1)*p, r, size, h)
	} else {
		sum, err = s.writePartFile(ctx, dir, number, r, size)
	}
	if err != nil {
		return objstore.Part{}, s.gone(op, key, err)
	}
	if want != "" {
		if w, derr := base64.StdEncoding.DecodeString(want); derr != nil || !bytes.Equal(w, sum) {
			return objstore.Part{}, fmt.Errorf("file: %s %s: %w", op, key, objstore.ErrBadDigest)
		}
	}
	if len(sum) == md5.Size {
		rec.MD5 = hex.EncodeToString(sum)
	} else {
		rec.CRC32C = hex.EncodeToString(sum)
	}
	l.mu.Lock()
	err = s.appendRecord(dir, rec)
	if err == nil {
		l.parts[number] = rec
	}
	l.mu.Unlock()
	if err != nil {
		return objstore.Part{}, s.gone(op, key, err)
	}
	return rec.part(), nil
}

// gone reports a write into an upload directory that was removed
// meanwhile (the upload was aborted or completed) as ErrNotExist.
func (s *Store) gone(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file: %s %s: upload aborted: %w", op, key, objstore.ErrNotExist)
	}
	return s.wrap(op, key, err)
}

// castagnoli is the CRC32C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeAt writes size bytes from r at off of the data file, preallocating
// the range, and returns their checksum under h. It does not sync (see
// SyncUpload).
func (s *Store) writeAt(ctx context.Context, path string, off int64, r io.Reader, size int64, h hash.Hash) ([]byte, error) {
	if s.opts.MinFreeBytes > 0 {
		if err := s.checkFloor(size); err != nil {
			return nil, err
		}
	}
	f, err := s.fs.OpenData(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Allocate(off, size); err != nil {
		return nil, err
	}
	n, err := s.copyBody(ctx, io.MultiWriter(io.NewOffsetWriter(f, off), h), io.LimitReader(r, size+1))
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("body has %d bytes, want %d", n, size)
	}
	return h.Sum(nil), f.Close()
}

// writePartFile stores a part that does not fit the layout as a file of
// its own, fsynced (such parts are rare: the last part of an upload, or
// parts of uploads written by other clients).
func (s *Store) writePartFile(ctx context.Context, dir string, number int, r io.Reader, size int64) ([]byte, error) {
	h := md5.New()
	tmp, _, err := s.writeTemp(ctx, r, size, h)
	if err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	if err := s.fs.Rename(tmp, filepath.Join(dir, partFileName(number, sum))); err != nil {
		_ = s.fs.Remove(tmp)
		return nil, err
	}
	return sum, s.fs.SyncDir(dir)
}

func partFileName(number int, sum []byte) string {
	return fmt.Sprintf("%05d.%s", number, hex.EncodeToString(sum))
}

// partList returns the upload's stored parts, ordered by number.
func (s *Store) partList(key, id string, u upload) ([]objstore.Part, *layout, error) {
	l := s.layoutOf(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.load(s.uploadDir(id), u.PartSize); err != nil {
		return nil, nil, s.wrap("list parts", key, err)
	}
	out := make([]objstore.Part, 0, len(l.parts))
	for _, r := range l.parts {
		out = append(out, r.part())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, l, nil
}

// SyncUpload implements objstore.Syncer: it makes the parts stored so far
// durable, with one fdatasync of the data file and of the sidecar and one
// fsync of the directory. The data file's synced pages then leave the
// page cache: nothing reads them before the object is downloaded, and an
// export, often larger than its database, would otherwise push that
// database's pages, which queries read, out of memory. (The sidecar keeps
// its pages, since every part appends to its last one.)
func (s *Store) SyncUpload(ctx context.Context, key, uploadID string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.loadUpload(key, uploadID); err != nil {
		return err
	}
	// The three syncs are independent (each file's bytes, the directory's
	// names), so they run at once: the filesystem can commit them
	// together, and a checkpoint, which waits for this, is shorter.
	// A file not written yet has nothing to sync; a directory gone means
	// the upload is.
	dir := s.uploadDir(uploadID)
	dataSync := func(name string) error {
		if err := s.fs.DataSync(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	syncs := []func() error{
		func() error {
			if err := dataSync(dataFile); err != nil {
				return err
			}
			s.fs.DropCache(filepath.Join(dir, dataFile))
			return nil
		},
		func() error { return dataSync(sidecarFile) },
		func() error { return s.fs.SyncDir(dir) },
	}
	errs := make(chan error, len(syncs))
	for _, sync := range syncs {
		go func() { errs <- sync() }()
	}
	var first error
	for range syncs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return s.gone("sync upload", key, first)
	}
	return nil
}

// completeInPlace turns the data file into the object when parts are
// exactly 1..n, parts 1..n−1 in place with size P and the last one no
// larger: the last part is copied into place if it is a file of its own,
// the data file is truncated to the object's size and fdatasynced, and
// a second name of it is returned for commit. ok is false when the parts do not fit
// (the caller assembles a copy).
func (s *Store) completeInPlace(ctx context.Context, id string, l *layout, parts []objstore.Part) (path string, ok bool, err error) {
	p, recs := l.records(parts)
	n := len(parts)
	if p == 0 {
		return "", false, nil
	}
	for i, r := range recs {
		last := i == n-1
		switch {
		case r.Number != i+1:
			return "", false, nil
		case !last && (r.InFile || r.Size != p):
			return "", false, nil
		case last && r.Size > p:
			return "", false, nil
		}
	}
	dir := s.uploadDir(id)
	path = filepath.Join(dir, dataFile)
	lastRec := recs[n-1]
	size := int64(n-1)*p + lastRec.Size
	if lastRec.InFile {
		sum, _ := hex.DecodeString(lastRec.MD5)
		src, err := os.Open(filepath.Join(dir, partFileName(lastRec.Number, sum)))
		if err != nil {
			return "", false, err
		}
		_, err = s.writeAt(ctx, path, int64(n-1)*p, src, lastRec.Size, crc32.New(castagnoli))
		src.Close()
		if err != nil {
			return "", false, err
		}
	}
	f, err := s.fs.OpenData(path)
	if err != nil {
		return "", false, err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, err
	}
	// commit consumes the name it is given; a second link keeps the
	// upload whole if the commit fails (an existing key, a full disk).
	tmp := filepath.Join(s.tmpDir(), "c-"+filepath.Base(dir))
	_ = s.fs.Remove(tmp)
	if err := s.fs.Link(path, tmp); err != nil {
		return "", false, err
	}
	return tmp, true, nil
}
