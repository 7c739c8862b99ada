package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// watchdog cancels a transfer that makes no progress for d. A transfer
// "kicks" it whenever bytes move; time spent waiting for a response
// counts as no progress, so a server that accepts a body and then never
// answers is cut off too.
type watchdog struct {
	mu     sync.Mutex
	timer  *time.Timer
	d      time.Duration
	done   bool
	cancel context.CancelCauseFunc
}

// newWatchdog returns a context that is cancelled, with a *timeoutError
// cause, after d without a kick; stop releases it.
func newWatchdog(parent context.Context, d time.Duration, what string) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{d: d, cancel: cancel}
	w.timer = time.AfterFunc(d, func() { cancel(&timeoutError{what: what, d: d}) })
	return ctx, w
}

// kick restarts the idle period.
func (w *watchdog) kick() {
	w.mu.Lock()
	if !w.done {
		w.timer.Reset(w.d)
	}
	w.mu.Unlock()
}

// pause stops the clock, while the caller (not the network) holds things up.
func (w *watchdog) pause() {
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// stop ends the watchdog and cancels its context.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.done = true
	w.timer.Stop()
	w.mu.Unlock()
	w.cancel(context.Canceled)
}

// uploadBody is a request body over a window [base, base+size) of a
// seekable reader. minio-go seeks it to 0 before each attempt, so offsets
// are relative to base; every Read kicks the watchdog.
type uploadBody struct {
	r    io.ReadSeeker
	base int64
	size int64
	pos  int64
	wd   *watchdog
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if rem := b.size - b.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.r.Read(p)
	b.pos += int64(n)
	if b.wd != nil {
		b.wd.kick()
	}
	if err == io.EOF {
		if b.pos < b.size {
			return n, fmt.Errorf("body ended after %d of %d bytes: %w", b.pos, b.size, io.ErrUnexpectedEOF)
		}
		return n, io.EOF
	}
	return n, err
}

func (b *uploadBody) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.pos + offset
	case io.SeekEnd:
		abs = b.size + offset
	default:
		return 0, errors.New("seek: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	if _, err := b.r.Seek(b.base+abs, io.SeekStart); err != nil {
		return 0, err
	}
	b.pos = abs
	return abs, nil
}

// digests are the checksums sent with a body. Each is verified by the
// server: Content-MD5, x-amz-checksum-crc32c, and the SHA-256 that signs
// the payload (empty: the payload goes unsigned, protected by the signed
// checksum headers).
type digests struct {
	md5Base64    string
	crc32cBase64 string
	sha256Hex    string
}

// digestKinds says which digests prepareBody computes.
type digestKinds struct {
	md5, crc32c, sha256 bool
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// prepareBody hashes size bytes of r and returns a body that replays
// them. A seekable r is read twice (hash, then send) so memory stays
// flat; any other reader is buffered in memory. md5Base64, when the caller
// already has it, is sent as given (a mismatch with the bytes then shows
// as a BadDigest from the server) and MD5 is not computed again.
func prepareBody(r io.Reader, size int64, md5Base64 string, want digestKinds) (*uploadBody, digests, error) {
	rs, ok := r.(io.ReadSeeker)
	var base int64
	if ok {
		var err error
		if base, err = rs.Seek(0, io.SeekCurrent); err != nil {
			ok = false
		}
	}
	if !ok {
		buf := bytes.NewBuffer(make([]byte, 0, max(size, 0)))
		if _, err := io.CopyN(buf, r, size); err != nil {
			return nil, digests{}, fmt.Errorf("read body: %w", unexpected(err))
		}
		rs, base = bytes.NewReader(buf.Bytes()), 0
	}
	var ws []io.Writer
	var m, c, h hash.Hash
	if want.md5 && md5Base64 == "" {
		m = md5.New()
		ws = append(ws, m)
	}
	if want.crc32c {
		c = crc32.New(castagnoli)
		ws = append(ws, c)
	}
	if want.sha256 {
		h = sha256.New()
		ws = append(ws, h)
	}
	d := digests{md5Base64: md5Base64}
	if len(ws) == 0 {
		return &uploadBody{r: rs, base: base, size: size}, d, nil
	}
	n, err := io.CopyN(io.MultiWriter(ws...), rs, size)
	if err != nil {
		return nil, digests{}, fmt.Errorf("read body: %d of %d bytes: %w", n, size, unexpected(err))
	}
	if _, err := rs.Seek(base, io.SeekStart); err != nil {
		return nil, digests{}, fmt.Errorf("rewind body: %w", err)
	}
	if m != nil {
		d.md5Base64 = base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	if c != nil {
		d.crc32cBase64 = base64.StdEncoding.EncodeToString(c.Sum(nil))
	}
	if h != nil {
		d.sha256Hex = hex.EncodeToString(h.Sum(nil))
	}
	return &uploadBody{r: rs, base: base, size: size}, d, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// downloadBody is a response body guarded by a watchdog that runs only
// while a Read is blocked on the network, so a slow consumer is never
// mistaken for a stalled server. Close releases the request.
type downloadBody struct {
	rc   io.ReadCloser
	wd   *watchdog
	once sync.Once
}

func (d *downloadBody) Read(p []byte) (int, error) {
	d.wd.kick()
	n, err := d.rc.Read(p)
	d.wd.pause()
	return n, err
}

func (d *downloadBody) Close() error {
	err := d.rc.Close()
	d.once.Do(d.wd.stop)
	return err
}
