package objstore

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
)

// partBufs is a Writer's pool of part buffers, each of capacity size,
// at most max at once. Where the platform allows (mapBuf), a buffer is
// anonymous memory mapped outside the Go heap, for two reasons:
//
//   - the collector neither counts it toward its heap goal nor lets the
//     heap grow to twice it (GOGC): a Writer's Concurrency+1 buffers are
//     most of a job's live memory;
//   - pages the Writer never writes are never resident, so a small
//     object costs what it writes (rounded up to 2 MiB where the buffer
//     gets huge pages: partbuf_linux.go), and a buffer a fast store
//     hands back at once is reused (get is LIFO), leaving the others
//     untouched.
//
// Mapped memory is not collected, so the pool frees it explicitly: close
// frees every free buffer and each one put back later, and a finalizer
// frees whatever a Writer dropped without closing (a Close that failed
// and was never followed by Abort). A buffer must not be used after it is
// put back: requests read it through a partBody, fenced first.
type partBufs struct {
	size, max int
	avail     chan struct{} // a buffer was put back

	mu     sync.Mutex
	free   [][]byte         // LIFO: the most recently used first
	n      int              // buffers handed out or free
	mapped map[*byte][]byte // mapped buffers by first byte, full length
	closed bool
}

// The platform's mapping (partbuf_unix.go), or none (partbuf_other.go);
// variables so that tests can make mapping fail.
var (
	mapBuf   = mmapBuf
	unmapBuf = munmapBuf
)

func newPartBufs(size, max int) *partBufs {
	p := &partBufs{size: size, max: max, avail: make(chan struct{}, 1), mapped: map[*byte][]byte{}}
	runtime.SetFinalizer(p, (*partBufs).freeAll)
	return p
}

// get returns an empty buffer: the one put back last, a new one while
// fewer than max exist, or the next one put back. It is called from one
// goroutine at a time.
func (p *partBufs) get(ctx context.Context) ([]byte, error) {
	for {
		p.mu.Lock()
		if k := len(p.free); k > 0 {
			b := p.free[k-1]
			p.free = p.free[:k-1]
			p.mu.Unlock()
			return b, nil
		}
		if p.n < p.max {
			p.n++
			b := p.alloc()
			p.mu.Unlock()
			return b, nil
		}
		p.mu.Unlock()
		select {
		case <-p.avail:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// alloc maps a new buffer, or makes one on the heap if mapping fails.
func (p *partBufs) alloc() []byte {
	b, err := mapBuf(p.size)
	if err != nil {
		return make([]byte, 0, p.size)
	}
	p.mapped[first(b)] = b
	return b[:0]
}

// put gives back a buffer from get, which the caller no longer uses; after
// close it is freed.
func (p *partBufs) put(b []byte) {
	if b == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.release(b)
	} else {
		p.free = append(p.free, b[:0])
	}
	p.mu.Unlock()
	select {
	case p.avail <- struct{}{}:
	default:
	}
}

// close frees the free buffers now and the others as they are put back.
func (p *partBufs) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, b := range p.free {
		p.release(b)
	}
	p.free = nil
}

// freeAll frees every buffer, free or not: the finalizer, run once the
// pool, and so its Writer, is unreachable.
func (p *partBufs) freeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, b := range p.mapped {
		_ = unmapBuf(b)
	}
	clear(p.mapped)
	p.free = nil
}

// release frees b; p.mu is held.
func (p *partBufs) release(b []byte) {
	p.n--
	k := first(b)
	if m, ok := p.mapped[k]; ok {
		delete(p.mapped, k)
		_ = unmapBuf(m) // fails only for a bad argument
	}
}

// live returns how many buffers exist (handed out or free).
func (p *partBufs) live() (n, mapped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, len(p.mapped)
}

func first(b []byte) *byte { return &b[:1][0] }

// errFenced is what a request reads from a part buffer after its attempt
// ended.
var errFenced = errors.New("objstore: part body read after its request ended")

// partBody is a request body over a part buffer, good for one attempt.
// net/http may read a request body after RoundTrip returns (its docs say
// so), and a store may keep a reader it was given; a buffer read then
// would be reused, or unmapped and fault. fence ends the body's reads: it
// waits for a Read in progress, and every later Read fails.
type partBody struct {
	mu  sync.Mutex
	b   []byte
	off int64
}

func newPartBody(b []byte) *partBody { return &partBody{b: b} }

func (r *partBody) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b == nil {
		return 0, errFenced
	}
	if r.off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += int64(n)
	return n, nil
}

func (r *partBody) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b == nil {
		return 0, errFenced
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += int64(len(r.b))
	default:
		return 0, errors.New("objstore: part body: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("objstore: part body: negative position")
	}
	r.off = offset
	return offset, nil
}

// fence ends the body: no Read touches the buffer after it returns.
func (r *partBody) fence() {
	r.mu.Lock()
	r.b = nil
	r.mu.Unlock()
}

// withBody runs one attempt of a request with a fresh body over b, and
// fences it when the attempt returns.
func withBody(b []byte, f func(io.ReadSeeker) error) error {
	body := newPartBody(b)
	defer body.fence()
	return f(body)
}
