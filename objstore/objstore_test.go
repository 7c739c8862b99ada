package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

func TestChoosePartSize(t *testing.T) {
	s3 := objstore.DefaultLimits()
	for _, tc := range []struct {
		name     string
		expected int64
		limits   objstore.Limits
		want     int64
	}{
		{"unknown", 0, s3, 8 * objstore.MiB},
		{"small", 100 << 20, s3, 8 * objstore.MiB},
		{"80 GB needs 12 MiB", 80 << 30, s3, 13 * objstore.MiB}, // 80 GiB*1.5/10000 = 12.3 MiB, rounded up
		{"1 TiB", 1 << 40, s3, 158 * objstore.MiB},
		{"capped", 100 << 40, s3, objstore.MaxPartSize},
		{"tiny test minimum kept", 0, objstore.Limits{MinPartSize: 1000, MaxPartSize: 1 << 30, MaxParts: 10}, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := objstore.ChoosePartSize(tc.expected, tc.limits)
			if got != tc.want {
				t.Errorf("ChoosePartSize(%d) = %d (%.2f MiB), want %d", tc.expected, got, float64(got)/objstore.MiB, tc.want)
			}
			if tc.expected > 0 && got < objstore.MaxPartSize && got*int64(tc.limits.MaxParts) < tc.expected {
				t.Errorf("%d parts of %d cannot hold %d bytes", tc.limits.MaxParts, got, tc.expected)
			}
		})
	}
}

func TestGrowthFactor(t *testing.T) {
	for _, tc := range []struct {
		maxParts  int
		size, max int64
		want      int
	}{
		{10000, 8 << 20, 5 << 30, 10},
		{10000, 1 << 30, 5 << 30, 5},
		{10000, 3 << 30, 5 << 30, 0},
		{3, 1, 100, 3},
		{2, 1, 100, 2},
		{7, 1, 100, 7},
		{22, 1, 100, 2},       // divisors 2, 11, 22: largest up to 10
		{13 * 17, 1, 100, 13}, // no divisor up to 10: smallest above
		{1, 1, 100, 0},
	} {
		if got := objstore.GrowthFactor(tc.maxParts, tc.size, tc.max); got != tc.want {
			t.Errorf("growthFactor(%d, %d, %d) = %d, want %d", tc.maxParts, tc.size, tc.max, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	base, maxD := 100*time.Millisecond, 2*time.Second
	for attempt := 1; attempt <= 10; attempt++ {
		full := min(base<<(attempt-1), maxD)
		for range 50 {
			d := objstore.Backoff(attempt, base, maxD)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, d, full/2, full)
			}
		}
	}
}

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&objstore.StatusError{StatusCode: 500}, true},
		{&objstore.StatusError{StatusCode: 503}, true},
		{&objstore.StatusError{StatusCode: 429}, true},
		{&objstore.StatusError{StatusCode: 400}, false},
		{&objstore.StatusError{StatusCode: 403}, false},
		{&objstore.StatusError{StatusCode: 404}, false},
		{fmt.Errorf("s3: x: %w", &objstore.StatusError{StatusCode: 502}), true},
		{fmt.Errorf("s3: %w", objstore.ErrBadDigest), true},
		{fmt.Errorf("s3: %w", objstore.ErrNotExist), false},
		{fmt.Errorf("s3: %w", objstore.ErrAccessDenied), false},
		{fmt.Errorf("s3: %w", objstore.ErrPartTooSmall), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{&url.Error{Op: "Put", URL: "http://x", Err: io.EOF}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{io.ErrUnexpectedEOF, true},
		{errors.New("something else"), false},
	} {
		if got := objstore.IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func newFileStore(t *testing.T, limits objstore.Limits) objstore.Store {
	t.Helper()
	s, err := file.New(t.TempDir(), file.Options{Limits: limits}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriterBufferBound checks that the Writer never holds more than
// Concurrency+1 part buffers, however far the store lags.
func TestWriterBufferBound(t *testing.T) {
	const part = 64 << 10
	rec := storetest.NewRecorder(newFileStore(t, objstore.Limits{MinPartSize: part}))
	rec.Delay = 5 * time.Millisecond
	for _, conc := range []int{1, 2, 4} {
		w, err := objstore.NewWriter(context.Background(), rec, fmt.Sprintf("bound/%d", conc),
			objstore.WriterOptions{PartSize: part, Concurrency: conc}, testsupport.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 10_000)
		for written := 0; written < 30*part; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			if a := w.Allocated(); a > conc+1 {
				t.Fatalf("concurrency %d: %d buffers allocated, want at most %d", conc, a, conc+1)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if m := rec.MaxInFlight(); m > 4 {
		t.Errorf("max in flight %d, want at most 4", m)
	}
}

// TestWriterCancelNoHang checks that a Write blocked behind a stalled
// store returns promptly when the Writer's context is cancelled.
func TestWriterCancelNoHang(t *testing.T) {
	const part = 64 << 10
	rec := storetest.NewRecorder(newFileStore(t, objstore.Limits{MinPartSize: part}))
	rec.Delay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	w, err := objstore.NewWriter(ctx, rec, "stalled", objstore.WriterOptions{PartSize: part, Concurrency: 1},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	var werr error
	for i := 0; i < 10 && werr == nil; i++ {
		_, werr = w.Write(make([]byte, part))
	}
	if werr == nil {
		werr = w.Close()
	}
	if !errors.Is(werr, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", werr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up", d)
	}
	if err := w.Abort(context.Background()); err != nil {
		t.Errorf("abort: %v", err)
	}
}

// TestWriterOutgrowsStoreLimits checks the Writer reads a store's own
// limits (Limiter) and outgrows them without being told.
func TestWriterOutgrowsStoreLimits(t *testing.T) {
	const part = 64 << 10
	st := newFileStore(t, objstore.Limits{MinPartSize: part, MaxParts: 4})
	rec := storetest.NewRecorder(st)
	var spawned atomic.Int64 // every part upload and copy goes through WriterOptions.Go
	w, err := objstore.NewWriter(context.Background(), rec, "grown", objstore.WriterOptions{ExpectedSize: 10,
		Go: func(f func()) { spawned.Add(1); go f() }},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if w.PartSize() != part {
		t.Fatalf("part size %d, want the store minimum %d", w.PartSize(), part)
	}
	data := make([]byte, 20*part+1)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.PartSize() != 16*part || w.Info().Size != int64(len(data)) {
		t.Errorf("part size %d, size %d; want %d, %d", w.PartSize(), w.Info().Size, 16*part, len(data))
	}
	if n := spawned.Load(); n != int64(w.PartsUploaded()) {
		t.Errorf("WriterOptions.Go started %d goroutines for %d parts and copies", n, w.PartsUploaded())
	}
	if v := rec.Violations(); len(v) > 0 {
		t.Error(v)
	}
}

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "dumps/2026/db.sql.gz", "a b/ü.txt", ".hidden", "a..b", "x/.y/z", strings.Repeat("k", 1024)} {
		if err := objstore.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range append([]string{strings.Repeat("k", 1025), "\xff", "a/\x01", "a/./b"}, storetest.BadKeys...) {
		if err := objstore.ValidateKey(key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, p := range []string{"", "a/", "a/b", "dumps/2026-"} {
		if err := objstore.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "../", "a//", "a\\"} {
		if err := objstore.ValidatePrefix(p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

func TestWriterGivesUp(t *testing.T) {
	const part = 64 << 10
	rec := storetest.NewRecorder(newFileStore(t, objstore.Limits{MinPartSize: part}))
	rec.BeforeUploadPart = func(string, int, int) error {
		return &objstore.StatusError{Op: "upload part", StatusCode: 503, Code: "SlowDown"}
	}
	var parts int
	w, err := objstore.NewWriter(context.Background(), rec, "give-up", objstore.WriterOptions{
		PartSize: part, Concurrency: 1, MaxAttempts: 3, RetryBase: time.Millisecond, RetryMax: time.Millisecond,
		OnPart: func(objstore.Part) { parts++ },
	}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 3*part))
	if err == nil {
		err = w.Close()
	}
	var se *objstore.StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v, want the 503 after 3 attempts", err)
	}
	if rec.Calls() != 3 || parts != 0 {
		t.Errorf("%d calls and %d parts reported, want 3 and 0", rec.Calls(), parts)
	}
	if err := w.Abort(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWriterOptionsChecked(t *testing.T) {
	st := newFileStore(t, objstore.Limits{})
	log := testsupport.Logger(t)
	for _, tc := range []struct {
		name string
		key  string
		opts objstore.WriterOptions
	}{
		{"part below 5 MiB", "k", objstore.WriterOptions{PartSize: objstore.MiB}},
		{"part above 5 GiB", "k", objstore.WriterOptions{PartSize: objstore.MaxPartSize + 1}},
		{"empty key", "", objstore.WriterOptions{}},
	} {
		if _, err := objstore.NewWriter(context.Background(), st, tc.key, tc.opts, log); err == nil {
			t.Errorf("%s: NewWriter succeeded", tc.name)
		}
	}
	if _, err := objstore.NewWriter(context.Background(), st, "k", objstore.WriterOptions{}, nil); err == nil {
		t.Error("nil logger accepted")
	}
}

func TestWriterOnPart(t *testing.T) {
	const part = 64 << 10
	st := newFileStore(t, objstore.Limits{MinPartSize: part})
	var mu sync.Mutex
	seen := map[int]int64{}
	w, err := objstore.NewWriter(context.Background(), st, "on-part", objstore.WriterOptions{PartSize: part,
		OnPart: func(p objstore.Part) { mu.Lock(); seen[p.Number] = p.Size; mu.Unlock() }}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3*part+5)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[int]int64{1: part, 2: part, 3: part, 4: 5}
	if fmt.Sprint(seen) != fmt.Sprint(want) || w.PartsUploaded() != 4 {
		t.Errorf("OnPart saw %v (uploaded %d), want %v", seen, w.PartsUploaded(), want)
	}
}

// TestWriterHashInPartOrder checks the object's SHA-256, which the parts'
// goroutines compute in turn, when they start and finish out of order:
// every mark's State carries the hash of exactly the bytes before it, and
// the final sum is the hash of the whole stream.
func TestWriterHashInPartOrder(t *testing.T) {
	const part = 64 << 10
	rec := storetest.NewRecorder(newFileStore(t, objstore.Limits{MinPartSize: part}))
	rec.BeforeUploadPart = func(_ string, number, _ int) error {
		time.Sleep(time.Duration(4-number%4) * 3 * time.Millisecond) // later parts finish first
		return nil
	}
	// Odd parts' goroutines start late, so each part's goroutine runs
	// before the one of the part ahead of it.
	var spawned atomic.Int64
	late := func(f func()) {
		n := spawned.Add(1)
		go func() {
			if n%2 == 1 {
				time.Sleep(5 * time.Millisecond)
			}
			f()
		}()
	}
	w, err := objstore.NewWriter(context.Background(), rec, "ordered", objstore.WriterOptions{PartSize: part, Concurrency: 4, Go: late},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var stream []byte
	var marks []objstore.Mark
	chunk := make([]byte, 7_000)
	for i := 0; len(stream) < 24*part; i++ {
		for j := range chunk {
			chunk[j] = byte(i*31 + j)
		}
		cut := w.PartsCut()
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		stream = append(stream, chunk...)
		if w.PartsCut() != cut {
			marks = append(marks, w.Mark())
		}
	}
	for _, m := range marks {
		if err := w.WaitStored(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ps, err := w.StateAt(m)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ps.Durable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
			t.Fatal(err)
		}
		prefix := int64(m.Part) * part
		if want := sha256.Sum256(stream[:prefix]); !bytes.Equal(h.Sum(nil), want[:]) || st.Bytes != prefix {
			t.Fatalf("mark at part %d: state of %d bytes does not hash the first %d bytes", m.Part, st.Bytes, prefix)
		}
		if !bytes.Equal(m.Leftover, stream[prefix:prefix+int64(len(m.Leftover))]) {
			t.Fatalf("mark at part %d: leftover is not the bytes after the parts", m.Part)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(stream); w.SHA256() != hex.EncodeToString(want[:]) {
		t.Fatalf("sum %s, stream's %x", w.SHA256(), want)
	}
}
