package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/faultproxy"
	"github.com/sluice-dev/sluice/objstore"
)

// source is a deterministic pseudo-random stream of n bytes.
func source(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

// TestWriterThroughFaults streams 55 MB through objstore.Writer into
// versitygw behind a proxy that breaks a quarter of the UploadPart calls
// (dropped connections, lost answers, 500s) and one Complete answer. The
// object must arrive whole: its SHA-256 equals the source's, in the data
// and in the metadata, and every part but the last has the same size.
func TestWriterThroughFaults(t *testing.T) {
	const size = 55<<20 + 12345
	const partSize = 5 << 20
	s, p := stallingStore(t, faultproxy.Faults{}, func(c *Config) {
		c.MaxRetries = 1 // no retries inside minio-go: the Writer's own must work
	})
	ctx := ctxT(t)

	var mu sync.Mutex
	var parts []objstore.Part
	w, err := objstore.NewWriter(ctx, s, "faults/dump.sql", objstore.WriterOptions{
		PartSize:    partSize,
		Concurrency: 4,
		MaxAttempts: 10,
		RetryBase:   10 * time.Millisecond,
		RetryMax:    200 * time.Millisecond,
		OnPart: func(p objstore.Part) {
			mu.Lock()
			parts = append(parts, p)
			mu.Unlock()
		},
	}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var completes int
	firstComplete := func(r *http.Request) bool {
		if !faultproxy.IsCompleteMultipart(r) {
			return false
		}
		completes++ // Match runs under the proxy's lock
		return completes == 1
	}
	if err := p.SetFaults(
		faultproxy.Faults{Match: firstComplete, DropResponseRate: 1},
		faultproxy.Faults{Match: faultproxy.IsUploadPart, DropRate: 0.1, DropResponseRate: 0.05, ErrorRate: 0.1},
	); err != nil {
		t.Fatal(err)
	}

	h := sha256.New()
	// Odd-sized writes, so parts are cut inside writes.
	if _, err := io.CopyBuffer(w, io.TeeReader(source(1, size), h), make([]byte, 333_333)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v (proxy %+v)", err, p.Stats())
	}
	want := hex.EncodeToString(h.Sum(nil))
	st := p.Stats()
	t.Logf("proxy: %+v", st)
	// The first Complete always loses its answer (the retry then finds
	// the object done); parts must have met some faults too.
	if st.Faulted() < 3 || st.DroppedResponse == 0 || completes == 0 {
		t.Fatalf("too few faults injected (%d completes): the test proves little", completes)
	}
	if w.SHA256() != want {
		t.Errorf("writer SHA-256 %s, source %s", w.SHA256(), want)
	}

	info, err := s.Head(ctx, "faults/dump.sql")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != size || info.Metadata[objstore.MetaSHA256] != want {
		t.Errorf("head: size %d, sha256 %q; want %d, %s", info.Size, info.Metadata[objstore.MetaSHA256], int64(size), want)
	}
	rc, _, err := s.Get(ctx, "faults/dump.sql", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	g := sha256.New()
	if _, err := io.Copy(g, rc); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(g.Sum(nil)); got != want {
		t.Fatalf("stored object SHA-256 %s, source %s", got, want)
	}

	// The R2 rule: all parts but the last have the same size.
	last := 0
	for _, p := range parts {
		last = max(last, p.Number)
	}
	if last != size/partSize+1 {
		t.Errorf("%d parts, want %d", last, size/partSize+1)
	}
	for _, p := range parts {
		if p.Number != last && p.Size != partSize {
			t.Errorf("non-final part %d has %d bytes, want %d", p.Number, p.Size, partSize)
		}
	}
	if ups, err := s.ListUploads(ctx, ""); err != nil || len(ups) != 0 {
		t.Errorf("uploads left: %v %v", ups, err)
	}
}

// plainStore hides the Store's PartChecksummer, as the Writer of a build
// before per-part CRC32C saw it: the Writer then computes Content-MD5s
// and creates its upload with ContentMD5Parts.
type plainStore struct{ objstore.Store }

// TestResumeUploadOfOlderBuild: a job checkpointed by a build that sent
// Content-MD5 (its upload has no checksum algorithm) is resumed after a
// deploy by this one. The resumed Writer must keep to Content-MD5 for
// that upload, and the object must complete whole.
func TestResumeUploadOfOlderBuild(t *testing.T) {
	for _, flagged := range []bool{true, false} {
		name := "state says ContentMD5Parts"
		if !flagged {
			name = "state from before the flag"
		}
		t.Run(name, func(t *testing.T) { testResumeMD5Upload(t, flagged) })
	}
}

func testResumeMD5Upload(t *testing.T, flagged bool) {
	s, _, _ := newStore(t)
	ctx := ctxT(t)
	const partSize = 5 << 20
	data, err := io.ReadAll(source(7, 3*partSize+100))
	if err != nil {
		t.Fatal(err)
	}
	old, err := objstore.NewWriter(ctx, plainStore{s}, "deploy/dump.sql", objstore.WriterOptions{PartSize: partSize, Concurrency: 1}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Write(data[:partSize+10]); err != nil {
		t.Fatal(err)
	}
	st, left, err := old.Suspend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Parts) != 1 || !st.ContentMD5Parts {
		t.Fatalf("suspended with %d parts, ContentMD5Parts %v; want 1, true", len(st.Parts), st.ContentMD5Parts)
	}
	// A build before the flag saved no ContentMD5Parts; its parts' MD5
	// checksums tell.
	st.ContentMD5Parts = flagged
	w, err := objstore.Resume(ctx, s, st, left, objstore.WriterOptions{PartSize: partSize, Concurrency: 1}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[partSize+10:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close after resuming an older build's upload: %v", err)
	}
	sum := sha256.Sum256(data)
	if w.SHA256() != hex.EncodeToString(sum[:]) || w.Info().Size != int64(len(data)) {
		t.Fatalf("object %d bytes, sha256 %s; want %d, %x", w.Info().Size, w.SHA256(), len(data), sum)
	}
}
