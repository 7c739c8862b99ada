package file

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// upload is the upload.json of an incomplete multipart upload.
type upload struct {
	Key         string            `json:"key"`
	Initiated   time.Time         `json:"initiated"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// PartSize is the size of every part but the last, when the client
	// gave it (objstore.PutOptions.PartSize): the in-place layout's P.
	PartSize int64 `json:"partSize,omitempty"`
}

func (s *Store) uploadDir(id string) string { return filepath.Join(s.uploadsDir(), id) }

// checkUploadID admits only the ids CreateMultipart makes (32 hex digits),
// so an id can never name a path outside the uploads directory.
func checkUploadID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("file: upload id %q: %w", id, objstore.ErrNotExist)
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return fmt.Errorf("file: upload id %q: %w", id, objstore.ErrNotExist)
	}
	return nil
}

// CreateMultipart implements objstore.Store.
func (s *Store) CreateMultipart(ctx context.Context, key string, opts objstore.PutOptions) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("file: create upload %s: %w", key, err)
	}
	id := hex.EncodeToString(b[:])
	u := upload{Key: key, Initiated: s.now().UTC(), ContentType: opts.ContentType, Metadata: lowerKeys(opts.Metadata)}
	if opts.PartSize >= s.limits.MinPartSize && opts.PartSize <= s.limits.MaxPartSize {
		u.PartSize = opts.PartSize
	}
	ub, err := json.Marshal(u)
	if err != nil {
		return "", err
	}
	dir := s.uploadDir(id)
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return "", s.wrap("create upload", key, err)
	}
	tmp, _, err := s.writeTemp(ctx, bytes.NewReader(ub), int64(len(ub)), nil)
	if err == nil {
		err = s.fs.Rename(tmp, filepath.Join(dir, "upload.json"))
	}
	if err == nil {
		err = s.fs.SyncDir(dir)
	}
	if err != nil {
		_ = s.fs.RemoveAll(dir)
		return "", s.wrap("create upload", key, err)
	}
	return id, nil
}

// loadUpload reads an upload and checks it belongs to key.
func (s *Store) loadUpload(key, id string) (upload, error) {
	if err := checkUploadID(id); err != nil {
		return upload{}, err
	}
	b, err := os.ReadFile(filepath.Join(s.uploadDir(id), "upload.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return upload{}, fmt.Errorf("file: upload %s of %s: %w", id, key, objstore.ErrNotExist)
	}
	if err != nil {
		return upload{}, s.wrap("read upload", key, err)
	}
	var u upload
	if err := json.Unmarshal(b, &u); err != nil {
		return upload{}, s.wrap("read upload", key, err)
	}
	if key != "" && u.Key != key {
		return upload{}, fmt.Errorf("file: upload %s is not for %s: %w", id, key, objstore.ErrNotExist)
	}
	return u, nil
}

func (s *Store) checkPartNumber(number int) error {
	if number < 1 || number > s.limits.MaxParts {
		return fmt.Errorf("part number %d outside 1..%d", number, s.limits.MaxParts)
	}
	return nil
}

// UploadPart implements objstore.Store. The part is verified against
// contentMD5 when given (ErrBadDigest) and stored in place or as a file of
// its own (inplace.go).
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64, contentMD5 string) (objstore.Part, error) {
	op := fmt.Sprintf("upload part %d of", number)
	if err := checkKey(key); err != nil {
		return objstore.Part{}, err
	}
	u, err := s.loadUpload(key, uploadID)
	if err != nil {
		return objstore.Part{}, err
	}
	if err := s.checkPartNumber(number); err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	if size < 0 || size > s.limits.MaxPartSize {
		return objstore.Part{}, s.wrap(op, key, fmt.Errorf("%d bytes outside the part limit %d", size, s.limits.MaxPartSize))
	}
	return s.storePart(ctx, op, key, uploadID, u, number, r, size, contentMD5)
}

// UploadPartCopy implements objstore.Store.
func (s *Store) UploadPartCopy(ctx context.Context, key, uploadID string, number int, srcKey string, offset, length int64) (objstore.Part, error) {
	op := fmt.Sprintf("copy part %d of", number)
	if err := checkKey(key); err != nil {
		return objstore.Part{}, err
	}
	if err := checkKey(srcKey); err != nil {
		return objstore.Part{}, err
	}
	u, err := s.loadUpload(key, uploadID)
	if err != nil {
		return objstore.Part{}, err
	}
	if err := s.checkPartNumber(number); err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	f, info, err := s.open(srcKey)
	if err != nil {
		return objstore.Part{}, err
	}
	defer f.Close()
	if offset < 0 || length <= 0 || offset+length > info.Size || length > s.limits.MaxPartSize {
		return objstore.Part{}, s.wrap(op, key, fmt.Errorf("range %d+%d outside %s (%d bytes)", offset, length, srcKey, info.Size))
	}
	return s.storePart(ctx, op, key, uploadID, u, number, io.NewSectionReader(f, offset, length), length, "")
}

// ListParts implements objstore.Store.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]objstore.Part, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	u, err := s.loadUpload(key, uploadID)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	parts, _, err := s.partList(key, uploadID, u)
	return parts, err
}

// CompleteMultipart implements objstore.Store: the listed parts must be
// in ascending order with matching ETags, and every non-final part at
// least MinPartSize (ErrPartTooSmall), as in S3. When they are the
// in-place layout's parts 1..n, the data file becomes the object with no
// copy (truncated, fdatasynced, committed); otherwise they are
// concatenated into a temporary file. The commit is atomic, and with
// NoOverwrite refuses an existing key.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.Part, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	var zero objstore.ObjectInfo
	if err := checkKey(key); err != nil {
		return zero, err
	}
	u, err := s.loadUpload(key, uploadID)
	if err != nil {
		return zero, err
	}
	if len(parts) == 0 {
		return zero, s.wrap("complete", key, errors.New("no parts"))
	}
	stored, l, err := s.partList(key, uploadID, u)
	if err != nil {
		return zero, err
	}
	have := map[int]objstore.Part{}
	for _, p := range stored {
		have[p.Number] = p
	}
	all := md5.New()
	for i, p := range parts {
		got, ok := have[p.Number]
		switch {
		case i > 0 && p.Number <= parts[i-1].Number:
			return zero, s.wrap("complete", key, fmt.Errorf("part numbers not ascending at %d", p.Number))
		case !ok || strings.Trim(strings.ToLower(p.ETag), `"`) != got.ETag:
			return zero, fmt.Errorf("file: complete %s: part %d not uploaded or its ETag differs: %w", key, p.Number, objstore.ErrNotExist)
		case i < len(parts)-1 && got.Size < s.limits.MinPartSize:
			return zero, fmt.Errorf("file: complete %s: part %d has %d bytes, minimum %d: %w",
				key, p.Number, got.Size, s.limits.MinPartSize, objstore.ErrPartTooSmall)
		}
		sum, _ := hex.DecodeString(got.ETag)
		all.Write(sum)
	}
	etag := fmt.Sprintf("%s-%d", hex.EncodeToString(all.Sum(nil)), len(parts))
	path, inPlace, err := s.completeInPlace(ctx, uploadID, l, parts)
	if err == nil && !inPlace {
		// Only a copy needs room for a second object.
		if s.opts.MinFreeBytes > 0 {
			var total int64
			for _, p := range parts {
				total += have[p.Number].Size
			}
			if err := s.checkFloor(total); err != nil {
				return zero, s.wrap("complete", key, err)
			}
		}
		path, err = s.assemble(ctx, uploadID, l, parts)
	}
	if err != nil {
		return zero, s.gone("complete", key, err)
	}
	m := meta{ETag: etag, ContentType: u.ContentType, Metadata: u.Metadata}
	if opts.ContentType != "" {
		m.ContentType = opts.ContentType
	}
	if len(opts.Metadata) > 0 {
		if m.Metadata == nil {
			m.Metadata = map[string]string{}
		}
		maps.Copy(m.Metadata, lowerKeys(opts.Metadata))
	}
	if err := s.commit(key, path, m, opts.NoOverwrite); err != nil {
		return zero, s.wrap("complete", key, err)
	}
	s.dropUpload(key, uploadID)
	return s.Head(ctx, key)
}

// assemble concatenates the parts, wherever each lives, into a temporary
// file, fsynced, and returns its path.
func (s *Store) assemble(ctx context.Context, uploadID string, l *layout, parts []objstore.Part) (string, error) {
	f, err := s.fs.CreateTemp(s.tmpDir(), "c-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = s.copyParts(ctx, f, uploadID, l, parts)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = s.fs.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func (s *Store) copyParts(ctx context.Context, f File, uploadID string, l *layout, parts []objstore.Part) error {
	dir := s.uploadDir(uploadID)
	data, err := os.Open(filepath.Join(dir, dataFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if data != nil {
		defer data.Close()
	}
	p, recs := l.records(parts)
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.copyPart(f, dir, data, p, r); err != nil {
			return err
		}
	}
	return nil
}

// copyPart appends one part to f, from its own file or the data file.
func (s *Store) copyPart(f File, dir string, data *os.File, p int64, r partRecord) error {
	var src io.Reader
	if r.InFile {
		pf, err := os.Open(filepath.Join(dir, fmt.Sprintf("%05d.%s", r.Number, r.MD5)))
		if err != nil {
			return fmt.Errorf("part %d: %w", r.Number, err)
		}
		defer pf.Close()
		src = pf
	} else {
		if data == nil {
			return fmt.Errorf("part %d: data file missing", r.Number)
		}
		src = io.NewSectionReader(data, int64(r.Number-1)*p, r.Size)
	}
	// Copying file to file lets the kernel do it (copy_file_range, a
	// reflink on filesystems that have them).
	if n, err := io.Copy(f, src); err != nil || n != r.Size {
		return fmt.Errorf("part %d: copied %d of %d bytes: %v", r.Number, n, r.Size, err)
	}
	return nil
}

// dropUpload removes a finished upload's directory and its cached layout.
func (s *Store) dropUpload(key, uploadID string) {
	if err := s.fs.RemoveAll(s.uploadDir(uploadID)); err != nil {
		s.log.Warn("remove upload", "key", key, "upload", uploadID, "err", err)
	}
	s.layouts.Delete(uploadID)
}

// AbortMultipart implements objstore.Store.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.loadUpload(key, uploadID); err != nil {
		return err
	}
	if err := s.fs.RemoveAll(s.uploadDir(uploadID)); err != nil {
		return s.wrap("abort upload", key, err)
	}
	s.layouts.Delete(uploadID)
	return nil
}

// ListUploads implements objstore.Store.
func (s *Store) ListUploads(ctx context.Context, prefix string) ([]objstore.Upload, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.uploadsDir())
	if err != nil {
		return nil, s.wrap("list uploads", prefix, err)
	}
	var out []objstore.Upload
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() || checkUploadID(e.Name()) != nil {
			continue
		}
		u, err := s.loadUpload("", e.Name())
		if errors.Is(err, objstore.ErrNotExist) {
			continue // completed or aborted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(u.Key, prefix) {
			out = append(out, objstore.Upload{Key: u.Key, UploadID: e.Name(), Initiated: u.Initiated})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Initiated.Before(out[j].Initiated)
	})
	return out, nil
}

// ChecksumsParts reports that UploadPart hashes what it writes
// (objstore.PartChecksummer): the Writer need not compute a Content-MD5
// for a store in the same process.
func (s *Store) ChecksumsParts() bool { return true }
