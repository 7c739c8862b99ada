package s3

import (
	"bytes"
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/faultproxy"
	"github.com/sluice-dev/sluice/objstore"
)

func TestNewBadInput(t *testing.T) {
	ts := server(t)
	bucket := ts.newBucket(t)

	// A port that was free a moment ago: connections to it are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name   string
		mutate func(*Config)
		is     error  // errors.Is target, if any
		words  string // the message must name the cause
	}{
		{"missing bucket", func(c *Config) { c.Bucket = "no-such-bucket-" + randHex(t, 4) }, objstore.ErrNotExist, "does not exist"},
		{"wrong secret", func(c *Config) { c.SecretAccessKey = "wrong" }, objstore.ErrAccessDenied, ""},
		{"unknown access key", func(c *Config) { c.AccessKeyID = "nobody" }, objstore.ErrAccessDenied, ""},
		{"unreachable endpoint", func(c *Config) { c.Endpoint = closed }, nil, "connection refused"},
		{"no credentials", func(c *Config) { c.AccessKeyID, c.SecretAccessKey = "", "" }, nil, "AWS_ACCESS_KEY_ID"},
		{"no bucket", func(c *Config) { c.Bucket = "" }, nil, "no bucket"},
		{"endpoint with path", func(c *Config) { c.Endpoint += "/bucket" }, nil, "scheme://host"},
		{"bad style", func(c *Config) { c.Style = "sideways" }, nil, "addressing style"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ts.config(bucket)
			tc.mutate(&cfg)
			start := time.Now()
			s, err := New(context.Background(), cfg, testsupport.Logger(t))
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			t.Logf("error: %v", err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to fail", d)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("not %v", tc.is)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("message does not say %q", tc.words)
			}
			if strings.Contains(tc.name, "bucket") && tc.is != nil && !strings.Contains(err.Error(), cfg.Bucket) {
				t.Errorf("message does not name the bucket %q", cfg.Bucket)
			}
		})
	}
}

func TestOperationsRejectBadKeys(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	for _, key := range []string{"", "/abs", "a/../../etc", "nul\x00", `a\b`} {
		_, err1 := s.Put(ctx, key, strings.NewReader("x"), 1, objstore.PutOptions{})
		_, err2 := s.CreateMultipart(ctx, key, objstore.PutOptions{})
		_, _, err3 := s.Get(ctx, key, 0, -1)
		_, err4 := s.PresignGet(ctx, key, time.Minute)
		for i, err := range []error{err1, err2, err3, err4} {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("key %q, op %d: %v", key, i, err)
			}
		}
	}
}

// stallingStore is a Store whose requests pass through a fault proxy.
func stallingStore(t *testing.T, f faultproxy.Faults, tweak func(*Config)) (*Store, *faultproxy.Proxy) {
	t.Helper()
	ts := server(t)
	bucket := ts.newBucket(t)
	p, err := faultproxy.New(ts.Endpoint, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cfg := ts.config(bucket)
	cfg.Endpoint = p.URL()
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(context.Background(), cfg, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := p.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestCancelDuringUpload(t *testing.T) {
	s, p := stallingStore(t, faultproxy.Faults{Match: faultproxy.IsUploadPart, StallRate: 1}, nil)
	ctx := ctxT(t)
	id, err := s.CreateMultipart(ctx, "c", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	var cancelled time.Time
	go func() {
		// Cancel once the part is held up at the proxy.
		for p.Stats().Stalled == 0 && cctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancelled = time.Now()
		cancel()
	}()
	_, err = s.UploadPart(cctx, "c", id, 1, bytes.NewReader(randBytes(t, 6<<20)), 6<<20, "")
	returned := time.Now()
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := returned.Sub(cancelled); d > 2*time.Second {
		t.Errorf("returned %v after cancellation", d)
	}
	if objstore.IsRetryable(err) {
		t.Errorf("a caller's cancellation reported as retryable: %v", err)
	}
	if p.Stats().Stalled == 0 {
		t.Error("the proxy never stalled a part")
	}
}

func TestStalledTransferTimesOut(t *testing.T) {
	s, _ := stallingStore(t, faultproxy.Faults{Match: faultproxy.IsUploadPart, StallRate: 1}, func(c *Config) {
		c.IdleTimeout = 500 * time.Millisecond
		c.MaxRetries = 1
	})
	ctx := ctxT(t)
	id, err := s.CreateMultipart(ctx, "s", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.UploadPart(ctx, "s", id, 1, bytes.NewReader(randBytes(t, 6<<20)), 6<<20, "")
	if !objstore.IsRetryable(err) || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("err %v, want a retryable no-progress timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func TestRequestTimeout(t *testing.T) {
	s, _ := stallingStore(t, faultproxy.Faults{StallRate: 1}, func(c *Config) {
		c.RequestTimeout = 400 * time.Millisecond
	})
	start := time.Now()
	_, err := s.Head(context.Background(), "anything")
	if !objstore.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// Parts survive dropped connections and 500s: minio-go retries them
// (seeking the body back) and the content arrives intact.
func TestPartsSurviveFaults(t *testing.T) {
	s, p := stallingStore(t, faultproxy.Faults{Match: faultproxy.IsUploadPart, DropRate: 0.2, ErrorRate: 0.2, DropResponseRate: 0.1}, func(c *Config) {
		c.MaxRetries = 10
	})
	ctx := ctxT(t)
	data := randBytes(t, 8*(5<<20))
	id, err := s.CreateMultipart(ctx, "f", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := upload(t, s, "f", id, data, 5<<20)
	if _, err := s.CompleteMultipart(ctx, "f", id, parts, objstore.PutOptions{NoOverwrite: true}); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	t.Logf("proxy: %+v", st)
	if st.Faulted() == 0 {
		t.Error("no faults were injected")
	}
	rc, _, err := s.Get(ctx, "f", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("content differs")
	}
}

// A Complete whose answer is lost is retried by minio-go; the retry finds
// the upload gone and the object in place, and succeeds.
func TestCompleteSurvivesLostAnswer(t *testing.T) {
	var completes atomic.Int64
	firstComplete := func(r *http.Request) bool {
		return faultproxy.IsCompleteMultipart(r) && completes.Add(1) == 1
	}
	s, p := stallingStore(t, faultproxy.Faults{Match: firstComplete, DropResponseRate: 1}, nil)
	ctx := ctxT(t)
	data := randBytes(t, 6<<20)
	id, err := s.CreateMultipart(ctx, "lost", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := upload(t, s, "lost", id, data, 5<<20)
	info, err := s.CompleteMultipart(ctx, "lost", id, parts, objstore.PutOptions{NoOverwrite: true, Metadata: map[string]string{"sha256": "abc"}})
	if err != nil {
		t.Fatalf("complete after a lost answer: %v", err)
	}
	if info.Size != int64(len(data)) || info.Metadata["sha256"] != "abc" {
		t.Errorf("info %+v", info)
	}
	if st := p.Stats(); st.DroppedResponse != 1 || completes.Load() < 2 {
		t.Errorf("proxy %+v, %d completes: the lost-answer path was not exercised", st, completes.Load())
	}
}
