// Package objstore defines the object-store interface that sluice writes
// dumps into, and the streaming multipart Writer built on it. Backends
// live in subpackages (objstore/file, objstore/s3) and import only this
// package; objstore/storetest is the conformance suite every backend runs.
//
// The Writer (NewWriter, Resume) turns an io.Writer stream into an
// R2-safe multipart upload: fixed-size parts, bounded parallelism and
// memory, retries (IsRetryable), per-part checksums, the object's
// SHA-256 in metadata, NoOverwrite, resumable State, and a tested answer
// for a stream that outgrows its part size. docs/storage.md describes it.
//
// Keys are validated the same way by every backend (ValidateKey).
package objstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Errors every backend reports in the same way, so callers test them with
// errors.Is whatever the backend.
var (
	// ErrNotExist: the object, upload or bucket does not exist. It is
	// fs.ErrNotExist, so os.IsNotExist-style checks work too.
	ErrNotExist = fs.ErrNotExist
	// ErrExist: a write with NoOverwrite found an existing object.
	ErrExist = fs.ErrExist
	// ErrInvalidKey: the key is empty, absolute, contains "..", NUL,
	// a backslash, or otherwise cannot name an object safely.
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrPartTooSmall: a non-final part below the backend's minimum.
	ErrPartTooSmall = errors.New("objstore: part too small")
	// ErrAccessDenied: credentials are missing or wrong.
	ErrAccessDenied = errors.New("objstore: access denied")
	// ErrBadDigest: the server computed a different checksum for a part
	// than the client sent (S3 "BadDigest"/"InvalidDigest"): the bytes were
	// damaged in transit. IsRetryable reports true for it.
	ErrBadDigest = errors.New("objstore: checksum mismatch")
)

// Limits of the multipart protocol (AWS S3 and Cloudflare R2 agree).
const (
	MinPartSize = 5 << 20 // every non-final part is at least this
	MaxPartSize = 5 << 30 // no part is larger
	MaxParts    = 10_000  // at most this many parts
	MiB         = 1 << 20
)

// Part is one uploaded part of a multipart upload.
type Part struct {
	Number   int    `json:"number"` // 1-based
	Size     int64  `json:"size"`
	ETag     string `json:"etag"`
	Checksum string `json:"checksum,omitempty"` // base64 MD5 or CRC32C the server verified
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
	ContentType  string
	Metadata     map[string]string // user metadata, keys lower-case
}

// Upload is an incomplete multipart upload.
type Upload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// PutOptions apply to Put and CreateMultipart.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string
	NoOverwrite bool // refuse (ErrExist) to replace an existing object
	// ContentMD5Parts, for CreateMultipart, says the caller will give a
	// contentMD5 for every part, so the store must not fix a per-part
	// checksum algorithm of its own for this upload. The Writer sets it
	// for uploads that take server-side copies (after outgrowing its
	// part size), whose copied parts get no client checksum.
	ContentMD5Parts bool
	// PartSize, for CreateMultipart, is the size of every part but the
	// last, when the caller fixed it (the Writer does). A store may lay
	// the parts out by it (the file store writes part k at (k−1)×PartSize
	// of one file); others ignore it.
	PartSize int64
}

// Store is an S3-like object store. Every call takes a context first and
// honours its cancellation; keys are slash-separated and relative.
//
// Errors: a missing object/upload/bucket wraps ErrNotExist; bad keys wrap
// ErrInvalidKey before any I/O; failures that may succeed when repeated
// (5xx, 429, timeouts, connection resets, ErrBadDigest) must make
// IsRetryable(err) true — see errors.go for how a backend marks them.
type Store interface {
	// CreateMultipart starts an upload. opts.ContentType and
	// opts.Metadata given here are stored with the object (S3 takes them
	// at create time); opts.NoOverwrite is enforced at Complete.
	CreateMultipart(ctx context.Context, key string, opts PutOptions) (uploadID string, err error)
	// UploadPart stores part number (1-based) of size bytes read from r.
	// contentMD5 is the base64 MD5 of the part's bytes, computed by the
	// caller (the Writer has the part in memory); when non-empty the
	// backend sends it as Content-MD5 so the server verifies the body, and
	// a mismatch is reported as ErrBadDigest. Give it for every part of an
	// upload created with ContentMD5Parts and for none of the others: a
	// store may fix a checksum of its own at create (the S3 backend's
	// CRC32C) and computes it when contentMD5 is empty. The returned Part
	// carries the verified checksum in Checksum. Backends must not add checksum trailers or aws-chunked
	// bodies (R2 and MinIO reject them). A backend may refuse a part below
	// its minimum size here or at Complete (ErrPartTooSmall).
	UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64, contentMD5 string) (Part, error)
	// UploadPartCopy stores part number of the upload as the byte range
	// [offset, offset+length) of the existing object srcKey, server-side
	// (S3 UploadPartCopy with x-amz-copy-source-range). The Writer uses it
	// only when a stream outgrows its part size (see docs/storage.md).
	UploadPartCopy(ctx context.Context, key, uploadID string, number int, srcKey string, offset, length int64) (Part, error)
	// ListParts returns every uploaded part, ordered by number, following
	// all pages (S3 returns at most 1,000 per page).
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipart assembles the parts; with opts.NoOverwrite it
	// refuses to replace an existing object (ErrExist). opts.Metadata
	// (merged over the metadata given at create) is stored with the
	// finished object and returned by Head afterwards; the Writer puts the
	// object's SHA-256 there. How is the backend's affair (the file store
	// writes a sidecar, the S3 backend copies the object onto itself).
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part, opts PutOptions) (ObjectInfo, error)
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// ListUploads returns the incomplete uploads whose key starts with
	// prefix, following all pages.
	ListUploads(ctx context.Context, prefix string) ([]Upload, error)

	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get returns the object's bytes from offset; length < 0 means to the end.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error)
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// PresignGet returns a URL that fetches the object without credentials
	// until expiry.
	PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// PartChecksummer is implemented by a Store whose UploadPart computes a
// checksum of each part itself and has it verified (the S3 backend sends
// a CRC32C or Content-MD5 it computes; the file store hashes what it
// writes). The Writer then passes an empty contentMD5 instead of spending
// CPU on an MD5 the store would compute again, except in uploads created
// with ContentMD5Parts.
type PartChecksummer interface {
	ChecksumsParts() bool
}

// Syncer is implemented by a Store whose UploadPart does not make a part
// durable by itself (the file store writes parts in place and syncs them
// in one go). SyncUpload makes every part of the upload stored so far
// durable; the Writer calls it before it hands out a State (Checkpoint,
// PendingState.Durable), so a saved State never names a part a power loss
// could take.
type Syncer interface {
	SyncUpload(ctx context.Context, key, uploadID string) error
}

// Limits are the multipart limits a backend enforces. A Store may
// implement Limiter to report limits other than S3's (the file store does,
// so tests can shrink them); the Writer reads them to size its parts.
type Limits struct {
	MinPartSize int64 // every non-final part is at least this
	MaxPartSize int64 // no part is larger
	MaxParts    int   // highest part number
}

// DefaultLimits are the S3 and R2 limits.
func DefaultLimits() Limits {
	return Limits{MinPartSize: MinPartSize, MaxPartSize: MaxPartSize, MaxParts: MaxParts}
}

// Limiter is implemented by a Store whose multipart limits differ from
// DefaultLimits.
type Limiter interface {
	Limits() Limits
}

// LimitsOf returns s's limits: s.Limits() if it implements Limiter (zero
// fields fall back to the defaults), otherwise DefaultLimits().
func LimitsOf(s Store) Limits {
	d := DefaultLimits()
	l, ok := s.(Limiter)
	if !ok {
		return d
	}
	got := l.Limits()
	if got.MinPartSize > 0 {
		d.MinPartSize = got.MinPartSize
	}
	if got.MaxPartSize > 0 {
		d.MaxPartSize = got.MaxPartSize
	}
	if got.MaxParts > 0 {
		d.MaxParts = got.MaxParts
	}
	return d
}
