package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice/objstore"
)

// CreateMultipart starts a multipart upload. opts.Metadata and
// opts.ContentType are stored with the finished object; NoOverwrite is
// enforced at CompleteMultipart. With Config.Checksum CRC32C (and not
// opts.ContentMD5Parts) the upload is created with
// x-amz-checksum-algorithm CRC32C: its parts must then carry their
// CRC32C, which UploadPart sends, and so must CompleteMultipart.
func (s *Store) CreateMultipart(ctx context.Context, key string, opts objstore.PutOptions) (string, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return "", fmt.Errorf("s3: create upload: %w", err)
	}
	meta := opts.Metadata
	if s.cfg.Checksum == ChecksumCRC32C && !opts.ContentMD5Parts {
		// The algorithm is fixed when the upload is created; every part
		// then carries its CRC32C, and so does CompleteMultipart.
		meta = maps.Clone(opts.Metadata)
		if meta == nil {
			meta = map[string]string{}
		}
		meta[headerChecksumAlgorithm] = "CRC32C"
	}
	mopts := minio.PutObjectOptions{ContentType: opts.ContentType, UserMetadata: meta}
	var id string
	err = s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) (err error) {
		id, err = s.core.NewMultipartUpload(ctx, s.cfg.Bucket, full, mopts)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("s3: create upload %s: %w", key, err)
	}
	s.log.Debug("upload created", "key", full, "upload_id", id)
	return id, nil
}

// UploadPart uploads part number (1-based) of size bytes read from r,
// with a checksum the server verifies: contentMD5 (base64) as Content-MD5
// if the caller gives it (uploads created with ContentMD5Parts), else
// the part's CRC32C (x-amz-checksum-crc32c) or MD5, as Config.Checksum
// says, computed here. The body goes out in one chunk with an unsigned
// payload, never aws-chunked: the signed checksum header protects it. The
// returned Part carries the checksum; a mismatch is an ErrBadDigest error.
// A seekable r (a *bytes.Reader, an *os.File) is read twice, to hash and
// to send, and is sent again from the same offset if minio-go retries; any
// other reader is buffered in memory first.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int, r io.Reader, size int64, contentMD5 string) (objstore.Part, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: upload part %d: %w", number, err)
	}
	if number < 1 || number > objstore.MaxParts {
		return objstore.Part{}, fmt.Errorf("s3: upload part %d of %s: part number must be 1 to %d", number, key, objstore.MaxParts)
	}
	if size < 0 || size > objstore.MaxPartSize {
		return objstore.Part{}, fmt.Errorf("s3: upload part %d of %s: size %d: want 0 to %d", number, key, size, int64(objstore.MaxPartSize))
	}
	crc := s.cfg.Checksum == ChecksumCRC32C && contentMD5 == ""
	body, sums, err := prepareBody(r, size, contentMD5, digestKinds{md5: !crc, crc32c: crc})
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: upload part %d of %s: %w", number, key, err)
	}
	popts := minio.PutObjectPartOptions{
		Md5Base64:            sums.md5Base64,
		DisableContentSha256: true, // one chunk (unsigned payload), never aws-chunked
	}
	if crc {
		popts.CustomHeader = http.Header{headerChecksumCRC32C: {sums.crc32cBase64}}
	}
	var op minio.ObjectPart
	err = s.transfer(ctx, func(ctx context.Context, wd *watchdog) (err error) {
		body.wd = wd
		op, err = s.core.PutObjectPart(ctx, s.cfg.Bucket, full, uploadID, number, body, size, popts)
		return err
	})
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: upload part %d of %s: %w", number, key, err)
	}
	part := objstore.Part{Number: number, Size: size, ETag: strings.Trim(op.ETag, `"`), Checksum: sums.md5Base64}
	if crc {
		// A server that answers without the checksum ignored the header
		// and verified nothing: say so rather than trust the part.
		if op.ChecksumCRC32C != sums.crc32cBase64 {
			return objstore.Part{}, fmt.Errorf("s3: upload part %d of %s: %w", number, key, errNoCRC32C(op.ChecksumCRC32C, sums.crc32cBase64))
		}
		part.Checksum = sums.crc32cBase64
	}
	return part, nil
}

// UploadPartCopy stores part number of the upload as the bytes
// [offset, offset+length) of the object srcKey, copied server-side.
func (s *Store) UploadPartCopy(ctx context.Context, key, uploadID string, number int, srcKey string, offset, length int64) (objstore.Part, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: copy part %d: %w", number, err)
	}
	src, err := s.objectKey(srcKey)
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: copy part %d: source: %w", number, err)
	}
	if number < 1 || number > objstore.MaxParts || offset < 0 || length < 1 || length > objstore.MaxPartSize {
		return objstore.Part{}, fmt.Errorf("s3: copy part %d of %s from %s: bad part number, offset %d or length %d", number, key, srcKey, offset, length)
	}
	var cp minio.CompletePart
	err = s.do(ctx, s.cfg.CompleteTimeout, func(ctx context.Context) (err error) {
		cp, err = s.core.CopyObjectPart(ctx, s.cfg.Bucket, src, s.cfg.Bucket, full, uploadID, number, offset, length, nil)
		return err
	})
	if err != nil {
		return objstore.Part{}, fmt.Errorf("s3: copy part %d of %s from %s: %w", number, key, srcKey, err)
	}
	// In an upload created with CRC32C the server reports the copied
	// range's CRC32C, which CompleteMultipart must name. (versitygw
	// v1.8.0 reports a composite value instead when the source is itself
	// a multipart object, which Complete refuses: the Writer therefore
	// copies only into uploads created with ContentMD5Parts.)
	return objstore.Part{Number: number, Size: length, ETag: strings.Trim(cp.ETag, `"`), Checksum: cp.ChecksumCRC32C}, nil
}

// ListParts returns the upload's parts in part-number order. Checksum is
// the part's CRC32C when the server reports one (uploads created with
// ChecksumCRC32C), else empty: servers do not report the Content-MD5
// they verified.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]objstore.Part, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return nil, fmt.Errorf("s3: list parts: %w", err)
	}
	var parts []objstore.Part
	marker := 0
	for {
		var res minio.ListObjectPartsResult
		err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) (err error) {
			res, err = s.core.ListObjectParts(ctx, s.cfg.Bucket, full, uploadID, marker, s.listPage)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("s3: list parts of %s: %w", key, err)
		}
		for _, p := range res.ObjectParts {
			parts = append(parts, objstore.Part{Number: p.PartNumber, Size: p.Size, ETag: strings.Trim(p.ETag, `"`), Checksum: p.ChecksumCRC32C})
		}
		if !res.IsTruncated {
			break
		}
		if res.NextPartNumberMarker <= marker {
			return nil, fmt.Errorf("s3: list parts of %s: server returned a truncated page without progress (marker %d)", key, marker)
		}
		marker = res.NextPartNumberMarker
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts, nil
}

// AbortMultipart removes the upload and its parts. Aborting an upload
// that no longer exists returns an ErrNotExist error.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	full, err := s.objectKey(key)
	if err != nil {
		return fmt.Errorf("s3: abort upload: %w", err)
	}
	err = s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) error {
		return s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, full, uploadID)
	})
	if err != nil {
		return fmt.Errorf("s3: abort upload of %s: %w", key, err)
	}
	s.log.Debug("upload aborted", "key", full, "upload_id", uploadID)
	return nil
}

// ListUploads returns the incomplete uploads whose key starts with prefix,
// following every page.
func (s *Store) ListUploads(ctx context.Context, prefix string) ([]objstore.Upload, error) {
	lp, err := s.listPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("s3: list uploads: %w", err)
	}
	var out []objstore.Upload
	seen := map[string]bool{}
	add := func(u minio.ObjectMultipartInfo) {
		if !seen[u.UploadID] {
			seen[u.UploadID] = true
			out = append(out, objstore.Upload{Key: s.relKey(u.Key), UploadID: u.UploadID, Initiated: u.Initiated})
		}
	}
	var keyMarker, idMarker string
	for {
		res, err := s.uploadsPage(ctx, lp, keyMarker, idMarker, s.listPage)
		var e *Error
		if idMarker != "" && errors.As(err, &e) && e.Code == "InvalidArgument" {
			// versitygw v1.8.0 rejects the upload-id-marker it handed out
			// itself. Fetch the uploads of the marker key in one page of
			// 1,000 (the most; no key has more uploads in flight), then
			// page on the key alone.
			s.log.Debug("server refused upload-id-marker; paging by key", "key_marker", keyMarker)
			same, err := s.uploadsPage(ctx, keyMarker, "", "", 1000)
			if err != nil {
				return nil, fmt.Errorf("s3: list uploads %q: %w", prefix, err)
			}
			for _, u := range same.Uploads {
				if u.Key == keyMarker {
					add(u)
				}
			}
			idMarker = ""
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("s3: list uploads %q: %w", prefix, err)
		}
		for _, u := range res.Uploads {
			add(u)
		}
		if !res.IsTruncated {
			break
		}
		if res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker {
			return nil, fmt.Errorf("s3: list uploads %q: server returned a truncated page without progress", prefix)
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	return out, nil
}

func (s *Store) uploadsPage(ctx context.Context, prefix, keyMarker, idMarker string, maxUploads int) (minio.ListMultipartUploadsResult, error) {
	var res minio.ListMultipartUploadsResult
	err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) (err error) {
		res, err = s.core.ListMultipartUploads(ctx, s.cfg.Bucket, prefix, keyMarker, idMarker, "", maxUploads)
		return err
	})
	return res, err
}

// CompleteMultipart assembles the parts into the object.
//
// With opts.NoOverwrite it first checks that the key is free (HEAD) and
// then completes with "If-None-Match: *", which AWS S3, R2, MinIO and
// versitygw enforce atomically; on a server that ignores the header only
// the HEAD check protects, and two writers racing for the key can both
// succeed.
//
// S3 takes metadata only when an upload is created, so opts.Metadata
// (the whole-object SHA-256 the Writer computes while streaming) is
// applied after completion by a server-side copy of the object onto
// itself with the metadata replaced: one CopyObject up to 5 GiB, a
// multipart copy (UploadPartCopy) above. Completion is idempotent: when
// the upload is gone but the object it would have produced is there (an
// earlier attempt whose answer was lost), the call succeeds.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.Part, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	full, err := s.objectKey(key)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: complete upload: %w", err)
	}
	wrap := func(err error) error { return fmt.Errorf("s3: complete upload of %s: %w", key, err) }
	if len(parts) == 0 {
		return objstore.ObjectInfo{}, wrap(errors.New("no parts"))
	}
	cparts := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return objstore.ObjectInfo{}, wrap(fmt.Errorf("parts out of order: %d after %d", p.Number, parts[i-1].Number))
		}
		cparts[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
		if isCRC32C(p.Checksum) {
			cparts[i].ChecksumCRC32C = p.Checksum
		}
	}

	if opts.NoOverwrite {
		info, err := s.head(ctx, full)
		switch {
		case err == nil && s.isResult(info, parts, opts):
			// An earlier attempt completed it; only the metadata may be missing.
			s.log.Info("upload already completed by an earlier attempt", "key", full, "upload_id", uploadID)
			s.abortQuietly(ctx, full, uploadID)
			return s.applyMetadata(ctx, key, full, info, opts)
		case err == nil:
			return objstore.ObjectInfo{}, wrap(existsError(key))
		case !errors.Is(err, objstore.ErrNotExist):
			return objstore.ObjectInfo{}, wrap(err)
		}
	}

	var mopts minio.PutObjectOptions
	if opts.NoOverwrite && !s.cfg.DisableConditionalWrites {
		mopts.SetMatchETagExcept("*")
	}
	err = s.do(ctx, s.cfg.CompleteTimeout, func(ctx context.Context) error {
		_, err := s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, full, uploadID, cparts, mopts)
		return err
	})
	if err != nil {
		if !errors.Is(err, objstore.ErrNotExist) && !errors.Is(err, objstore.ErrExist) {
			return objstore.ObjectInfo{}, wrap(err)
		}
		// NoSuchUpload or PreconditionFailed may follow a first attempt
		// that succeeded but whose answer was lost (minio-go retries).
		info, herr := s.head(ctx, full)
		if herr != nil || !s.isResult(info, parts, opts) {
			if errors.Is(err, objstore.ErrExist) {
				err = existsError(key)
			}
			return objstore.ObjectInfo{}, wrap(err)
		}
		s.log.Info("upload was completed by a retried request", "key", full, "upload_id", uploadID)
	}
	s.log.Debug("upload completed", "key", full, "upload_id", uploadID, "parts", len(parts))
	info, err := s.head(ctx, full)
	if err != nil {
		return objstore.ObjectInfo{}, wrap(fmt.Errorf("head after completing: %w", err))
	}
	return s.applyMetadata(ctx, key, full, info, opts)
}

// Checksum headers of uploads created with ChecksumCRC32C.
const (
	headerChecksumAlgorithm = "x-amz-checksum-algorithm"
	headerChecksumCRC32C    = "X-Amz-Checksum-Crc32c"
)

// isCRC32C reports whether a part checksum is a CRC32C (4 bytes, base64)
// rather than an MD5 (16 bytes).
func isCRC32C(sum string) bool {
	b, err := base64.StdEncoding.DecodeString(sum)
	return err == nil && len(b) == 4
}

// errNoCRC32C explains a part answer whose x-amz-checksum-crc32c is not
// the one sent: missing means the server ignored the header (it verified
// nothing), different means the bytes it stored are not ours.
func errNoCRC32C(got, want string) error {
	if got == "" {
		return errors.New("the server did not confirm the part's CRC32C (x-amz-checksum-crc32c), so it may not verify checksums; set the S3 store's checksum to md5 for this server")
	}
	return fmt.Errorf("%w: server reports CRC32C %s, sent %s", objstore.ErrBadDigest, got, want)
}

func (s *Store) abortQuietly(ctx context.Context, full, uploadID string) {
	err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) error {
		return s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, full, uploadID)
	})
	if err != nil && !errors.Is(err, objstore.ErrNotExist) {
		s.log.Warn("abort of a completed upload's leftovers failed", "key", full, "upload_id", uploadID, "err", err)
	}
}

// isResult reports whether info is the object that completing parts with
// opts produces: same total size, and either the multipart ETag (MD5 of
// the parts' MD5s, "-N") or, after the metadata copy changed the ETag,
// all of opts.Metadata (which holds the content's SHA-256).
func (s *Store) isResult(info objstore.ObjectInfo, parts []objstore.Part, opts objstore.PutOptions) bool {
	var size int64
	for _, p := range parts {
		size += p.Size
	}
	if info.Size != size {
		return false
	}
	if et, ok := multipartETag(parts); ok && strings.EqualFold(info.ETag, et) {
		return true
	}
	return len(opts.Metadata) > 0 && hasMetadata(info.Metadata, opts.Metadata)
}

// multipartETag computes the ETag S3-compatible servers give a multipart
// object, when every part ETag is a plain MD5.
func multipartETag(parts []objstore.Part) (string, bool) {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(strings.Trim(p.ETag, `"`))
		if err != nil || len(b) != md5.Size {
			return "", false
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)), true
}

func hasMetadata(have, want map[string]string) bool {
	for k, v := range want {
		if have[strings.ToLower(k)] != v {
			return false
		}
	}
	return true
}

// applyMetadata makes the object carry opts.Metadata (and ContentType),
// copying it onto itself when it does not already.
func (s *Store) applyMetadata(ctx context.Context, key, full string, info objstore.ObjectInfo, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	sameType := opts.ContentType == "" || opts.ContentType == info.ContentType
	if hasMetadata(info.Metadata, opts.Metadata) && sameType {
		return info, nil
	}
	meta := make(map[string]string, len(info.Metadata)+len(opts.Metadata))
	maps.Copy(meta, info.Metadata)
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = v
	}
	ctype := info.ContentType
	if opts.ContentType != "" {
		ctype = opts.ContentType
	}
	var err error
	if info.Size <= s.copyThreshold {
		err = s.copySelf(ctx, full, info, meta, ctype)
	} else {
		err = s.copySelfMultipart(ctx, full, info, meta, ctype)
	}
	if errors.Is(err, objstore.ErrExist) {
		// 412 here is the copy's If-Match on the source: someone replaced
		// the object meanwhile. That is not "the key exists".
		err = fmt.Errorf("the object changed while its metadata was being set (ETag %s no longer current)", info.ETag)
	}
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: complete upload of %s: object stored, but setting its metadata failed (completing again retries): %w", key, err)
	}
	out, err := s.head(ctx, full)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: complete upload of %s: head after setting metadata: %w", key, err)
	}
	if !hasMetadata(out.Metadata, opts.Metadata) {
		return objstore.ObjectInfo{}, fmt.Errorf("s3: complete upload of %s: the server did not keep the metadata %v", key, opts.Metadata)
	}
	return out, nil
}

// copyHeaders are the headers of a self-copy that replaces metadata and
// only copies the object we looked at (If-Match on its ETag).
func copyHeaders(info objstore.ObjectInfo, meta map[string]string, ctype string) map[string]string {
	h := map[string]string{
		"x-amz-metadata-directive":   "REPLACE",
		"x-amz-copy-source-if-match": `"` + info.ETag + `"`,
	}
	if ctype != "" {
		h["Content-Type"] = ctype
	}
	for k, v := range meta {
		h["x-amz-meta-"+k] = v
	}
	return h
}

func (s *Store) copySelf(ctx context.Context, full string, info objstore.ObjectInfo, meta map[string]string, ctype string) error {
	return s.do(ctx, s.cfg.CompleteTimeout, func(ctx context.Context) error {
		_, err := s.core.CopyObject(ctx, s.cfg.Bucket, full, s.cfg.Bucket, full, copyHeaders(info, meta, ctype),
			minio.CopySrcOptions{}, minio.PutObjectOptions{})
		return err
	})
}

// copySelfMultipart replaces the metadata of an object above 5 GiB: a new
// upload with the metadata, parts copied server-side from the object in
// equal ranges (R2's rule holds for copies too), then completed over it.
func (s *Store) copySelfMultipart(ctx context.Context, full string, info objstore.ObjectInfo, meta map[string]string, ctype string) error {
	partSize := s.copyPartSize
	if need := (info.Size + objstore.MaxParts - 1) / objstore.MaxParts; partSize < need {
		partSize = need
	}
	n := int((info.Size + partSize - 1) / partSize)
	var id string
	err := s.do(ctx, s.cfg.RequestTimeout, func(ctx context.Context) (err error) {
		id, err = s.core.NewMultipartUpload(ctx, s.cfg.Bucket, full, minio.PutObjectOptions{ContentType: ctype, UserMetadata: meta})
		return err
	})
	if err != nil {
		return fmt.Errorf("create copy upload: %w", err)
	}
	parts := make([]minio.CompletePart, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	src := map[string]string{"x-amz-copy-source-if-match": `"` + info.ETag + `"`}
	for i := range n {
		start := int64(i) * partSize
		length := min(partSize, info.Size-start)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.do(ctx, s.cfg.CompleteTimeout, func(ctx context.Context) (err error) {
				parts[i], err = s.core.CopyObjectPart(ctx, s.cfg.Bucket, full, s.cfg.Bucket, full, id, i+1, start, length, src)
				return err
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.abortQuietly(context.WithoutCancel(ctx), full, id)
		return fmt.Errorf("copy parts: %w", err)
	}
	err = s.do(ctx, s.cfg.CompleteTimeout, func(ctx context.Context) error {
		_, err := s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, full, id, parts, minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		s.abortQuietly(context.WithoutCancel(ctx), full, id)
		return fmt.Errorf("complete copy upload: %w", err)
	}
	return nil
}

// ChecksumsParts reports that UploadPart computes and sends each part's
// checksum itself (objstore.PartChecksummer), so the Writer need not.
func (s *Store) ChecksumsParts() bool { return true }
