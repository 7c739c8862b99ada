// Package s3 is the objstore.Store for S3-compatible services (AWS S3,
// Cloudflare R2, MinIO, versitygw, ...), built on minio-go.
//
// Every request body is sent as a single chunk: part bodies with an
// unsigned payload and a signed checksum header the server verifies
// (x-amz-checksum-crc32c, or Content-MD5 with Config.Checksum md5), small
// objects signed with their SHA-256 and a Content-MD5. No aws-chunked
// streaming signatures and no checksum trailers, which R2 and MinIO have
// rejected. Every request is bounded in time: requests without a
// body by Config.RequestTimeout, transfers by Config.IdleTimeout of no
// progress, and all of them by the caller's context.
package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/sluice-dev/sluice/objstore"
)

// Store is an objstore.Store on one bucket of an S3-compatible service.
type Store struct {
	cfg      Config
	client   *minio.Client
	core     *minio.Core
	tr       *http.Transport
	endpoint string // scheme://host, for messages
	log      *slog.Logger

	// Objects above copyThreshold get their metadata replaced by a
	// multipart copy in parts of copyPartSize (S3 copies at most 5 GiB
	// in one request). Tests lower both to exercise that path.
	copyThreshold int64
	copyPartSize  int64
	// listPage is the page size asked of ListParts and ListUploads (S3's
	// maximum, 1000); tests lower it to cross page boundaries cheaply.
	listPage int
}

var _ objstore.Store = (*Store)(nil)

// New connects to the service and checks that the bucket exists, so a
// wrong bucket, wrong credentials or an unreachable endpoint are reported
// here with a clear error: errors.Is(err, objstore.ErrNotExist) for a
// missing bucket, objstore.ErrAccessDenied for refused credentials.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("s3: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, secure, _ := cfg.endpoint()
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   cfg.DialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   cfg.DialTimeout,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Transparent gzip would change sizes and break ranged reads.
		DisableCompression: true,
	}
	lookup := map[AddressingStyle]minio.BucketLookupType{
		StyleAuto:        minio.BucketLookupAuto,
		StylePath:        minio.BucketLookupPath,
		StyleVirtualHost: minio.BucketLookupDNS,
	}[cfg.Style]
	region := cfg.Region
	if region == "" && !s3utils.IsAmazonEndpoint(url.URL{Host: host}) {
		region = DefaultRegion
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:       secure,
		Transport:    tr,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", host, err)
	}
	client.SetAppInfo("sluice", "1")
	s := &Store{
		cfg:           cfg,
		client:        client,
		core:          &minio.Core{Client: client},
		tr:            tr,
		endpoint:      scheme + "://" + host,
		log:           logger.With("store", "s3", "endpoint", scheme+"://"+host, "bucket", cfg.Bucket),
		copyThreshold: objstore.MaxPartSize,
		copyPartSize:  1 << 30,
		listPage:      1000,
	}
	if err := s.checkBucket(ctx); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	s.log.Debug("s3 store ready", "prefix", cfg.Prefix, "style", cfg.Style)
	return s, nil
}

// checkBucket lists at most one key under the prefix. A GET rather than
// HEAD bucket (both need the same ListBucket permission), because a HEAD
// answer has no body, and some servers (versitygw) answer an unknown
// access key with a bare 404 that reads like a missing bucket.
func (s *Store) checkBucket(ctx context.Context) error {
	lp, _ := s.listPrefix("")
	err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) error {
		for oi := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: lp, MaxKeys: 1}) {
			return oi.Err
		}
		return nil
	})
	var e *Error
	if errors.As(err, &e) && e.Code == "NoSuchBucket" {
		e.Message = fmt.Sprintf("bucket %q does not exist at %s", s.cfg.Bucket, s.endpoint)
		return fmt.Errorf("s3: %w", err)
	}
	if errors.Is(err, objstore.ErrAccessDenied) {
		return fmt.Errorf("s3: access to bucket %q at %s refused; check the access key and secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): %w", s.cfg.Bucket, s.endpoint, err)
	}
	if err != nil {
		return fmt.Errorf("s3: check bucket %q at %s: %w", s.cfg.Bucket, s.endpoint, err)
	}
	return nil
}

// Close releases idle connections. The Store must not be used after.
func (s *Store) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Bucket returns the bucket the store writes to.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// do runs fn under a deadline of d and classifies its error.
func (s *Store) do(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeoutCause(ctx, d, &timeoutError{what: "no answer from " + s.endpoint, d: d})
	defer cancel()
	return classify(ctx, cctx, s.endpoint, fn(cctx))
}

// transfer runs fn with a watchdog that cancels it after IdleTimeout
// without progress, and classifies its error.
func (s *Store) transfer(ctx context.Context, fn func(ctx context.Context, wd *watchdog) error) error {
	cctx, wd := newWatchdog(ctx, s.cfg.IdleTimeout, "no progress to or from "+s.endpoint)
	defer wd.stop()
	return classify(ctx, cctx, s.endpoint, fn(cctx, wd))
}

// objectKey validates a key and returns it with the store's prefix.
func (s *Store) objectKey(key string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	full := key
	if s.cfg.Prefix != "" {
		full = s.cfg.Prefix + "/" + key
	}
	if len(full) > objstore.MaxKeyLen {
		return "", fmt.Errorf("key %q: %w: %d bytes with the store prefix; S3 allows %d", key, objstore.ErrInvalidKey, len(full), objstore.MaxKeyLen)
	}
	return full, nil
}

// listPrefix returns a listing prefix with the store's prefix.
func (s *Store) listPrefix(prefix string) (string, error) {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return "", err
	}
	if s.cfg.Prefix == "" {
		return prefix, nil
	}
	return s.cfg.Prefix + "/" + prefix, nil
}

// relKey strips the store's prefix from a key the server returned.
func (s *Store) relKey(full string) string {
	if s.cfg.Prefix == "" {
		return full
	}
	return strings.TrimPrefix(full, s.cfg.Prefix+"/")
}

// Put stores a small object in one request. With opts.NoOverwrite an
// existing object is not replaced (ErrExist).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: put: %w", err)
	}
	if size < 0 || size > objstore.MaxPartSize {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: put %s: size %d: want 0 to %d bytes; use a multipart upload for more", key, size, int64(objstore.MaxPartSize))
	}
	if opts.NoOverwrite && s.cfg.DisableConditionalWrites {
		if err := s.refuseExisting(ctx, key, full); err != nil {
			return objstore.ObjectInfo{}, fmt.Errorf("s3: put %s: %w", key, err)
		}
	}
	body, sums, err := prepareBody(r, size, "", digestKinds{md5: true, sha256: true})
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: put %s: %w", key, err)
	}
	mopts := s.putOptions(opts)
	err = s.transfer(ctx, func(ctx context.Context, wd *watchdog) error {
		body.wd = wd
		_, err := s.core.PutObject(ctx, s.cfg.Bucket, full, body, size, sums.md5Base64, sums.sha256Hex, mopts)
		return err
	})
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: put %s: %w", key, err)
	}
	return s.Head(ctx, key)
}

// putOptions turns objstore options into minio-go ones. Payloads are
// signed (DisableContentSha256 with an explicit SHA-256 selects the
// single-chunk signature, not aws-chunked), and no checksum trailer is
// requested.
func (s *Store) putOptions(opts objstore.PutOptions) minio.PutObjectOptions {
	m := minio.PutObjectOptions{
		ContentType:          opts.ContentType,
		UserMetadata:         opts.Metadata,
		DisableContentSha256: true,
	}
	if opts.NoOverwrite && !s.cfg.DisableConditionalWrites {
		m.SetMatchETagExcept("*")
	}
	return m
}

// refuseExisting returns an ErrExist error when key exists. It is the
// fallback for servers without conditional writes, and racy: another
// writer may create the key between this check and the write.
func (s *Store) refuseExisting(ctx context.Context, key, full string) error {
	_, err := s.head(ctx, full)
	switch {
	case err == nil:
		return existsError(key)
	case errors.Is(err, objstore.ErrNotExist):
		return nil
	default:
		return err
	}
}

func existsError(key string) error {
	return &Error{Code: "PreconditionFailed", Status: http.StatusPreconditionFailed, kind: objstore.ErrExist,
		Message: fmt.Sprintf("object %q already exists and would be overwritten", key)}
}

// Get returns the object's bytes from offset; length < 0 reads to the end.
// The returned ObjectInfo has the whole object's size.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get: %w", err)
	}
	if offset < 0 {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, objstore.ObjectInfo{}, err
		}
		if offset > info.Size {
			return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: offset %d beyond size %d", key, offset, info.Size)
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	var gopts minio.GetObjectOptions
	switch {
	case length > 0:
		err = gopts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = gopts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	cctx, wd := newWatchdog(ctx, s.cfg.IdleTimeout, "no progress from "+s.endpoint)
	rc, oi, hdr, err := s.core.GetObject(cctx, s.cfg.Bucket, full, gopts)
	if err != nil {
		err = classify(ctx, cctx, s.endpoint, err)
		wd.stop()
		var e *Error
		if errors.As(err, &e) && e.Code == "InvalidRange" {
			return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: range from %d (length %d) is outside the object: %w", key, offset, length, err)
		}
		return nil, objstore.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	wd.pause()
	info := s.objectInfo(oi)
	if total, ok := contentRangeTotal(hdr.Get("Content-Range")); ok {
		info.Size = total
	}
	return &getBody{downloadBody: downloadBody{rc: rc, wd: wd}, parent: ctx, ctx: cctx, s: s, key: key}, info, nil
}

// getBody classifies read errors (a stalled download reads as a
// retryable timeout, not a bare "context canceled").
type getBody struct {
	downloadBody
	parent, ctx context.Context
	s           *Store
	key         string
}

func (g *getBody) Read(p []byte) (int, error) {
	n, err := g.downloadBody.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("s3: get %s: read: %w", g.key, classify(g.parent, g.ctx, g.s.endpoint, err))
	}
	return n, err
}

// contentRangeTotal parses the total of "bytes 0-99/1234".
func contentRangeTotal(h string) (int64, bool) {
	i := strings.LastIndexByte(h, '/')
	if i < 0 || !strings.HasPrefix(h, "bytes ") {
		return 0, false
	}
	n, err := strconv.ParseInt(h[i+1:], 10, 64)
	return n, err == nil
}

// Head returns the object's size, ETag and metadata.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: head: %w", err)
	}
	info, err := s.head(ctx, full)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: head %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) head(ctx context.Context, full string) (objstore.ObjectInfo, error) {
	var oi minio.ObjectInfo
	err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) (err error) {
		oi, err = s.client.StatObject(ctx, s.cfg.Bucket, full, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	return s.objectInfo(oi), nil
}

func (s *Store) objectInfo(oi minio.ObjectInfo) objstore.ObjectInfo {
	info := objstore.ObjectInfo{
		Key:          s.relKey(oi.Key),
		Size:         oi.Size,
		ETag:         strings.Trim(oi.ETag, `"`),
		LastModified: oi.LastModified,
		ContentType:  oi.ContentType,
	}
	if len(oi.UserMetadata) > 0 {
		info.Metadata = make(map[string]string, len(oi.UserMetadata))
		for k, v := range oi.UserMetadata {
			info.Metadata[strings.ToLower(k)] = v
		}
	}
	return info
}

// Delete removes an object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.objectKey(key)
	if err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	err = s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.cfg.Bucket, full, minio.RemoveObjectOptions{})
	})
	if err != nil && !errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// List returns every object whose key starts with prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	lp, err := s.listPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("s3: list: %w", err)
	}
	var out []objstore.ObjectInfo
	err = s.transfer(ctx, func(ctx context.Context, wd *watchdog) error {
		for oi := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: lp, Recursive: true}) {
			if oi.Err != nil {
				return oi.Err
			}
			wd.kick()
			out = append(out, s.objectInfo(oi))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("s3: list %q: %w", prefix, err)
	}
	return out, nil
}

// PresignGet returns a URL that GETs the object without credentials until
// expiry (0 means one hour; S3 allows 1 s to 7 days). It does not check
// that the object exists.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return "", fmt.Errorf("s3: presign: %w", err)
	}
	if expiry == 0 {
		expiry = time.Hour
	}
	if expiry < time.Second || expiry > 7*24*time.Hour {
		return "", fmt.Errorf("s3: presign %s: expiry %v: want 1s to 168h", key, expiry)
	}
	var u string
	err = s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) error {
		pu, err := s.client.PresignedGetObject(ctx, s.cfg.Bucket, full, expiry, nil)
		if err == nil {
			u = pu.String()
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("s3: presign %s: %w", key, err)
	}
	return u, nil
}
