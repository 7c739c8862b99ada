package file

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
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
	"strconv"
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
// contentMD5 when given (ErrBadDigest) and stored as <n>.<md5 hex>.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64, contentMD5 string) (objstore.Part, error) {
	op := fmt.Sprintf("upload part %d of", number)
	if err := checkKey(key); err != nil {
		return objstore.Part{}, err
	}
	if _, err := s.loadUpload(key, uploadID); err != nil {
		return objstore.Part{}, err
	}
	if err := s.checkPartNumber(number); err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	if size > s.limits.MaxPartSize {
		return objstore.Part{}, s.wrap(op, key, fmt.Errorf("%d bytes exceed the part limit %d", size, s.limits.MaxPartSize))
	}
	h := md5.New()
	tmp, n, err := s.writeTemp(ctx, r, size, h)
	if err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	sum := h.Sum(nil)
	if contentMD5 != "" {
		want, err := base64.StdEncoding.DecodeString(contentMD5)
		if err != nil || !bytes.Equal(want, sum) {
			_ = s.fs.Remove(tmp)
			return objstore.Part{}, fmt.Errorf("file: %s %s: %w", op, key, objstore.ErrBadDigest)
		}
	}
	return s.placePart(op, key, uploadID, number, tmp, n, sum)
}

// placePart renames a written part into its upload, replacing any earlier
// part with the same number.
func (s *Store) placePart(op, key, uploadID string, number int, tmp string, n int64, sum []byte) (objstore.Part, error) {
	etag := hex.EncodeToString(sum)
	dir := s.uploadDir(uploadID)
	name := fmt.Sprintf("%05d.%s", number, etag)
	if err := s.fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = s.fs.Remove(tmp)
		if errors.Is(err, fs.ErrNotExist) {
			return objstore.Part{}, fmt.Errorf("file: %s %s: upload aborted: %w", op, key, objstore.ErrNotExist)
		}
		return objstore.Part{}, s.wrap(op, key, err)
	}
	if err := s.fs.SyncDir(dir); err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	prefix := fmt.Sprintf("%05d.", number)
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) && e.Name() != name {
				_ = s.fs.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return objstore.Part{Number: number, Size: n, ETag: etag, Checksum: base64.StdEncoding.EncodeToString(sum)}, nil
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
	if _, err := s.loadUpload(key, uploadID); err != nil {
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
	h := md5.New()
	tmp, n, err := s.writeTemp(ctx, io.NewSectionReader(f, offset, length), length, h)
	if err != nil {
		return objstore.Part{}, s.wrap(op, key, err)
	}
	return s.placePart(op, key, uploadID, number, tmp, n, h.Sum(nil))
}

// ListParts implements objstore.Store.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]objstore.Part, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if _, err := s.loadUpload(key, uploadID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.parts(key, uploadID)
}

func (s *Store) parts(key, uploadID string) ([]objstore.Part, error) {
	ents, err := os.ReadDir(s.uploadDir(uploadID))
	if err != nil {
		return nil, s.wrap("list parts", key, err)
	}
	latest := map[int]time.Time{}
	byNum := map[int]objstore.Part{}
	for _, e := range ents {
		num, etag, ok := strings.Cut(e.Name(), ".")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || len(etag) != 32 {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // replaced meanwhile
		}
		if t, seen := latest[n]; seen && !fi.ModTime().After(t) {
			continue
		}
		latest[n] = fi.ModTime()
		byNum[n] = objstore.Part{Number: n, Size: fi.Size(), ETag: etag, Checksum: md5Base64(etag)}
	}
	out := make([]objstore.Part, 0, len(byNum))
	for _, p := range byNum {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// CompleteMultipart implements objstore.Store: the listed parts, in
// ascending order and with matching ETags, are concatenated into a
// temporary file that is fsynced and committed (NoOverwrite: atomically
// refusing an existing key). Every non-final part must be at least
// MinPartSize (ErrPartTooSmall), as in S3.
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
	stored, err := s.parts(key, uploadID)
	if err != nil {
		return zero, err
	}
	have := map[int]objstore.Part{}
	for _, p := range stored {
		have[p.Number] = p
	}
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
	}
	if s.opts.MinFreeBytes > 0 {
		var total int64
		for _, p := range parts {
			total += have[p.Number].Size
		}
		if err := s.checkFloor(total); err != nil {
			return zero, s.wrap("complete", key, err)
		}
	}
	f, err := s.fs.CreateTemp(s.tmpDir(), "c-*")
	if err != nil {
		return zero, s.wrap("complete", key, err)
	}
	tmp := f.Name()
	etag, err := s.assemble(ctx, f, uploadID, parts)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = s.fs.Remove(tmp)
		return zero, s.wrap("complete", key, err)
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
	if err := s.commit(key, tmp, m, opts.NoOverwrite); err != nil {
		return zero, s.wrap("complete", key, err)
	}
	if err := s.fs.RemoveAll(s.uploadDir(uploadID)); err != nil {
		s.log.Warn("remove completed upload", "key", key, "upload", uploadID, "err", err)
	}
	return s.Head(ctx, key)
}

// assemble appends the parts to f and returns the S3-style multipart ETag
// (MD5 of the parts' MD5s, "-" part count).
func (s *Store) assemble(ctx context.Context, f File, uploadID string, parts []objstore.Part) (string, error) {
	all := md5.New()
	for _, p := range parts {
		etag := strings.Trim(strings.ToLower(p.ETag), `"`)
		sum, err := hex.DecodeString(etag)
		if err != nil {
			return "", fmt.Errorf("part %d: bad ETag %q", p.Number, p.ETag)
		}
		all.Write(sum)
		src, err := os.Open(filepath.Join(s.uploadDir(uploadID), fmt.Sprintf("%05d.%s", p.Number, etag)))
		if err != nil {
			return "", fmt.Errorf("part %d: %w", p.Number, err)
		}
		// Copying file to file lets the kernel do it (copy_file_range,
		// a reflink on filesystems that have them); ctx is checked per part.
		if err := ctx.Err(); err != nil {
			src.Close()
			return "", err
		}
		_, err = io.Copy(f, src)
		src.Close()
		if err != nil {
			return "", fmt.Errorf("part %d: %w", p.Number, err)
		}
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(all.Sum(nil)), len(parts)), nil
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
