package objstore

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// failMmap makes mapping fail for the rest of the test: buffers come from
// the heap, as on a platform without mmap.
func failMmap(t *testing.T) {
	t.Helper()
	old := mapBuf
	mapBuf = func(int) ([]byte, error) { return nil, errors.New("no mmap") }
	t.Cleanup(func() { mapBuf = old })
}

// countUnmaps counts unmapBuf calls for the rest of the test.
func countUnmaps(t *testing.T) *int {
	t.Helper()
	old := unmapBuf
	n := new(int)
	unmapBuf = func(b []byte) error { *n++; return old(b) }
	t.Cleanup(func() { unmapBuf = old })
	return n
}

func TestPartBufs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mapped bool
	}{{"mmap", true}, {"heap fallback", false}} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.mapped {
				failMmap(t)
			} else if _, err := mmapBuf(4096); err != nil {
				t.Skipf("no mmap here: %v", err)
			}
			unmaps := countUnmaps(t)
			ctx := context.Background()
			p := newPartBufs(1<<20, 3)
			var bs [3][]byte
			for i := range bs {
				b, err := p.get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) != 0 || cap(b) != 1<<20 {
					t.Fatalf("buffer %d: len %d cap %d, want 0 and %d", i, len(b), cap(b), 1<<20)
				}
				bs[i] = append(b, byte(i)) // every buffer is writable
			}
			wantMapped := func(n int) {
				t.Helper()
				if tc.mapped {
					if _, m := p.live(); m != n {
						t.Fatalf("%d buffers mapped, want %d", m, n)
					}
				}
			}
			wantMapped(3)

			// Full: get waits for a put, and gives up with its context.
			cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			if _, err := p.get(cctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("get from a full pool: %v, want the context's error", err)
			}
			go func() { time.Sleep(10 * time.Millisecond); p.put(bs[1]) }()
			if b, err := p.get(ctx); err != nil || first(b) != first(bs[1]) {
				t.Fatalf("get after put: %v, or not the buffer put back", err)
			}

			// LIFO: the buffer put back last comes first.
			p.put(bs[0])
			p.put(bs[2])
			if b, _ := p.get(ctx); first(b) != first(bs[2]) {
				t.Fatal("get did not return the buffer put back last")
			}
			if b, _ := p.get(ctx); first(b) != first(bs[0]) {
				t.Fatal("second get did not return the buffer put back first")
			}

			// close frees the free buffers now, the others when put back.
			p.put(bs[0])
			p.close()
			if n, _ := p.live(); n != 2 {
				t.Fatalf("%d buffers live after close, want the 2 still handed out", n)
			}
			wantMapped(2)
			p.put(bs[1])
			p.put(bs[2])
			if n, m := p.live(); n != 0 || m != 0 {
				t.Fatalf("after close and put: %d buffers live, %d mapped; want none", n, m)
			}
			if want := map[bool]int{true: 3, false: 0}[tc.mapped]; *unmaps != want {
				t.Fatalf("%d unmaps, want %d", *unmaps, want)
			}
		})
	}
}

// TestPartBufsFinalizer checks that a pool dropped without close (a
// Writer whose Close failed and that was never aborted) frees its mapped
// buffers, handed out or not.
func TestPartBufsFinalizer(t *testing.T) {
	if _, err := mmapBuf(4096); err != nil {
		t.Skipf("no mmap here: %v", err)
	}
	unmaps := countUnmaps(t)
	p := newPartBufs(1<<20, 2)
	b, _ := p.get(context.Background())
	c, _ := p.get(context.Background())
	p.put(c)
	p.freeAll() // what the finalizer runs
	if *unmaps != 2 {
		t.Fatalf("%d unmaps, want 2", *unmaps)
	}
	p.put(b) // a late put of a freed buffer is harmless
	if *unmaps != 2 {
		t.Fatalf("%d unmaps after a late put, want 2", *unmaps)
	}
}

func TestPartBody(t *testing.T) {
	data := []byte("0123456789")
	r := newPartBody(data)
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
		t.Fatalf("read: %d %v %q", n, err, buf[:n])
	}
	if off, err := r.Seek(-2, io.SeekEnd); off != 8 || err != nil {
		t.Fatalf("seek from end: %d %v", off, err)
	}
	if rest, err := io.ReadAll(r); err != nil || string(rest) != "89" {
		t.Fatalf("read to end: %q %v", rest, err)
	}
	if off, err := r.Seek(0, io.SeekCurrent); off != 10 || err != nil {
		t.Fatalf("seek current: %d %v", off, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek to a negative position succeeded")
	}
	r.fence()
	if _, err := r.Seek(0, io.SeekStart); !errors.Is(err, errFenced) {
		t.Fatalf("seek after fence: %v, want errFenced", err)
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, errFenced) {
		t.Fatalf("read after fence: %d %v, want errFenced", n, err)
	}
}
