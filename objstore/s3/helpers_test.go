package s3

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// testServer is the S3 server scripts/test starts (versitygw).
type testServer struct{ testsupport.S3Server }

// server returns the test server, skipping when none is configured.
func server(t *testing.T) testServer { return testServer{testsupport.S3(t)} }

// newBucket creates a bucket with a random name, removed (with whatever
// is left in it) when the test ends.
func (ts testServer) newBucket(t *testing.T) string { return ts.NewBucket(t, "sluice-test") }

// config returns a Config for bucket on the test server.
func (ts testServer) config(bucket string) Config {
	c := NewConfig()
	c.Endpoint = ts.Endpoint
	c.Region = ts.Region
	c.Bucket = bucket
	c.Style = StylePath
	c.AccessKeyID = ts.AccessKey
	c.SecretAccessKey = ts.SecretKey
	return c
}

// newStore creates a bucket and a Store on it.
func newStore(t *testing.T) (*Store, testServer, string) {
	t.Helper()
	ts := server(t)
	bucket := ts.newBucket(t)
	s, err := New(context.Background(), ts.config(bucket), testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ts, bucket
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
