package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
)

// keepingStore keeps every part body it is given, as net/http may after
// RoundTrip returns, so a test can read them after the Writer is done.
type keepingStore struct {
	objstore.Store
	mu     sync.Mutex
	bodies []io.ReadSeeker
}

func (s *keepingStore) UploadPart(ctx context.Context, key, id string, n int, r io.Reader, size int64, sum string) (objstore.Part, error) {
	s.mu.Lock()
	s.bodies = append(s.bodies, r.(io.ReadSeeker))
	s.mu.Unlock()
	return s.Store.UploadPart(ctx, key, id, n, r, size, sum)
}

// TestWriterBuffersReleased checks that a Writer gives its part buffers
// back however it ends, and that a body a store kept reads nothing once
// its buffer went back (a read of an unmapped buffer would crash the
// test).
func TestWriterBuffersReleased(t *testing.T) {
	const part = 64 << 10
	data := make([]byte, 5*part+123)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		end  func(*objstore.Writer, objstore.Store, string) error
	}{
		{"close", len(data), func(w *objstore.Writer, _ objstore.Store, _ string) error { return w.Close() }},
		{"close small", 100, func(w *objstore.Writer, _ objstore.Store, _ string) error { return w.Close() }},
		{"abort", len(data), func(w *objstore.Writer, _ objstore.Store, _ string) error { return w.Abort(ctx) }},
		{"suspend", len(data), func(w *objstore.Writer, _ objstore.Store, _ string) error { _, _, err := w.Suspend(ctx); return err }},
		{"failed close", len(data), func(w *objstore.Writer, st objstore.Store, key string) error {
			// The key exists, so Complete fails; no Abort follows.
			w2, err := objstore.NewWriter(ctx, st, key, objstore.WriterOptions{}, testsupport.Logger(t))
			if err != nil {
				return err
			}
			if err := w2.Close(); err != nil {
				return err
			}
			if err := w.Close(); err == nil {
				t.Error("Close over an existing object succeeded")
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &keepingStore{Store: newFileStore(t, objstore.Limits{MinPartSize: part})}
			w, err := objstore.NewWriter(ctx, st, "k/"+tc.name, objstore.WriterOptions{PartSize: part, Concurrency: 2, Limits: objstore.Limits{MinPartSize: part}},
				testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data[:tc.size]); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(w, st.Store, "k/"+tc.name); err != nil {
				t.Fatal(err)
			}
			if n, m := w.Buffers(); n != 0 || m != 0 {
				t.Fatalf("%d buffers held, %d mapped after the Writer ended; want none", n, m)
			}
			for i, b := range st.bodies {
				if _, err := b.Seek(0, io.SeekStart); err == nil {
					t.Errorf("body %d: seek after its request succeeded", i)
				}
				if n, err := b.Read(make([]byte, 10)); n != 0 || err == nil || err == io.EOF {
					t.Errorf("body %d: read %d bytes (%v) after its request ended", i, n, err)
				}
			}
			if tc.name == "close" {
				rc, _, err := st.Get(ctx, "k/close", 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(got, data) {
					t.Fatalf("object has %d bytes, not the %d written", len(got), len(data))
				}
			}
		})
	}
}

// TestWriterHeapFallback runs a Writer whose buffers cannot be mapped.
func TestWriterHeapFallback(t *testing.T) {
	objstore.FailMmap(t)
	const part = 64 << 10
	st := newFileStore(t, objstore.Limits{MinPartSize: part})
	w, err := objstore.NewWriter(context.Background(), st, "fallback", objstore.WriterOptions{PartSize: part},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("fallback"), part)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, m := w.Buffers(); m != 0 {
		t.Fatalf("%d buffers mapped although mapping fails", m)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Info().Size != int64(len(data)) {
		t.Fatalf("object has %d bytes, want %d", w.Info().Size, len(data))
	}
}
