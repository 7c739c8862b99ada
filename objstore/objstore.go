// Package objstore defines the object-store interface that sluice writes
// dumps into, and the streaming multipart Writer built on it. Backends
// live in subpackages (objstore/file, objstore/s3) and import only this
// package; objstore/storetest is the conformance suite every backend runs.
//
// CONTRACT (written before the implementations, which are built in
// parallel; refine names only together with every backend).
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
}

// Store is an S3-like object store. Every call takes a context first and
// honours its cancellation; keys are slash-separated and relative.
type Store interface {
	CreateMultipart(ctx context.Context, key string, opts PutOptions) (uploadID string, err error)
	UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64) (Part, error)
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipart assembles the parts; with opts.NoOverwrite it
	// refuses to replace an existing object. opts.Metadata is stored with
	// the finished object (the backend decides how; see docs/storage.md).
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part, opts PutOptions) (ObjectInfo, error)
	AbortMultipart(ctx context.Context, key, uploadID string) error
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
