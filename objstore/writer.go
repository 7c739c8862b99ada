package objstore

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"
)

// Metadata keys the Writer sets on the objects it completes.
const (
	// MetaSHA256 holds the hex SHA-256 of the whole object.
	MetaSHA256 = "sha256"
	// MetaWriter holds the random id of the Writer that created the
	// object; it lets a retried Complete recognise its own object, and
	// Abort/Discard delete only a partial object of their own.
	MetaWriter = "sluice-writer"
)

// ErrClosed is returned by a Writer used after Close, Suspend or Abort.
var ErrClosed = errors.New("objstore: writer closed")

// ErrUploadGone is returned by a Writer whose multipart upload no longer
// exists in the store: aborted out of band, for example by a bucket
// lifecycle rule that aborts incomplete uploads. It wraps ErrNotExist.
// The bytes of the stored parts are gone with it.
var ErrUploadGone = fmt.Errorf("objstore: multipart upload vanished: %w", ErrNotExist)

// errAborted is the cancel cause of an aborted Writer.
var errAborted = errors.New("objstore: writer aborted")

// DefaultConcurrency is the number of parts a Writer uploads at once when
// WriterOptions.Concurrency is zero.
const DefaultConcurrency = 4

// WriterOptions configure a Writer. The zero value is usable.
type WriterOptions struct {
	ContentType string
	// Metadata is stored with the object, plus MetaSHA256 and MetaWriter.
	Metadata map[string]string
	// PartSize fixes the part size. Zero means ChoosePartSize(ExpectedSize).
	PartSize int64
	// ExpectedSize is the caller's estimate of the total size; 0 if unknown.
	ExpectedSize int64
	// Concurrency is the number of parts uploaded at once (default 4). The
	// Writer holds at most Concurrency+1 part buffers.
	Concurrency int
	// MaxAttempts bounds the attempts per request (default 8).
	MaxAttempts int
	// RetryBase and RetryMax bound the exponential backoff between
	// attempts (defaults 250ms and 20s); each wait is jittered.
	RetryBase, RetryMax time.Duration
	// AttemptTimeout bounds one part upload attempt (default 1 min plus
	// 1 s per MiB of part). Complete and part copies get at least 15 min.
	AttemptTimeout time.Duration
	// Limits overrides the store's limits (LimitsOf(store)) field by field;
	// tests use it to shrink MaxParts.
	Limits Limits
	// OnPart, if set, is called after each part is stored, from an upload
	// goroutine. It must be quick and safe for concurrent use.
	OnPart func(Part)
	// OnRetry, if set, is called before each retry of a failed request
	// (op names it: "upload part", "complete", ...). Like OnPart it may be
	// called from upload goroutines.
	OnRetry func(op string, err error)
	// Go, if set, starts the goroutine of each part upload (and each
	// server-side copy) instead of a plain go statement. A server passes
	// one that runs uploads at a lower CPU priority than its requests
	// (dump.Gate.Go).
	Go func(func())
}

// Writer streams bytes into a multipart upload. Every part but the last is
// exactly PartSize bytes (the R2 rule); up to Concurrency parts upload in
// parallel, each retried with backoff and sent with a checksum the server
// verifies (Content-MD5, or the store's own: see PartChecksummer). Close
// completes the upload without overwriting an existing object and records
// the object's SHA-256 in its metadata. Write, Close, Checkpoint and
// Suspend and Abort must be called from one goroutine; to stop a Write
// blocked on a slow store from elsewhere, cancel the context given to
// NewWriter.
//
// The upload is created lazily: a stream shorter than one part is stored
// with a single Put at Close.
type Writer struct {
	store  Store
	key    string
	opts   WriterOptions
	limits Limits
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	writerID string
	partSize int64
	gen      int  // times the upload outgrew its part size
	forceMD5 bool // resumed upload whose parts carry Content-MD5s
	uploadID string
	next     int           // number of the next part to cut
	hash     hash.Hash     // SHA-256 of the bytes in cut parts, once hashTail is closed
	hashed   int64         // bytes in cut parts
	hashTail chan struct{} // closed when every cut part is in hash (see send)
	buf      []byte        // the part being filled, from bufs
	bufs     *partBufs
	sem      chan struct{}
	wg       sync.WaitGroup
	closed   bool
	sealed   bool // the last part is cut (Seal): no more writes
	finished bool // Close succeeded
	info     ObjectInfo
	sum      string

	mu       sync.Mutex
	done     map[int]Part
	uploaded int // parts stored by this Writer (copies included)
	err      error
	stored   int            // parts 1..stored of this generation are all stored
	cutHash  map[int][]byte // SHA-256 state after part k, for marks (see Mark)
	progress chan struct{}  // closed and replaced whenever a part is stored or fails
}

// NewWriter starts a Writer for key. ctx governs the whole upload: when it
// is cancelled, in-flight requests stop and Write/Close fail. Nothing is
// sent to the store until the first part is full.
func NewWriter(ctx context.Context, store Store, key string, opts WriterOptions, logger *slog.Logger) (*Writer, error) {
	w, err := newWriter(ctx, store, key, opts, logger)
	if err != nil {
		return nil, err
	}
	w.writerID = randomID()
	w.partSize = opts.PartSize
	if w.partSize == 0 {
		w.partSize = ChoosePartSize(opts.ExpectedSize, w.limits)
	}
	if err := checkPartSize(w.partSize, w.limits); err != nil {
		return nil, err
	}
	w.next = 1
	w.hash = sha256.New()
	w.saveCutHash(0)
	w.start()
	return w, nil
}

func newWriter(ctx context.Context, store Store, key string, opts WriterOptions, logger *slog.Logger) (*Writer, error) {
	if key == "" {
		return nil, fmt.Errorf("objstore: writer: %w", ErrInvalidKey)
	}
	if logger == nil {
		return nil, errors.New("objstore: writer: nil logger")
	}
	l := LimitsOf(store)
	if opts.Limits.MinPartSize > 0 {
		l.MinPartSize = opts.Limits.MinPartSize
	}
	if opts.Limits.MaxPartSize > 0 {
		l.MaxPartSize = opts.Limits.MaxPartSize
	}
	if opts.Limits.MaxParts > 0 {
		l.MaxParts = opts.Limits.MaxParts
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 250 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 20 * time.Second
	}
	w := &Writer{store: store, key: key, opts: opts, limits: l, done: map[int]Part{},
		cutHash: map[int][]byte{}, progress: make(chan struct{}), log: logger.With("key", key),
		hashTail: make(chan struct{})}
	close(w.hashTail)
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	return w, nil
}

// start sets up the buffer pool for the current part size, replacing
// the last one (whose buffers grow has waited for), and takes the first
// buffer.
func (w *Writer) start() {
	n := w.opts.Concurrency
	if w.bufs != nil {
		w.bufs.close()
	}
	w.bufs = newPartBufs(int(w.partSize), n+1)
	w.sem = make(chan struct{}, n)
	w.buf, _ = w.bufs.get(w.ctx) // the pool is empty: never waits
}

// PartSize returns the current part size (it changes only if the stream
// outgrows MaxParts parts).
func (w *Writer) PartSize() int64 { return w.partSize }

// Buffered returns the bytes written but not yet cut into a part; a
// Checkpoint now would return this many leftover bytes.
func (w *Writer) Buffered() int { return len(w.buf) }

// PartsCut returns how many parts have been handed to the uploader.
func (w *Writer) PartsCut() int { return w.next - 1 }

// PartsUploaded returns how many parts this Writer has stored so far.
func (w *Writer) PartsUploaded() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.uploaded
}

// Info returns the completed object's description after a successful Close.
func (w *Writer) Info() ObjectInfo { return w.info }

// SHA256 returns the hex SHA-256 of the object after a successful Close.
func (w *Writer) SHA256() string { return w.sum }

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write buffers p and cuts a part each time PartSize bytes are buffered
// and more follow. It blocks while Concurrency parts are in flight.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.sealed && len(p) > 0 {
		return 0, fmt.Errorf("objstore: writer %s: write after Seal", w.key)
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.partSize {
			if err := w.cut(); err != nil {
				return written, err
			}
		}
		k := min(int(w.partSize)-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...) // within the buffer's capacity, PartSize
		p = p[k:]
		written += k
	}
	return written, nil
}

// Seal ends the stream: the bytes buffered are cut as the upload's last
// part, and the Writer takes no more writes. A Checkpoint after it then
// has no leftover bytes, and its State (Sealed) needs only Close; a
// caller that checkpoints before Close saves up to a part's worth of
// leftover that way. A stream still shorter than one part, stored with a
// single Put at Close, is not sealed: its bytes stay the leftover.
func (w *Writer) Seal() error {
	if w.closed {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	if w.uploadID == "" {
		return nil
	}
	return w.seal()
}

// seal cuts the bytes buffered, if any, as the last part: Seal's work,
// and Close's before it completes the upload.
func (w *Writer) seal() error {
	if !w.sealed && len(w.buf) > 0 {
		if err := w.send(); err != nil {
			return err
		}
	}
	w.sealed = true
	return nil
}

// cut hands the full buffer to an uploader as the next part, knowing that
// more bytes follow it.
func (w *Writer) cut() error {
	if w.next == w.limits.MaxParts {
		// The full buffer would be the last part number allowed, and the
		// stream goes on: switch to a larger part size.
		return w.grow()
	}
	if err := w.send(); err != nil {
		return err
	}
	b, err := w.bufs.get(w.ctx)
	if err != nil {
		return w.ctxErr()
	}
	w.buf = b
	return nil
}

// send dispatches w.buf as part w.next, creating the upload if needed.
func (w *Writer) send() error {
	if w.uploadID == "" {
		if err := w.create(); err != nil {
			return err
		}
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctxErr()
	}
	// A part that failed released its slot after recording the failure:
	// do not start another upload after it.
	if err := w.failed(); err != nil {
		<-w.sem
		return err
	}
	buf, num := w.buf, w.next
	w.buf = nil
	w.hashed += int64(len(buf))
	w.next++
	prev, hashed := w.hashTail, make(chan struct{})
	w.hashTail = hashed
	w.wg.Add(1)
	bufs := w.bufs
	w.spawn(func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		// The object's SHA-256 runs here, not on the caller's goroutine,
		// so it overlaps the stream's producer (the dump). The parts'
		// goroutines take turns, in part order: each hashes its part
		// once the one before it has, then uploads it. Hashing never
		// fails, so the chain always completes.
		<-prev
		w.hash.Write(buf)
		w.saveCutHash(num)
		close(hashed)
		part, err := w.uploadPart(num, buf)
		bufs.put(buf)
		w.record(part, err)
	})
	return nil
}

// spawn runs f on a new goroutine, through WriterOptions.Go if set.
func (w *Writer) spawn(f func()) {
	if w.opts.Go != nil {
		w.opts.Go(f)
		return
	}
	go f()
}

func (w *Writer) record(part Part, err error) {
	w.mu.Lock()
	defer w.signal()
	if err != nil {
		if w.err == nil {
			w.err = err
			w.cancel(err)
		}
		w.mu.Unlock()
		return
	}
	w.done[part.Number] = part
	w.uploaded++
	for w.done[w.stored+1].Number != 0 {
		w.stored++
	}
	w.mu.Unlock()
	if w.opts.OnPart != nil {
		w.opts.OnPart(part)
	}
}

// ctxErr explains why the Writer's context ended.
func (w *Writer) ctxErr() error {
	if err := w.failed(); err != nil {
		return err
	}
	return fmt.Errorf("objstore: writer %s: %w", w.key, context.Cause(w.ctx))
}

func (w *Writer) create() error {
	opts := PutOptions{ContentType: w.opts.ContentType, Metadata: w.metadata(""), ContentMD5Parts: w.md5Parts(),
		PartSize: w.partSize}
	return w.retry(w.ctx, "create upload", w.attemptTimeout(), func(ctx context.Context) error {
		id, err := w.store.CreateMultipart(ctx, w.key, opts)
		w.uploadID = id
		return err
	})
}

// metadata returns the user metadata plus the writer id and, if given,
// the SHA-256.
func (w *Writer) metadata(sum string) map[string]string {
	m := maps.Clone(w.opts.Metadata)
	if m == nil {
		m = map[string]string{}
	}
	m[MetaWriter] = w.writerID
	if sum != "" {
		m[MetaSHA256] = sum
	}
	return m
}

// md5Parts reports whether the Writer computes each part's Content-MD5
// (and creates its upload with ContentMD5Parts): when the store does not
// checksum parts itself, in uploads after the stream outgrew its part
// size, whose server-side copied parts carry no client checksum, and in
// a resumed upload that was created that way (by this or an older build).
func (w *Writer) md5Parts() bool {
	pc, ok := w.store.(PartChecksummer)
	return !ok || !pc.ChecksumsParts() || w.gen > 0 || w.forceMD5
}

func (w *Writer) uploadPart(num int, buf []byte) (Part, error) {
	var sum string
	if w.md5Parts() {
		d := md5.Sum(buf)
		sum = base64.StdEncoding.EncodeToString(d[:])
	}
	var part Part
	op := fmt.Sprintf("upload part %d", num)
	err := w.retry(w.ctx, op, w.attemptTimeout(), func(ctx context.Context) error {
		return withBody(buf, func(body io.ReadSeeker) error {
			p, err := w.store.UploadPart(ctx, w.key, w.uploadID, num, body, int64(len(buf)), sum)
			part = p
			return err
		})
	})
	if errors.Is(err, ErrNotExist) {
		return Part{}, fmt.Errorf("%w: %w", ErrUploadGone, err)
	}
	if err != nil {
		return Part{}, err
	}
	part.Number, part.Size = num, int64(len(buf))
	if part.Checksum == "" {
		part.Checksum = sum
	}
	return part, nil
}

func (w *Writer) attemptTimeout() time.Duration { return w.timeoutFor(w.partSize) }

// timeoutFor bounds one attempt of a request about parts of partSize.
func (w *Writer) timeoutFor(partSize int64) time.Duration {
	if w.opts.AttemptTimeout > 0 {
		return w.opts.AttemptTimeout
	}
	return time.Minute + time.Duration(partSize/MiB)*time.Second
}

func (w *Writer) longTimeout() time.Duration { return max(w.attemptTimeout(), 15*time.Minute) }

// sync makes the stored parts of upload uploadID durable where the store
// defers that (Syncer), before a State that names them is handed out. It
// reads nothing that changes after NewWriter, so PendingState.Durable may
// call it from any goroutine.
func (w *Writer) sync(ctx context.Context, uploadID string, partSize int64) error {
	sy, ok := w.store.(Syncer)
	if !ok || uploadID == "" {
		return nil
	}
	return w.retry(ctx, "sync upload", w.timeoutFor(partSize), func(ctx context.Context) error {
		return sy.SyncUpload(ctx, w.key, uploadID)
	})
}

// drain waits for every in-flight part and returns the first failure.
func (w *Writer) drain(ctx context.Context) error {
	ch := make(chan struct{})
	go func() { w.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
		return fmt.Errorf("objstore: writer %s: wait for parts: %w", w.key, ctx.Err())
	}
	return w.failed()
}

// parts returns the stored parts in order, checking they are 1..n.
func (w *Writer) parts() ([]Part, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ps := make([]Part, 0, len(w.done))
	for _, p := range w.done {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Number < ps[j].Number })
	for i, p := range ps {
		if p.Number != i+1 {
			return nil, fmt.Errorf("objstore: writer %s: part %d missing", w.key, i+1)
		}
	}
	return ps, nil
}

// Close uploads the last part, waits for all parts and completes the
// upload with NoOverwrite (ErrExist if the key already holds an object)
// and the object's SHA-256 in metadata. On failure the upload is left in
// place: call Abort to remove it, or Suspend-style state from an earlier
// Checkpoint to resume it.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	defer w.cancel(ErrClosed)
	// Even a failed Close releases the buffers: the Writer can only be
	// aborted after it.
	defer w.releaseBuffers()
	if err := w.failed(); err != nil {
		return err
	}
	if w.uploadID == "" {
		return w.putSmall()
	}
	if err := w.seal(); err != nil {
		return err
	}
	if err := w.drain(w.ctx); err != nil {
		return err
	}
	w.sum = hex.EncodeToString(w.hash.Sum(nil))
	start := time.Now()
	info, err := w.complete(w.metadata(w.sum))
	if err != nil {
		return err
	}
	w.info = info
	w.finished = true
	w.log.Debug("upload complete", "size", info.Size, "parts", w.next-1, "sha256", w.sum,
		"complete_seconds", time.Since(start).Seconds())
	return nil
}

// putSmall stores a stream shorter than one part with a single Put.
func (w *Writer) putSmall() error {
	w.hash.Write(w.buf)
	w.hashed += int64(len(w.buf))
	w.sum = hex.EncodeToString(w.hash.Sum(nil))
	opts := PutOptions{ContentType: w.opts.ContentType, Metadata: w.metadata(w.sum), NoOverwrite: true}
	buf := w.buf
	err := w.retry(w.ctx, "put", w.attemptTimeout(), func(ctx context.Context) error {
		var info ObjectInfo
		err := withBody(buf, func(body io.ReadSeeker) error {
			var err error
			info, err = w.store.Put(ctx, w.key, body, int64(len(buf)), opts)
			return err
		})
		if err != nil && errors.Is(err, ErrExist) && w.isOurs(ctx, opts.Metadata) {
			// An earlier attempt (or process) stored it but its answer
			// was lost.
			info, err = w.store.Head(ctx, w.key)
		}
		w.info = info
		return err
	})
	w.finished = err == nil
	return err
}

// complete assembles the stored parts. At generation 0 it refuses to
// overwrite; afterwards the key holds this Writer's own partial object
// (see grow), which it checks before replacing.
func (w *Writer) complete(meta map[string]string) (ObjectInfo, error) {
	parts, err := w.parts()
	if err != nil {
		return ObjectInfo{}, err
	}
	opts := PutOptions{ContentType: w.opts.ContentType, Metadata: meta, NoOverwrite: w.gen == 0}
	if w.gen > 0 {
		if err := w.checkPartial(w.ctx); err != nil {
			return ObjectInfo{}, err
		}
	}
	var info ObjectInfo
	err = w.retry(w.ctx, "complete", w.longTimeout(), func(ctx context.Context) error {
		i, err := w.store.CompleteMultipart(ctx, w.key, w.uploadID, parts, opts)
		if err != nil && (errors.Is(err, ErrNotExist) || errors.Is(err, ErrExist)) && w.isOurs(ctx, meta) {
			// An earlier attempt, or an earlier process resumed from the
			// same state, completed the upload without the answer
			// arriving: the object is ours, byte count and hash included.
			// Drop whatever is left of the upload.
			if aerr := w.store.AbortMultipart(ctx, w.key, w.uploadID); aerr != nil && !errors.Is(aerr, ErrNotExist) {
				w.log.Warn("abort the leftovers of a completed upload", "upload", w.uploadID, "err", aerr)
			}
			i, err = w.store.Head(ctx, w.key)
		}
		info = i
		return err
	})
	if errors.Is(err, ErrNotExist) {
		err = fmt.Errorf("%w: %w", ErrUploadGone, err)
	}
	return info, err
}

// isOurs reports whether the key holds the object this Writer would
// have stored with metadata meta: its writer id, its size so far, and the
// same SHA-256 (none for a partial object, see grow).
func (w *Writer) isOurs(ctx context.Context, meta map[string]string) bool {
	h, err := w.store.Head(ctx, w.key)
	return err == nil && h.Metadata[MetaWriter] == w.writerID && h.Size == w.hashed &&
		h.Metadata[MetaSHA256] == meta[MetaSHA256]
}

// checkPartial verifies the key holds this Writer's partial object before
// a grown upload replaces it.
func (w *Writer) checkPartial(ctx context.Context) error {
	var h ObjectInfo
	err := w.retry(ctx, "head partial object", w.attemptTimeout(), func(ctx context.Context) error {
		var err error
		h, err = w.store.Head(ctx, w.key)
		return err
	})
	if err != nil {
		return err
	}
	if h.Metadata[MetaWriter] != w.writerID || h.Metadata[MetaSHA256] != "" {
		return fmt.Errorf("objstore: writer %s: object was replaced during upload: %w", w.key, ErrExist)
	}
	return nil
}

// releaseBuffers gives the pool's buffers back to the system: the free
// ones now, those still uploading as they return.
func (w *Writer) releaseBuffers() {
	if w.bufs != nil {
		w.bufs.put(w.buf)
		w.bufs.close()
	}
	w.buf = nil
}

// Abort stops the Writer, waits for in-flight requests to end and removes
// everything the upload created: the multipart upload and, if the stream
// outgrew its part size, the partial object. It does not delete an object
// that Close completed. Abort is idempotent.
func (w *Writer) Abort(ctx context.Context) error {
	w.cancel(errAborted)
	w.wg.Wait()
	w.closed = true
	w.releaseBuffers()
	if w.finished {
		return nil
	}
	return discard(ctx, w.store, w.key, w.uploadID, w.writerID, w.gen)
}

// Discard removes what an upload described by st created, without a
// Writer: the multipart upload (if any) and this upload's partial object
// (only if the stream outgrew its part size and the object carries st's
// writer id and no SHA-256). Use it when Resume fails, for example after a
// crash in the middle of growing.
func Discard(ctx context.Context, store Store, st State) error {
	return discard(ctx, store, st.Key, st.UploadID, st.WriterID, 1)
}

func discard(ctx context.Context, store Store, key, uploadID, writerID string, gen int) error {
	var errs []error
	if uploadID != "" {
		if err := store.AbortMultipart(ctx, key, uploadID); err != nil && !errors.Is(err, ErrNotExist) {
			errs = append(errs, fmt.Errorf("objstore: abort upload %s: %w", key, err))
		}
	}
	if gen > 0 && writerID != "" {
		h, err := store.Head(ctx, key)
		switch {
		case errors.Is(err, ErrNotExist):
		case err != nil:
			errs = append(errs, fmt.Errorf("objstore: abort: head %s: %w", key, err))
		case h.Metadata[MetaWriter] == writerID && h.Metadata[MetaSHA256] == "":
			if err := store.Delete(ctx, key); err != nil {
				errs = append(errs, fmt.Errorf("objstore: abort: delete partial %s: %w", key, err))
			}
		}
	}
	return errors.Join(errs...)
}

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}
