package s3

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// testServer is the S3 server scripts/test starts (versitygw).
type testServer struct {
	endpoint, access, secret, region string
}

// server returns the test server from SLUICE_TEST_S3_*, skipping only
// when SLUICE_TEST_S3_ENDPOINT is unset (scripts/test always sets it).
func server(t *testing.T) testServer {
	t.Helper()
	ep := os.Getenv("SLUICE_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("SLUICE_TEST_S3_ENDPOINT is unset: no S3 server (scripts/test starts versitygw and sets it)")
	}
	s := testServer{
		endpoint: ep,
		access:   os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"),
		secret:   os.Getenv("SLUICE_TEST_S3_SECRET_KEY"),
		region:   os.Getenv("SLUICE_TEST_S3_REGION"),
	}
	if s.access == "" || s.secret == "" {
		t.Fatal("SLUICE_TEST_S3_ENDPOINT is set but SLUICE_TEST_S3_ACCESS_KEY or SLUICE_TEST_S3_SECRET_KEY is not")
	}
	return s
}

// admin is a plain minio-go client for test setup and inspection,
// independent of the code under test.
func (ts testServer) admin(t *testing.T) *minio.Client {
	t.Helper()
	host := strings.TrimPrefix(strings.TrimPrefix(ts.endpoint, "http://"), "https://")
	c, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(ts.access, ts.secret, ""),
		Secure:       strings.HasPrefix(ts.endpoint, "https://"),
		Region:       ts.region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newBucket creates a bucket with a random name, removed (with whatever
// is left in it) when the test ends.
func (ts testServer) newBucket(t *testing.T) string {
	t.Helper()
	name := "sluice-test-" + randHex(t, 6)
	c := ts.admin(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: ts.region}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for u := range c.ListIncompleteUploads(ctx, name, "", true) {
			if u.Err == nil {
				_ = c.RemoveIncompleteUpload(ctx, name, u.Key)
			}
		}
		for o := range c.ListObjectsIter(ctx, name, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				_ = c.RemoveObject(ctx, name, o.Key, minio.RemoveObjectOptions{})
			}
		}
		if err := c.RemoveBucket(ctx, name); err != nil {
			t.Errorf("remove bucket %s: %v", name, err)
		}
	})
	return name
}

// config returns a Config for bucket on the test server.
func (ts testServer) config(bucket string) Config {
	c := NewConfig()
	c.Endpoint = ts.endpoint
	c.Region = ts.region
	c.Bucket = bucket
	c.Style = StylePath
	c.AccessKeyID = ts.access
	c.SecretAccessKey = ts.secret
	return c
}

// newStore creates a bucket and a Store on it.
func newStore(t *testing.T) (*Store, testServer, string) {
	t.Helper()
	ts := server(t)
	bucket := ts.newBucket(t)
	s, err := New(context.Background(), ts.config(bucket), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ts, bucket
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// recorder is a pass-through proxy that records request headers, to
// check what goes on the wire.
type recorder struct {
	url string
	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	method, url   string
	header        http.Header
	contentLength int64
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // SigV4 signed the proxy's host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.got = append(rec.got, recorded{r.Method, r.URL.String(), r.Header.Clone(), r.ContentLength})
		rec.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.got...)
}

// crc32cBase64 is the x-amz-checksum-crc32c of b.
func crc32cBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, castagnoli)))
}
