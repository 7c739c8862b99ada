package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// writerOpts are fast-retrying Writer options for tests.
func writerOpts(partSize int64) objstore.WriterOptions {
	return objstore.WriterOptions{PartSize: partSize, Concurrency: 3, RetryBase: time.Millisecond,
		RetryMax: 10 * time.Millisecond, ContentType: "application/octet-stream",
		Metadata: map[string]string{"job": "storetest"}}
}

// writeChunks writes data in irregular chunks, as a dump engine does:
// single bytes, and pseudo-random sizes up to twice the part size, so the
// buffer ends a Write at every fill level.
func writeChunks(t *testing.T, w *objstore.Writer, data []byte) error {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(data)), 7))
	limit := 2 * int(w.PartSize())
	for i := 0; len(data) > 0; i++ {
		n := 1 + rng.IntN(limit)
		if i%5 == 0 {
			n = 1
		}
		n = min(n, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// checkObject verifies the stored object equals data and carries its
// SHA-256, and that the writer left no upload behind.
func checkObject(t *testing.T, st objstore.Store, key string, data []byte) {
	t.Helper()
	got := readAll(t, st, key, 0, -1)
	if !bytes.Equal(got, data) {
		t.Fatalf("object %s: %d bytes differing from the %d written", key, len(got), len(data))
	}
	sum := sha256.Sum256(data)
	h, err := st.Head(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata[objstore.MetaSHA256] != hex.EncodeToString(sum[:]) {
		t.Errorf("metadata sha256 = %q, want %x", h.Metadata[objstore.MetaSHA256], sum)
	}
	if h.Metadata["job"] != "storetest" {
		t.Errorf("user metadata lost: %v", h.Metadata)
	}
	if ups, err := st.ListUploads(ctxT(t), key); err != nil || len(ups) != 0 {
		t.Errorf("uploads left for %s: %v, %v", key, ups, err)
	}
}

func checkR2(t *testing.T, rec *Recorder) {
	t.Helper()
	if v := rec.Violations(); len(v) > 0 {
		t.Errorf("R2 rule violated (non-final parts of unequal size): %v", v)
	}
}

func (s *suite) testWriterSizes(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	for _, n := range []int64{0, 1, p - 1, p, p + 1, 3*p + p/2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rec := NewRecorder(st)
			key := s.key(t, "w")
			data := randBytes(t, n)
			w, err := objstore.NewWriter(ctxT(t), rec, key, writerOpts(p), s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, data); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			checkObject(t, st, key, data)
			checkR2(t, rec)
			sum := sha256.Sum256(data)
			if w.SHA256() != hex.EncodeToString(sum[:]) || w.Info().Size != n {
				t.Errorf("writer reports sha256 %s size %d", w.SHA256(), w.Info().Size)
			}
			wantParts := 0
			if n > p {
				wantParts = int((n + p - 1) / p)
			}
			if rec.Calls() != wantParts {
				t.Errorf("%d UploadPart calls, want %d", rec.Calls(), wantParts)
			}
		})
	}
}

func (s *suite) testWriterConcurrency(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	rec := NewRecorder(st)
	rec.Delay = 50 * time.Millisecond
	key := s.key(t, "w")
	data := randBytes(t, 6*p+1)
	opts := writerOpts(p)
	opts.Concurrency = 2
	w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeChunks(t, w, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkObject(t, st, key, data)
	if m := rec.MaxInFlight(); m != 2 {
		t.Errorf("max parts in flight = %d, want 2 (Concurrency)", m)
	}
}

func (s *suite) testWriterRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"500", &objstore.StatusError{Op: "upload part", StatusCode: 500, Code: "InternalError"}},
		{"503", &objstore.StatusError{Op: "upload part", StatusCode: 503, Code: "SlowDown"}},
		{"429", &objstore.StatusError{Op: "upload part", StatusCode: 429}},
		{"reset", fmt.Errorf("write: %w", syscall.ECONNRESET)},
		{"timeout", context.DeadlineExceeded},
		{"bad digest", objstore.ErrBadDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := s.newStore(t)
			p := partSize(st)
			rec := NewRecorder(st)
			rec.BeforeUploadPart = func(_ string, _, call int) error {
				if call%2 == 1 { // every part fails once, at least
					return tc.err
				}
				return nil
			}
			key := s.key(t, "w")
			data := randBytes(t, 3*p+5)
			opts := writerOpts(p)
			opts.Concurrency = 1
			w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			checkObject(t, st, key, data)
			if rec.Calls() != 8 {
				t.Errorf("%d UploadPart calls, want 8 (4 parts, each failing once)", rec.Calls())
			}
		})
	}
}

func (s *suite) testWriterNoRetry(t *testing.T) {
	for _, code := range []int{400, 403, 404} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			st := s.newStore(t)
			p := partSize(st)
			rec := NewRecorder(st)
			rec.BeforeUploadPart = func(string, int, int) error {
				return &objstore.StatusError{Op: "upload part", StatusCode: code}
			}
			key := s.key(t, "w")
			opts := writerOpts(p)
			opts.Concurrency = 1
			w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			err = writeChunks(t, w, randBytes(t, 3*p))
			if err == nil {
				err = w.Close()
			}
			var se *objstore.StatusError
			if !errors.As(err, &se) || se.StatusCode != code {
				t.Fatalf("err = %v, want the HTTP %d error", err, code)
			}
			if rec.Calls() != 1 {
				t.Errorf("%d UploadPart calls, want 1 (no retry on %d)", rec.Calls(), code)
			}
			if err := w.Abort(ctxT(t)); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if ups, _ := st.ListUploads(ctxT(t), key); len(ups) != 0 {
				t.Errorf("uploads left after abort: %v", ups)
			}
		})
	}
}

// testWriterLostAnswer: the backend completes the object but the answer
// is lost (a retryable error reaches the Writer). The retry finds the
// upload gone or the key taken, recognises its own object and succeeds.
func (s *suite) testWriterLostAnswer(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	lost := &objstore.StatusError{Op: "complete", StatusCode: 502, Code: "BadGateway"}
	for _, n := range []int64{10, 2*p + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rec := NewRecorder(st)
			rec.AfterComplete = func(call int, err error) error {
				if call == 1 && err == nil {
					return lost
				}
				return err
			}
			rec.AfterPut = rec.AfterComplete
			key := s.key(t, "w")
			data := randBytes(t, n)
			w, err := objstore.NewWriter(ctxT(t), rec, key, writerOpts(p), s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close after a lost answer: %v", err)
			}
			checkObject(t, st, key, data)
			if w.Info().Size != n {
				t.Errorf("info size %d, want %d", w.Info().Size, n)
			}
		})
	}
	t.Run("someone else's object", func(t *testing.T) {
		// The retry finds an object that is not this Writer's: ErrExist.
		rec := NewRecorder(st)
		key := s.key(t, "w")
		rec.AfterPut = func(call int, err error) error {
			if call == 1 && err == nil {
				if derr := st.Delete(ctxT(t), key); derr != nil {
					return derr
				}
				mustPut(t, st, key, []byte("other"), objstore.PutOptions{})
				return lost
			}
			return err
		}
		w, err := objstore.NewWriter(ctxT(t), rec, key, writerOpts(p), s.opts.Logger)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("mine")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); !errors.Is(err, objstore.ErrExist) {
			t.Fatalf("close: err = %v, want ErrExist", err)
		}
		if got := readAll(t, st, key, 0, -1); string(got) != "other" {
			t.Fatalf("object is %q, want the other writer's", got)
		}
	})
}

func (s *suite) testWriterNoOverwrite(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	for _, n := range []int64{10, 2*p + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			key := s.key(t, "w")
			mustPut(t, st, key, []byte("precious"), objstore.PutOptions{})
			w, err := objstore.NewWriter(ctxT(t), st, key, writerOpts(p), s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, randBytes(t, n)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); !errors.Is(err, objstore.ErrExist) {
				t.Fatalf("close over an existing object: err = %v, want ErrExist", err)
			}
			if got := readAll(t, st, key, 0, -1); string(got) != "precious" {
				t.Fatalf("existing object replaced (%d bytes)", len(got))
			}
			if err := w.Abort(ctxT(t)); err != nil {
				t.Fatalf("abort: %v", err)
			}
			if ups, _ := st.ListUploads(ctxT(t), key); len(ups) != 0 {
				t.Errorf("uploads left after abort: %v", ups)
			}
			if got := readAll(t, st, key, 0, -1); string(got) != "precious" {
				t.Fatalf("abort touched the existing object")
			}
		})
	}
}

func (s *suite) testWriterAbort(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	key := s.key(t, "w")
	w, err := objstore.NewWriter(ctxT(t), st, key, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeChunks(t, w, randBytes(t, 3*p+10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctxT(t)); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if err := w.Abort(ctxT(t)); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, objstore.ErrClosed) {
		t.Errorf("write after abort: err = %v, want ErrClosed", err)
	}
	if ups, _ := st.ListUploads(ctxT(t), key); len(ups) != 0 {
		t.Errorf("uploads left after abort: %v", ups)
	}
	if _, err := st.Head(ctxT(t), key); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("object after abort: err = %v", err)
	}
}

func (s *suite) testWriterOutgrow(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	for _, tc := range []struct {
		name     string
		maxParts int
		size     int64
		wantPart int64
	}{
		// 2 parts of P fill up; then 2P parts (1 copied), then 4P parts.
		{"twice", 2, 5*p + 3, 4 * p},
		// 3 parts of P; then parts of 3P, the first copied; ends exactly.
		{"exact", 3, 9 * p, 3 * p},
		{"fits", 3, 3 * p, p},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := NewRecorder(st)
			key := s.key(t, "w")
			data := randBytes(t, tc.size)
			opts := writerOpts(p)
			opts.Limits.MaxParts = tc.maxParts
			w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, data); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			checkObject(t, st, key, data)
			checkR2(t, rec)
			if w.PartSize() != tc.wantPart {
				t.Errorf("final part size %d, want %d", w.PartSize(), tc.wantPart)
			}
			if l, _ := st.List(ctxT(t), key); len(l) != 1 {
				t.Errorf("objects under %s: %v, want just the object", key, l)
			}
		})
	}
	t.Run("resume after growing", func(t *testing.T) {
		rec := NewRecorder(st)
		key := s.key(t, "w")
		data := randBytes(t, 7*p+3)
		cut := 3*p + 100
		opts := writerOpts(p)
		opts.Limits.MaxParts = 2
		w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeChunks(t, w, data[:cut]); err != nil {
			t.Fatal(err)
		}
		state, left, err := w.Suspend(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if state.Generation != 1 || state.PartSize != 2*p {
			t.Fatalf("state after growing: generation %d, part size %d; want 1, %d", state.Generation, state.PartSize, 2*p)
		}
		w2, err := objstore.Resume(ctxT(t), rec, roundTrip(t, state), left, opts, s.opts.Logger)
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if err := writeChunks(t, w2, data[cut:]); err != nil {
			t.Fatal(err)
		}
		if err := w2.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		checkObject(t, st, key, data)
		checkR2(t, rec)
		if w2.PartSize() != 4*p {
			t.Errorf("final part size %d, want %d", w2.PartSize(), 4*p)
		}
	})
	t.Run("abort after growing", func(t *testing.T) {
		key := s.key(t, "w")
		opts := writerOpts(p)
		opts.Limits.MaxParts = 2
		w, err := objstore.NewWriter(ctxT(t), st, key, opts, s.opts.Logger)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeChunks(t, w, randBytes(t, 3*p)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(ctxT(t)); err != nil {
			t.Fatalf("abort: %v", err)
		}
		if _, err := st.Head(ctxT(t), key); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("partial object left after abort: %v", err)
		}
		if ups, _ := st.ListUploads(ctxT(t), key); len(ups) != 0 {
			t.Errorf("uploads left after abort: %v", ups)
		}
	})
}

// roundTrip passes a State through JSON, as the jobs layer persists it.
func roundTrip(t *testing.T, st objstore.State) objstore.State {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out objstore.State
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *suite) testWriterResume(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	rec := NewRecorder(st)
	key := s.key(t, "w")
	data := randBytes(t, 5*p+123)
	cut := 2*p + 100
	w, err := objstore.NewWriter(ctxT(t), rec, key, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeChunks(t, w, data[:cut]); err != nil {
		t.Fatal(err)
	}
	state, left, err := w.Suspend(ctxT(t))
	if err != nil {
		t.Fatalf("suspend: %v", err)
	}
	if len(state.Parts) != 2 || int64(len(left)) != 100 || state.Bytes != 2*p {
		t.Fatalf("state has %d parts, %d bytes, %d leftover; want 2, %d, 100", len(state.Parts), state.Bytes, len(left), 2*p)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, objstore.ErrClosed) {
		t.Errorf("write after suspend: %v, want ErrClosed", err)
	}
	w2, err := objstore.Resume(ctxT(t), rec, roundTrip(t, state), left, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := writeChunks(t, w2, data[cut:]); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checkObject(t, st, key, data)
	checkR2(t, rec)
	for n := 1; n <= 6; n++ {
		if c := rec.Uploads(state.UploadID, n); c != 1 {
			t.Errorf("part %d uploaded %d times, want once", n, c)
		}
	}
}

func (s *suite) testWriterResumeCrash(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	rec := NewRecorder(st)
	key := s.key(t, "w")
	data := randBytes(t, 6*p+7)
	cut := 2*p + 100
	ctx, crash := context.WithCancel(ctxT(t))
	w, err := objstore.NewWriter(ctx, rec, key, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeChunks(t, w, data[:cut]); err != nil {
		t.Fatal(err)
	}
	state, left, err := w.Checkpoint(ctxT(t))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	// Keep going past the checkpoint, then die without cleaning up.
	if err := writeChunks(t, w, data[cut:cut+2*p]); err != nil {
		t.Fatal(err)
	}
	crash()
	if _, _, err := w.Checkpoint(context.Background()); err == nil {
		t.Fatal("checkpoint after the crash succeeded")
	}
	w2, err := objstore.Resume(ctxT(t), rec, roundTrip(t, state), left, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := writeChunks(t, w2, data[cut:]); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checkObject(t, st, key, data)
	checkR2(t, rec)
	for n := 1; n <= 2; n++ {
		if c := rec.Uploads(state.UploadID, n); c != 1 {
			t.Errorf("checkpointed part %d uploaded %d times, want once", n, c)
		}
	}
}

func (s *suite) testWriterResumeMismatch(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	key := s.key(t, "w")
	w, err := objstore.NewWriter(ctxT(t), st, key, writerOpts(p), s.opts.Logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeChunks(t, w, randBytes(t, 2*p+1)); err != nil {
		t.Fatal(err)
	}
	state, left, err := w.Suspend(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*objstore.State)
	}{
		{"etag", func(s *objstore.State) { s.Parts[1].ETag = "0123456789abcdef0123456789abcdef" }},
		{"size", func(s *objstore.State) { s.Parts[0].Size--; s.Bytes-- }},
		{"upload gone", func(s *objstore.State) { s.UploadID = "00000000000000000000000000000000" }},
		{"parts beyond the upload", func(s *objstore.State) {
			s.Parts = append(s.Parts, objstore.Part{Number: 3, Size: s.PartSize, ETag: "x"})
			s.Bytes += s.PartSize
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := roundTrip(t, state)
			tc.change(&bad)
			if _, err := objstore.Resume(ctxT(t), st, bad, left, writerOpts(p), s.opts.Logger); !errors.Is(err, objstore.ErrResume) {
				t.Fatalf("resume: err = %v, want ErrResume", err)
			}
		})
	}
	if err := objstore.Discard(ctxT(t), st, state); err != nil {
		t.Fatalf("discard: %v", err)
	}
	if ups, _ := st.ListUploads(ctxT(t), key); len(ups) != 0 {
		t.Errorf("uploads left after discard: %v", ups)
	}
}

// testWriterSealed checks Seal: the buffered bytes become the last part,
// so a checkpoint after it has no leftover and names every part, and a
// Writer resumed from it only completes the upload. A stream shorter than
// one part (stored with one Put at Close) is not sealed: it stays the
// leftover. A sealed State with leftover bytes, or one whose short last
// part is not sealed, is refused.
func (s *suite) testWriterSealed(t *testing.T) {
	st := s.newStore(t)
	p := partSize(st)
	tests := []struct {
		name     string
		size     int64
		maxParts int // 0: the store's
		parts    int
		sealed   bool
	}{
		{"short last part", 3*p + 77, 0, 4, true},
		{"full last part", 2 * p, 0, 2, true},
		{"shorter than a part", p / 2, 0, 0, false},
		// Grown to parts of 4P (see testWriterOutgrow): the last part is
		// the last number allowed.
		{"last part at the part limit", 5*p + 3, 2, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := NewRecorder(st)
			key := s.key(t, "w")
			data := randBytes(t, tc.size)
			opts := writerOpts(p)
			if tc.maxParts > 0 {
				opts.Limits.MaxParts = tc.maxParts
			}
			w, err := objstore.NewWriter(ctxT(t), rec, key, opts, s.opts.Logger)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(t, w, data); err != nil {
				t.Fatal(err)
			}
			if err := w.Seal(); err != nil {
				t.Fatalf("seal: %v", err)
			}
			if tc.sealed {
				if _, err := w.Write([]byte("x")); err == nil {
					t.Error("write after Seal succeeded")
				}
			}
			state, left, err := w.Suspend(ctxT(t))
			if err != nil {
				t.Fatalf("suspend: %v", err)
			}
			wantLeft := 0
			if !tc.sealed {
				wantLeft = len(data)
			}
			if state.Sealed != tc.sealed || len(state.Parts) != tc.parts || len(left) != wantLeft {
				t.Fatalf("state sealed %v with %d parts and %d leftover bytes; want %v, %d, %d",
					state.Sealed, len(state.Parts), len(left), tc.sealed, tc.parts, wantLeft)
			}
			if tc.sealed {
				type badState struct {
					name    string
					st      objstore.State
					pending []byte
				}
				bad := []badState{{"leftover bytes", roundTrip(t, state), []byte("x")}}
				if state.Parts[len(state.Parts)-1].Size < state.PartSize {
					notSealed := roundTrip(t, state)
					notSealed.Sealed = false
					bad = append(bad, badState{"its short last part not sealed", notSealed, nil})
				}
				for _, b := range bad {
					if _, err := objstore.Resume(ctxT(t), rec, b.st, b.pending, opts, s.opts.Logger); !errors.Is(err, objstore.ErrResume) {
						t.Errorf("resume a sealed state with %s: err = %v, want ErrResume", b.name, err)
					}
				}
			}
			w2, err := objstore.Resume(ctxT(t), rec, roundTrip(t, state), left, opts, s.opts.Logger)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if err := w2.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			checkObject(t, st, key, data)
			checkR2(t, rec)
			for n := 1; n <= tc.parts; n++ {
				if c := rec.Uploads(state.UploadID, n); c > 1 {
					t.Errorf("part %d uploaded %d times, want at most once (a grown upload copies some)", n, c)
				}
			}
		})
	}
}
