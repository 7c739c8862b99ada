package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice/objstore"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: Config{},
		},
		{
			name: "all set, S3-specific endpoint wins",
			env: map[string]string{
				"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOK",
				"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2",
				"AWS_ENDPOINT_URL": "https://generic.example", "AWS_ENDPOINT_URL_S3": "https://s3.example",
			},
			want: Config{AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "TOK", Region: "eu-west-1", Endpoint: "https://s3.example"},
		},
		{
			name: "fallbacks",
			env:  map[string]string{"AWS_DEFAULT_REGION": "auto", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"},
			want: Config{Region: "auto", Endpoint: "http://127.0.0.1:9000"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := configFromLookup(func(k string) string { return tc.env[k] })
			if got.AccessKeyID != tc.want.AccessKeyID || got.SecretAccessKey != tc.want.SecretAccessKey ||
				got.SessionToken != tc.want.SessionToken || got.Region != tc.want.Region || got.Endpoint != tc.want.Endpoint {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.Style != StyleAuto || got.IdleTimeout == 0 || got.RequestTimeout == 0 || got.MaxRetries == 0 {
				t.Errorf("defaults missing: %+v", got)
			}
		})
	}
}

func TestConfigEndpoint(t *testing.T) {
	tests := []struct {
		endpoint   string
		disableTLS bool
		host       string
		secure     bool
		bad        bool
	}{
		{"", false, "s3.amazonaws.com", true, false},
		{"https://acct.r2.cloudflarestorage.com", false, "acct.r2.cloudflarestorage.com", true, false},
		{"http://127.0.0.1:9000", false, "127.0.0.1:9000", false, false},
		{"http://127.0.0.1:9000/", false, "127.0.0.1:9000", false, false},
		{"minio.local:9000", true, "minio.local:9000", false, false},
		{"minio.local:9000", false, "minio.local:9000", true, false},
		{"ftp://x", false, "", false, true},
		{"https://host/bucket", false, "", false, true},
		{"host/path", false, "", false, true},
		{"https://", false, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			host, secure, err := Config{Endpoint: tc.endpoint, DisableTLS: tc.disableTLS}.endpoint()
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted, host %q", host)
				}
				return
			}
			if err != nil || host != tc.host || secure != tc.secure {
				t.Errorf("got %q %v %v, want %q %v", host, secure, err, tc.host, tc.secure)
			}
		})
	}
}

func TestKeysWithPrefix(t *testing.T) {
	s := &Store{cfg: Config{Prefix: "backups/team"}}
	full, err := s.objectKey("db/1.sql")
	if err != nil || full != "backups/team/db/1.sql" || s.relKey(full) != "db/1.sql" {
		t.Errorf("objectKey = %q, %v", full, err)
	}
	if _, err := s.objectKey(strings.Repeat("k", objstore.MaxKeyLen-5)); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("a key too long once prefixed: %v", err)
	}
	for _, bad := range []string{"", "../x", "a//b", "/abs"} {
		if _, err := s.objectKey(bad); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("objectKey(%q) = %v", bad, err)
		}
	}
	if p, err := s.listPrefix(""); err != nil || p != "backups/team/" {
		t.Errorf("listPrefix(\"\") = %q, %v", p, err)
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		resp      minio.ErrorResponse
		kind      error
		retryable bool
	}{
		{minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, objstore.ErrNotExist, false},
		{minio.ErrorResponse{Code: "NoSuchUpload", StatusCode: 404}, objstore.ErrNotExist, false},
		{minio.ErrorResponse{Code: "NoSuchBucket", StatusCode: 404}, objstore.ErrNotExist, false},
		{minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, objstore.ErrAccessDenied, false},
		{minio.ErrorResponse{Code: "SignatureDoesNotMatch", StatusCode: 403}, objstore.ErrAccessDenied, false},
		{minio.ErrorResponse{Code: "InvalidAccessKeyId", StatusCode: 403}, objstore.ErrAccessDenied, false},
		{minio.ErrorResponse{Code: "EntityTooSmall", StatusCode: 400}, objstore.ErrPartTooSmall, false},
		{minio.ErrorResponse{Code: "PreconditionFailed", StatusCode: 412}, objstore.ErrExist, false},
		{minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, nil, true},
		{minio.ErrorResponse{Code: "503 Service Unavailable", StatusCode: 503}, nil, true},
		{minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, nil, true},
		{minio.ErrorResponse{Code: "TooManyRequests", StatusCode: 429}, nil, true},
		{minio.ErrorResponse{Code: "RequestTimeout", StatusCode: 400}, nil, true},
		{minio.ErrorResponse{Code: "InvalidPart", StatusCode: 400}, objstore.ErrNotExist, false},
		{minio.ErrorResponse{Code: "BadDigest", StatusCode: 400}, objstore.ErrBadDigest, true},
		{minio.ErrorResponse{Code: "InvalidDigest", StatusCode: 400}, objstore.ErrBadDigest, true},
	}
	bg := context.Background()
	for _, tc := range tests {
		t.Run(tc.resp.Code, func(t *testing.T) {
			err := classify(bg, bg, "http://x", tc.resp)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T %v", err, err)
			}
			if objstore.IsRetryable(err) != tc.retryable {
				t.Errorf("retryable %v, want %v", objstore.IsRetryable(err), tc.retryable)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("%v is not %v", err, tc.kind)
			}
			for _, k := range []error{objstore.ErrNotExist, objstore.ErrAccessDenied, objstore.ErrPartTooSmall, objstore.ErrExist, objstore.ErrBadDigest} {
				if k != tc.kind && errors.Is(err, k) {
					t.Errorf("%v is also %v", err, k)
				}
			}
			var mr minio.ErrorResponse
			if !errors.As(err, &mr) {
				t.Error("the minio-go error is not reachable")
			}
		})
	}
	// Transport failures are retryable; a caller's cancellation is not a
	// server failure and keeps its identity.
	if err := classify(bg, bg, "http://x", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}); !objstore.IsRetryable(err) {
		t.Error("network error not retryable")
	}
	cctx, cancel := context.WithCancel(bg)
	cancel()
	if err := classify(cctx, cctx, "http://x", context.Canceled); !errors.Is(err, context.Canceled) || objstore.IsRetryable(err) {
		t.Errorf("cancellation lost: %v", err)
	}
}

func TestObjectsRoundTrip(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	data := randBytes(t, 100_000)
	info, err := s.Put(ctx, "dir/a.bin", bytes.NewReader(data), int64(len(data)),
		objstore.PutOptions{ContentType: "application/x-test", Metadata: map[string]string{"Job": "j1"}})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if info.Size != int64(len(data)) || info.ETag != hex.EncodeToString(sum[:]) || info.Key != "dir/a.bin" {
		t.Errorf("put info %+v", info)
	}
	if info.Metadata["job"] != "j1" || info.ContentType != "application/x-test" {
		t.Errorf("metadata %v, content type %q", info.Metadata, info.ContentType)
	}

	ranges := []struct{ off, n int64 }{{0, -1}, {0, 10}, {99_990, -1}, {500, 1000}, {99_999, 1}, {12, 0}}
	for _, r := range ranges {
		rc, gi, err := s.Get(ctx, "dir/a.bin", r.off, r.n)
		if err != nil {
			t.Fatalf("get %+v: %v", r, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		end := int64(len(data))
		if r.n >= 0 {
			end = r.off + r.n
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Errorf("range %+v: %d bytes, wrong content", r, len(got))
		}
		if gi.Size != int64(len(data)) {
			t.Errorf("range %+v: size %d, want the whole object's", r, gi.Size)
		}
	}
	if _, _, err := s.Get(ctx, "dir/a.bin", 200_000, 10); err == nil {
		t.Error("range past the end accepted")
	}

	// Non-seekable readers are buffered and still checksummed.
	if _, err := s.Put(ctx, "dir/b.bin", io.LimitReader(bytes.NewReader(data), 5000), 5000, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A short reader is an error, not a truncated object.
	if _, err := s.Put(ctx, "dir/short", bytes.NewReader(data[:10]), 20, objstore.PutOptions{}); err == nil {
		t.Error("short body accepted")
	}
	if _, err := s.Put(ctx, "other", bytes.NewReader(nil), 0, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	list, err := s.List(ctx, "dir/")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Key != "dir/a.bin" || list[1].Key != "dir/b.bin" || list[1].Size != 5000 {
		t.Errorf("list %+v", list)
	}

	u, err := s.PresignGet(ctx, "dir/a.bin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("presigned GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	if _, err := s.PresignGet(ctx, "dir/a.bin", 8*24*time.Hour); err == nil {
		t.Error("8-day presign accepted")
	}

	if err := s.Delete(ctx, "dir/a.bin"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "dir/a.bin"); err != nil {
		t.Errorf("deleting a missing object: %v", err)
	}
	if _, err := s.Head(ctx, "dir/a.bin"); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("head after delete: %v", err)
	}
	if _, _, err := s.Get(ctx, "dir/a.bin", 0, -1); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("get after delete: %v", err)
	}

	if _, err := s.Put(ctx, "other", bytes.NewReader(data[:5]), 5, objstore.PutOptions{NoOverwrite: true}); !errors.Is(err, objstore.ErrExist) {
		t.Errorf("put NoOverwrite over an object: %v", err)
	}
}

func TestPrefixIsolatesKeys(t *testing.T) {
	ts := server(t)
	bucket := ts.newBucket(t)
	ctx := ctxT(t)
	cfg := ts.config(bucket)
	cfg.Prefix = "/team/a/"
	s, err := New(ctx, cfg, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "x/1", strings.NewReader("one"), 3, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateMultipart(ctx, "x/2", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Admin(t).StatObject(ctx, bucket, "team/a/x/1", minio.StatObjectOptions{}); err != nil {
		t.Errorf("object not stored under the prefix: %v", err)
	}
	list, err := s.List(ctx, "")
	if err != nil || len(list) != 1 || list[0].Key != "x/1" {
		t.Errorf("list %+v %v", list, err)
	}
	ups, err := s.ListUploads(ctx, "x/")
	if err != nil || len(ups) != 1 || ups[0].Key != "x/2" || ups[0].UploadID != id {
		t.Errorf("uploads %+v %v", ups, err)
	}
}

// upload uploads data in parts of partSize and returns the parts.
func upload(t *testing.T, s *Store, key, id string, data []byte, partSize int) []objstore.Part {
	t.Helper()
	var parts []objstore.Part
	for n, off := 1, 0; off < len(data); n, off = n+1, off+partSize {
		end := min(off+partSize, len(data))
		p, err := s.UploadPart(ctxT(t), key, id, n, bytes.NewReader(data[off:end]), int64(end-off), "")
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		sum := md5.Sum(data[off:end])
		want := base64.StdEncoding.EncodeToString(sum[:])
		if s.cfg.Checksum == ChecksumCRC32C {
			want = crc32cBase64(data[off:end])
		}
		if p.Number != n || p.Size != int64(end-off) || p.ETag != hex.EncodeToString(sum[:]) || p.Checksum != want {
			t.Fatalf("part %+v, want checksum %s", p, want)
		}
		parts = append(parts, p)
	}
	return parts
}

func TestMultipartWithMetadataAtComplete(t *testing.T) {
	for _, small := range []bool{false, true} {
		name := "copy"
		if small {
			name = "multipart-copy"
		}
		t.Run(name, func(t *testing.T) {
			s, _, _ := newStore(t)
			if small {
				// Exercise the >5 GiB path (UploadPartCopy) on a small object.
				s.copyThreshold, s.copyPartSize = 6<<20, 5<<20
			}
			ctx := ctxT(t)
			data := randBytes(t, 12<<20+123)
			key := "db/dump.sql"
			id, err := s.CreateMultipart(ctx, key, objstore.PutOptions{ContentType: "application/sql", Metadata: map[string]string{"job": "42"}})
			if err != nil {
				t.Fatal(err)
			}
			ups, err := s.ListUploads(ctx, "db/")
			if err != nil || len(ups) != 1 || ups[0].UploadID != id || ups[0].Key != key {
				t.Fatalf("uploads %+v %v", ups, err)
			}
			parts := upload(t, s, key, id, data, 5<<20)
			listed, err := s.ListParts(ctx, key, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(listed) != len(parts) {
				t.Fatalf("listed %d parts, uploaded %d", len(listed), len(parts))
			}
			for i := range parts {
				if listed[i].Number != parts[i].Number || listed[i].Size != parts[i].Size || listed[i].ETag != parts[i].ETag {
					t.Errorf("listed %+v, uploaded %+v", listed[i], parts[i])
				}
			}
			sum := sha256.Sum256(data)
			meta := map[string]string{"sha256": hex.EncodeToString(sum[:])}
			info, err := s.CompleteMultipart(ctx, key, id, parts, objstore.PutOptions{Metadata: meta, NoOverwrite: true})
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(data)) || info.Metadata["sha256"] != meta["sha256"] || info.Metadata["job"] != "42" ||
				info.ContentType != "application/sql" {
				t.Errorf("info %+v", info)
			}
			rc, _, err := s.Get(ctx, key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("content differs (%d bytes read)", len(got))
			}
			if ups, _ := s.ListUploads(ctx, ""); len(ups) != 0 {
				t.Errorf("uploads left: %+v", ups)
			}
			// Completing again (a retry after a lost answer) succeeds and
			// changes nothing.
			again, err := s.CompleteMultipart(ctx, key, id, parts, objstore.PutOptions{Metadata: meta, NoOverwrite: true})
			if err != nil || again.ETag != info.ETag {
				t.Errorf("repeated complete: %+v %v", again, err)
			}
		})
	}
}

func TestCompleteRefusesOverwrite(t *testing.T) {
	for _, conditional := range []bool{true, false} {
		t.Run(map[bool]string{true: "if-none-match", false: "head-check"}[conditional], func(t *testing.T) {
			s, _, _ := newStore(t)
			s.cfg.DisableConditionalWrites = !conditional
			ctx := ctxT(t)
			if _, err := s.Put(ctx, "k", strings.NewReader("existing"), 8, objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			id, err := s.CreateMultipart(ctx, "k", objstore.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			parts := upload(t, s, "k", id, randBytes(t, 1000), 1000)
			_, err = s.CompleteMultipart(ctx, "k", id, parts, objstore.PutOptions{NoOverwrite: true})
			if !errors.Is(err, objstore.ErrExist) {
				t.Fatalf("complete over an existing object: %v", err)
			}
			rc, _, err := s.Get(ctx, "k", 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != "existing" {
				t.Errorf("object replaced: %q", got)
			}
			if err := s.AbortMultipart(ctx, "k", id); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ListParts(ctx, "k", id); !errors.Is(err, objstore.ErrNotExist) {
				t.Errorf("list parts after abort: %v", err)
			}
			if err := s.AbortMultipart(ctx, "k", id); !errors.Is(err, objstore.ErrNotExist) {
				t.Errorf("second abort: %v", err)
			}
		})
	}
}

// The If-None-Match header itself (not the HEAD pre-check) stops the
// overwrite: versitygw enforces it on CompleteMultipartUpload.
func TestConditionalCompleteEnforcedByServer(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	id, err := s.CreateMultipart(ctx, "k", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := upload(t, s, "k", id, randBytes(t, 1000), 1000)
	// The object appears after the pre-check would have run.
	if _, err := s.Put(ctx, "k", strings.NewReader("racer"), 5, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var mopts minio.PutObjectOptions
	mopts.SetMatchETagExcept("*")
	_, err = s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, "k", id,
		[]minio.CompletePart{{PartNumber: 1, ETag: parts[0].ETag}}, mopts)
	if err = classify(ctx, ctx, s.endpoint, err); !errors.Is(err, objstore.ErrExist) {
		t.Fatalf("server ignored If-None-Match on complete: %v", err)
	}
}

// The real server verifies the checksum each part carries: a wrong
// Content-MD5 (given by the caller) and a wrong CRC32C are both refused as
// ErrBadDigest, which the Writer retries; the right ones are accepted and
// the part reports the store's checksum.
func TestWrongChecksumIsBadDigest(t *testing.T) {
	for _, algo := range []ChecksumAlgorithm{ChecksumCRC32C, ChecksumMD5} {
		t.Run(string(algo), func(t *testing.T) {
			ts := server(t)
			cfg := ts.config(ts.newBucket(t))
			cfg.Checksum = algo
			s, err := New(context.Background(), cfg, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			// Parts given a Content-MD5 by the caller go into an upload
			// created for them (ContentMD5Parts).
			md5ID, err := s.CreateMultipart(ctx, "d", objstore.PutOptions{ContentMD5Parts: true})
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.CreateMultipart(ctx, "e", objstore.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			data := randBytes(t, 1000)
			wrong := md5.Sum(append([]byte{1}, data...))
			_, err = s.UploadPart(ctx, "d", md5ID, 1, bytes.NewReader(data), 1000, base64.StdEncoding.EncodeToString(wrong[:]))
			if !errors.Is(err, objstore.ErrBadDigest) || !objstore.IsRetryable(err) {
				t.Fatalf("part with a wrong Content-MD5: %v", err)
			}
			right := md5.Sum(data)
			if p, err := s.UploadPart(ctx, "d", md5ID, 1, bytes.NewReader(data), 1000, base64.StdEncoding.EncodeToString(right[:])); err != nil || p.Checksum != base64.StdEncoding.EncodeToString(right[:]) {
				t.Fatalf("part with the right Content-MD5 %+v: %v", p, err)
			}
			want := base64.StdEncoding.EncodeToString(right[:])
			if algo == ChecksumCRC32C {
				want = crc32cBase64(data)
				// A wrong CRC32C, sent the way UploadPart sends the right one.
				_, err := s.core.PutObjectPart(ctx, s.cfg.Bucket, "e", id, 1, bytes.NewReader(data), 1000, minio.PutObjectPartOptions{
					DisableContentSha256: true,
					CustomHeader:         http.Header{headerChecksumCRC32C: {crc32cBase64(data[1:])}},
				})
				err = classify(ctx, ctx, s.endpoint, err)
				if !errors.Is(err, objstore.ErrBadDigest) || !objstore.IsRetryable(err) {
					t.Fatalf("part with a wrong CRC32C: %v", err)
				}
			}
			p, err := s.UploadPart(ctx, "e", id, 1, bytes.NewReader(data), 1000, "")
			if err != nil || p.Checksum != want {
				t.Fatalf("part %+v (want checksum %s): %v", p, want, err)
			}
		})
	}
}

func TestSmallNonFinalPartRefused(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	id, err := s.CreateMultipart(ctx, "small", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := upload(t, s, "small", id, randBytes(t, 2<<20), 1<<20) // two 1 MiB parts
	_, err = s.CompleteMultipart(ctx, "small", id, parts, objstore.PutOptions{})
	if !errors.Is(err, objstore.ErrPartTooSmall) {
		t.Fatalf("complete with a 1 MiB non-final part: %v", err)
	}
	if _, err := s.Head(ctx, "small"); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("object created anyway: %v", err)
	}
}

func TestWireFormat(t *testing.T) {
	// What goes on the wire for a part: one chunk with an unsigned payload
	// and a signed x-amz-checksum-crc32c header (the upload was created
	// with x-amz-checksum-algorithm), no aws-chunked encoding and no
	// checksum trailer.
	ts := server(t)
	bucket := ts.newBucket(t)
	ctx := ctxT(t)
	rec := newRecorder(t, ts.Endpoint)
	cfg := ts.config(bucket)
	cfg.Endpoint = rec.url
	s, err := New(ctx, cfg, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateMultipart(ctx, "w", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 6<<20)
	parts := upload(t, s, "w", id, data, 6<<20)
	if _, err := s.CompleteMultipart(ctx, "w", id, parts, objstore.PutOptions{NoOverwrite: true, Metadata: map[string]string{"sha256": "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "p", bytes.NewReader(data[:100]), 100, objstore.PutOptions{NoOverwrite: true}); err != nil {
		t.Fatal(err)
	}
	var sawPart, sawComplete, sawPut bool
	for _, r := range rec.requests() {
		h := r.header
		if enc := h.Get("Content-Encoding") + h.Get("X-Amz-Decoded-Content-Length") + h.Get("X-Amz-Trailer"); enc != "" {
			t.Errorf("%s %s: chunked/trailer headers %q", r.method, r.url, enc)
		}
		if strings.HasPrefix(h.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			t.Errorf("%s %s: streaming signature %s", r.method, r.url, h.Get("X-Amz-Content-Sha256"))
		}
		for k := range h {
			lk := strings.ToLower(k)
			allowed := lk == "x-amz-checksum-crc32c" || lk == "x-amz-checksum-algorithm"
			if (strings.HasPrefix(lk, "x-amz-checksum") && !allowed) || strings.HasPrefix(lk, "x-amz-sdk-checksum") {
				t.Errorf("%s %s: checksum header %s", r.method, r.url, k)
			}
		}
		switch {
		case r.method == http.MethodPut && strings.Contains(r.url, "partNumber=") && h.Get("X-Amz-Copy-Source") == "":
			sawPart = true
			if h.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
				t.Errorf("part payload: X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", h.Get("X-Amz-Content-Sha256"))
			}
			if got := h.Get("X-Amz-Checksum-Crc32c"); got != crc32cBase64(data) {
				t.Errorf("part CRC32C %q, want %q", got, crc32cBase64(data))
			}
			if !strings.Contains(h.Get("Authorization"), "x-amz-checksum-crc32c") {
				t.Errorf("the part's CRC32C header is not signed: %s", h.Get("Authorization"))
			}
		case r.method == http.MethodPost && strings.HasSuffix(r.url, "?uploads"):
			if h.Get("X-Amz-Checksum-Algorithm") != "CRC32C" {
				t.Errorf("create upload: x-amz-checksum-algorithm %q", h.Get("X-Amz-Checksum-Algorithm"))
			}
			if r.contentLength != int64(len(data)) {
				t.Errorf("part Content-Length %d", r.contentLength)
			}
		case r.method == http.MethodPost && strings.Contains(r.url, "uploadId="):
			sawComplete = true
			if h.Get("If-None-Match") != "*" {
				t.Errorf("complete without If-None-Match: *")
			}
		case r.method == http.MethodPut && strings.HasSuffix(r.url, "/p"):
			sawPut = true
			if h.Get("If-None-Match") != "*" || h.Get("Content-Md5") == "" || len(h.Get("X-Amz-Content-Sha256")) != 64 {
				t.Errorf("put headers %v", h)
			}
		}
	}
	if !sawPart || !sawComplete || !sawPut {
		t.Errorf("requests not seen: part %v complete %v put %v", sawPart, sawComplete, sawPut)
	}
}

// Pages of 3 split the uploads of one key across a page boundary, where
// versitygw refuses the upload-id-marker it returned; no upload may be
// lost or repeated, and ListParts must follow its pages too.
func TestListPagesAcrossOneKey(t *testing.T) {
	s, _, _ := newStore(t)
	s.listPage = 3
	ctx := ctxT(t)
	want := map[string]string{}
	for _, k := range []string{"p/a", "p/b", "p/b", "p/b", "p/b", "p/c", "p/d", "p/d"} {
		id, err := s.CreateMultipart(ctx, k, objstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = k
	}
	ups, err := s.ListUploads(ctx, "p/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range ups {
		if _, dup := got[u.UploadID]; dup {
			t.Errorf("upload %s listed twice", u.UploadID)
		}
		got[u.UploadID] = u.Key
	}
	if len(got) != len(want) {
		t.Errorf("listed %d uploads, want %d: %v", len(got), len(want), ups)
	}
	for id, k := range want {
		if got[id] != k {
			t.Errorf("upload %s of %s: listed as %q", id, k, got[id])
		}
	}

	var id string
	for i, k := range want {
		if k == "p/a" {
			id = i
		}
	}
	data := randBytes(t, 7)
	for n := 1; n <= 7; n++ {
		if _, err := s.UploadPart(ctx, "p/a", id, n, bytes.NewReader(data[n-1:n]), 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := s.ListParts(ctx, "p/a", id)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 7 {
		t.Fatalf("listed %d parts, want 7", len(parts))
	}
	for i, p := range parts {
		if p.Number != i+1 || p.Size != 1 {
			t.Errorf("part %d: %+v", i+1, p)
		}
	}
}
