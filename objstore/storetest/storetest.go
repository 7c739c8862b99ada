// Package storetest is the conformance suite every objstore.Store backend
// runs: Run(t, newStore, opts) from the backend's own tests. It covers the
// object calls, multipart (including the backend refusing a too-small
// non-final part), ranged get, presign fetched with a plain net/http
// client, list, delete, abort, ListUploads, NoOverwrite and bad keys, and
// the streaming objstore.Writer on top of the backend: R2-rule parts,
// retries, outgrowing the part size, and resume without re-uploading.
package storetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// Options tune the suite for a backend.
type Options struct {
	// Logger for Writers; nil discards.
	Logger *slog.Logger
	// KeyPrefix is prepended to every key (for example to share a bucket).
	KeyPrefix string
	// Only, if not empty, names the subtests to run (for example a quick
	// subset for a second run with other limits); empty runs them all.
	Only []string
}

// Run runs the conformance suite. newStore returns a store for one
// subtest; it may return the same backend each time, as every subtest
// uses keys of its own.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store, opts Options) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &suite{newStore: newStore, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"PutGetHead", s.testPutGetHead},
		{"RangedGet", s.testRangedGet},
		{"NoOverwrite", s.testNoOverwrite},
		{"List", s.testList},
		{"Delete", s.testDelete},
		{"BadKeys", s.testBadKeys},
		{"Multipart", s.testMultipart},
		{"PartTooSmall", s.testPartTooSmall},
		{"BadDigest", s.testBadDigest},
		{"Abort", s.testAbort},
		{"ListUploads", s.testListUploads},
		{"ListPaging", s.testListPaging},
		{"UploadPartCopy", s.testUploadPartCopy},
		{"Presign", s.testPresign},
		{"WriterSizes", s.testWriterSizes},
		{"WriterConcurrency", s.testWriterConcurrency},
		{"WriterRetry", s.testWriterRetry},
		{"WriterNoRetryOn4xx", s.testWriterNoRetry},
		{"WriterNoOverwrite", s.testWriterNoOverwrite},
		{"WriterLostAnswer", s.testWriterLostAnswer},
		{"WriterAbort", s.testWriterAbort},
		{"WriterOutgrow", s.testWriterOutgrow},
		{"WriterResume", s.testWriterResume},
		{"WriterResumeAfterCrash", s.testWriterResumeCrash},
		{"WriterResumeMismatch", s.testWriterResumeMismatch},
		{"WriterSealed", s.testWriterSealed},
	}
	for _, tc := range tests {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, tc.name) {
			continue
		}
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	newStore func(t *testing.T) objstore.Store
	opts     Options
}

// key returns a key unique to this test run.
func (s *suite) key(t *testing.T, name string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	test := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return s.opts.KeyPrefix + "storetest/" + test + "-" + hex.EncodeToString(b[:]) + "/" + name
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// randBytes returns n pseudo-random bytes (random so that any misplaced
// byte range shows).
func randBytes(t *testing.T, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func md5b64(b []byte) string {
	d := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(d[:])
}

func mustPut(t *testing.T, st objstore.Store, key string, data []byte, opts objstore.PutOptions) objstore.ObjectInfo {
	t.Helper()
	info, err := st.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func readAll(t *testing.T, st objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, _, err := st.Get(ctxT(t), key, off, n)
	if err != nil {
		t.Fatalf("get %s [%d,+%d]: %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func (s *suite) testPutGetHead(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "obj.bin")
	data := randBytes(t, 1000)
	info := mustPut(t, st, key, data, objstore.PutOptions{ContentType: "application/x-test", Metadata: map[string]string{"color": "blue"}})
	if info.Size != 1000 {
		t.Errorf("put size = %d, want 1000", info.Size)
	}
	h, err := st.Head(ctx, key)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if h.Size != 1000 || h.ETag == "" || h.ContentType != "application/x-test" || h.Metadata["color"] != "blue" {
		t.Errorf("head = %+v; want size 1000, an ETag, the content type and color=blue", h)
	}
	if got := readAll(t, st, key, 0, -1); !bytes.Equal(got, data) {
		t.Errorf("get returned %d bytes differing from the %d put", len(got), len(data))
	}
	empty := s.key(t, "empty")
	mustPut(t, st, empty, nil, objstore.PutOptions{})
	if got := readAll(t, st, empty, 0, -1); len(got) != 0 {
		t.Errorf("empty object read %d bytes", len(got))
	}
	missing := s.key(t, "missing")
	if _, err := st.Head(ctx, missing); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("head missing: err = %v, want ErrNotExist", err)
	}
	if _, _, err := st.Get(ctx, missing, 0, -1); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("get missing: err = %v, want ErrNotExist", err)
	}
}

func (s *suite) testRangedGet(t *testing.T) {
	st := s.newStore(t)
	key := s.key(t, "ranged")
	data := randBytes(t, 4096)
	mustPut(t, st, key, data, objstore.PutOptions{})
	for _, tc := range []struct {
		name      string
		off, n    int64
		wantStart int64
		wantLen   int64
	}{
		{"whole", 0, -1, 0, 4096},
		{"first byte", 0, 1, 0, 1},
		{"middle", 100, 1000, 100, 1000},
		{"tail from offset", 4000, -1, 4000, 96},
		{"last byte", 4095, 1, 4095, 1},
		{"length past end", 4000, 1000, 4000, 96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, st, key, tc.off, tc.n)
			if want := data[tc.wantStart : tc.wantStart+tc.wantLen]; !bytes.Equal(got, want) {
				t.Errorf("got %d bytes, want %d bytes from %d", len(got), len(want), tc.wantStart)
			}
		})
	}
}

func (s *suite) testNoOverwrite(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "once")
	first := []byte("first")
	mustPut(t, st, key, first, objstore.PutOptions{NoOverwrite: true})
	_, err := st.Put(ctx, key, strings.NewReader("second"), 6, objstore.PutOptions{NoOverwrite: true})
	if !errors.Is(err, objstore.ErrExist) {
		t.Fatalf("second put with NoOverwrite: err = %v, want ErrExist", err)
	}
	if got := readAll(t, st, key, 0, -1); !bytes.Equal(got, first) {
		t.Fatalf("object changed to %q", got)
	}
	// Multipart Complete with NoOverwrite is refused too.
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{ContentMD5Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.UploadPart(ctx, key, id, 1, strings.NewReader("xyz"), 3, md5b64([]byte("xyz")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CompleteMultipart(ctx, key, id, []objstore.Part{p}, objstore.PutOptions{NoOverwrite: true})
	if !errors.Is(err, objstore.ErrExist) {
		t.Fatalf("complete with NoOverwrite over an object: err = %v, want ErrExist", err)
	}
	if got := readAll(t, st, key, 0, -1); !bytes.Equal(got, first) {
		t.Fatalf("object changed to %q", got)
	}
	_ = st.AbortMultipart(ctx, key, id)
	// Without NoOverwrite, Put replaces.
	mustPut(t, st, key, []byte("third"), objstore.PutOptions{})
	if got := readAll(t, st, key, 0, -1); string(got) != "third" {
		t.Fatalf("overwrite: got %q", got)
	}
}

func (s *suite) testList(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	base := s.key(t, "")
	names := []string{"a/1", "a/2", "a/sub/3", "ab", "b/1"}
	for _, n := range names {
		mustPut(t, st, base+n, []byte(n), objstore.PutOptions{})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", names},
		{"a/", []string{"a/1", "a/2", "a/sub/3"}},
		{"a", []string{"a/1", "a/2", "a/sub/3", "ab"}},
		{"a/s", []string{"a/sub/3"}},
		{"b/1", []string{"b/1"}},
		{"c", nil},
	} {
		got, err := st.List(ctx, base+tc.prefix)
		if err != nil {
			t.Fatalf("list %q: %v", tc.prefix, err)
		}
		var keys []string
		for _, o := range got {
			keys = append(keys, strings.TrimPrefix(o.Key, base))
			if o.Size != int64(len(strings.TrimPrefix(o.Key, base))) {
				t.Errorf("list %q: %s has size %d", tc.prefix, o.Key, o.Size)
			}
		}
		if strings.Join(keys, ",") != strings.Join(tc.want, ",") {
			t.Errorf("list %q = %v, want %v", tc.prefix, keys, tc.want)
		}
	}
}

func (s *suite) testDelete(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "dir/gone")
	mustPut(t, st, key, []byte("x"), objstore.PutOptions{})
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := st.Head(ctx, key); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("head after delete: err = %v, want ErrNotExist", err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("deleting a missing object: %v, want nil", err)
	}
	if l, err := st.List(ctx, strings.TrimSuffix(key, "gone")); err != nil || len(l) != 0 {
		t.Fatalf("list after delete = %v, %v; want empty", l, err)
	}
}

// BadKeys are keys every backend must refuse with ErrInvalidKey before
// doing anything.
var BadKeys = []string{"", "/abs", "a/../b", "..", "../escape", "a/..", "nul\x00byte", `back\slash`, "a//b", "trailing/", "./a"}

func (s *suite) testBadKeys(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	for _, key := range BadKeys {
		checks := map[string]error{}
		_, checks["put"] = st.Put(ctx, key, strings.NewReader("x"), 1, objstore.PutOptions{})
		_, _, checks["get"] = st.Get(ctx, key, 0, -1)
		_, checks["head"] = st.Head(ctx, key)
		checks["delete"] = st.Delete(ctx, key)
		_, checks["create"] = st.CreateMultipart(ctx, key, objstore.PutOptions{})
		_, checks["presign"] = st.PresignGet(ctx, key, time.Minute)
		for op, err := range checks {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s %q: err = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
}

// partSize returns the store's minimum part size.
func partSize(st objstore.Store) int64 { return objstore.LimitsOf(st).MinPartSize }

func (s *suite) testMultipart(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "multi")
	ps := partSize(st)
	data := randBytes(t, 2*ps+123)
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{ContentMD5Parts: true, ContentType: "text/x-multi", Metadata: map[string]string{"at-create": "1"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	chunks := [][]byte{data[:ps], data[ps : 2*ps], data[2*ps:]}
	var parts []objstore.Part
	// Upload out of order, as parallel uploaders do.
	for _, i := range []int{2, 0, 1} {
		p, err := st.UploadPart(ctx, key, id, i+1, bytes.NewReader(chunks[i]), int64(len(chunks[i])), md5b64(chunks[i]))
		if err != nil {
			t.Fatalf("upload part %d: %v", i+1, err)
		}
		if p.Number != i+1 || p.ETag == "" {
			t.Fatalf("part %d = %+v", i+1, p)
		}
		parts = append(parts, p)
	}
	listed, err := st.ListParts(ctx, key, id)
	if err != nil {
		t.Fatalf("list parts: %v", err)
	}
	if len(listed) != 3 {
		t.Fatalf("list parts: %d parts, want 3", len(listed))
	}
	for i, p := range listed {
		if p.Number != i+1 || p.Size != int64(len(chunks[i])) || strings.Trim(p.ETag, `"`) == "" {
			t.Errorf("listed part %d = %+v, want number %d size %d", i, p, i+1, len(chunks[i]))
		}
	}
	// Re-uploading a part number replaces it.
	p1, err := st.UploadPart(ctx, key, id, 1, bytes.NewReader(chunks[0]), ps, md5b64(chunks[0]))
	if err != nil {
		t.Fatalf("re-upload part 1: %v", err)
	}
	info, err := st.CompleteMultipart(ctx, key, id, []objstore.Part{p1, parts[2], parts[0]},
		objstore.PutOptions{Metadata: map[string]string{"sha256": "at-complete"}, NoOverwrite: true})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("complete size = %d, want %d", info.Size, len(data))
	}
	if got := readAll(t, st, key, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("completed object differs (%d bytes, want %d)", len(got), len(data))
	}
	h, err := st.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata["at-create"] != "1" || h.Metadata["sha256"] != "at-complete" || h.ContentType != "text/x-multi" {
		t.Errorf("head after complete = %+v; want metadata from create and complete and the content type", h)
	}
	if _, err := st.ListParts(ctx, key, id); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("list parts after complete: err = %v, want ErrNotExist", err)
	}
}

func (s *suite) testPartTooSmall(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "small")
	small := min(objstore.MiB, partSize(st)-1)
	a, b := randBytes(t, small), randBytes(t, 10)
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{ContentMD5Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.AbortMultipart(context.Background(), key, id) })
	p1, err := st.UploadPart(ctx, key, id, 1, bytes.NewReader(a), small, md5b64(a))
	if err == nil {
		var p2 objstore.Part
		p2, err = st.UploadPart(ctx, key, id, 2, bytes.NewReader(b), 10, md5b64(b))
		if err == nil {
			_, err = st.CompleteMultipart(ctx, key, id, []objstore.Part{p1, p2}, objstore.PutOptions{})
		}
	}
	if !errors.Is(err, objstore.ErrPartTooSmall) {
		t.Fatalf("a %d-byte non-final part: err = %v, want ErrPartTooSmall", small, err)
	}
	if _, err := st.Head(ctx, key); !errors.Is(err, objstore.ErrNotExist) {
		t.Fatalf("object exists after a refused complete: %v", err)
	}
}

func (s *suite) testBadDigest(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "digest")
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{ContentMD5Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.AbortMultipart(context.Background(), key, id) })
	_, err = st.UploadPart(ctx, key, id, 1, strings.NewReader("hello"), 5, md5b64([]byte("hellO")))
	if !errors.Is(err, objstore.ErrBadDigest) {
		t.Fatalf("part with a wrong Content-MD5: err = %v, want ErrBadDigest", err)
	}
	if !objstore.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false, want true", err)
	}
}

func (s *suite) testAbort(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "aborted")
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadPart(ctx, key, id, 1, strings.NewReader("abc"), 3, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.AbortMultipart(ctx, key, id); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if _, err := st.ListParts(ctx, key, id); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("list parts after abort: err = %v, want ErrNotExist", err)
	}
	if ups, err := st.ListUploads(ctx, key); err != nil || len(ups) != 0 {
		t.Errorf("uploads after abort = %v, %v; want none", ups, err)
	}
	if err := st.AbortMultipart(ctx, key, id); err != nil && !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("second abort: err = %v, want nil or ErrNotExist", err)
	}
	if _, err := st.Head(ctx, key); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("object after abort: err = %v", err)
	}
}

func (s *suite) testListUploads(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	base := s.key(t, "")
	ids := map[string]string{}
	for _, n := range []string{"x/1", "x/2", "y/1"} {
		id, err := st.CreateMultipart(ctx, base+n, objstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
		t.Cleanup(func() { _ = st.AbortMultipart(context.Background(), base+n, id) })
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{{"", []string{"x/1", "x/2", "y/1"}}, {"x/", []string{"x/1", "x/2"}}, {"y", []string{"y/1"}}, {"z", nil}} {
		ups, err := st.ListUploads(ctx, base+tc.prefix)
		if err != nil {
			t.Fatalf("list uploads %q: %v", tc.prefix, err)
		}
		var got []string
		for _, u := range ups {
			n := strings.TrimPrefix(u.Key, base)
			got = append(got, n)
			if ids[n] != u.UploadID {
				t.Errorf("upload %s has id %q, want %q", n, u.UploadID, ids[n])
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("list uploads %q = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func (s *suite) testUploadPartCopy(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	ps := partSize(st)
	src, dst := s.key(t, "src"), s.key(t, "dst")
	data := randBytes(t, 2*ps+7)
	mustPut(t, st, src, data, objstore.PutOptions{})
	id, err := st.CreateMultipart(ctx, dst, objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []objstore.Part
	for i, r := range [][2]int64{{0, ps}, {ps, ps}, {2 * ps, 7}} {
		p, err := st.UploadPartCopy(ctx, dst, id, i+1, src, r[0], r[1])
		if err != nil {
			t.Fatalf("copy part %d: %v", i+1, err)
		}
		parts = append(parts, p)
	}
	if _, err := st.CompleteMultipart(ctx, dst, id, parts, objstore.PutOptions{}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if got := readAll(t, st, dst, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("copied object differs")
	}
}

func (s *suite) testPresign(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	key := s.key(t, "shared file.txt")
	data := randBytes(t, 3000)
	mustPut(t, st, key, data, objstore.PutOptions{})
	u, err := st.PresignGet(ctx, key, 5*time.Minute)
	if err != nil {
		t.Fatalf("presign: %v", err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	fetch := func(u string, hdr map[string]string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET presigned URL: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := fetch(u, nil); code != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("GET presigned URL: status %d, %d bytes; want 200 and the object", code, len(b))
	}
	if code, b := fetch(u, map[string]string{"Range": "bytes=10-19"}); code != http.StatusPartialContent || !bytes.Equal(b, data[10:20]) {
		t.Errorf("ranged GET: status %d, %q", code, b)
	}
	// A tampered signature is refused.
	bad := tamper(u)
	if code, _ := fetch(bad, nil); code < 400 || code >= 500 {
		t.Errorf("GET with a tampered signature: status %d, want 4xx", code)
	}
}

// tamper flips the last hex/base64 character of the URL's signature.
func tamper(u string) string {
	for _, p := range []string{"sig=", "X-Amz-Signature="} {
		if i := strings.Index(u, p); i >= 0 {
			j := i + len(p)
			c := u[j]
			r := byte('0')
			if c == '0' {
				r = '1'
			}
			return u[:j] + string(r) + u[j+1:]
		}
	}
	return u + "0"
}

// testListPaging checks ListParts and ListUploads follow every page (S3
// returns at most 1,000 entries per page).
func (s *suite) testListPaging(t *testing.T) {
	st := s.newStore(t)
	ctx := ctxT(t)
	const n = 1001
	base := s.key(t, "")
	key := base + "parts"
	id, err := st.CreateMultipart(ctx, key, objstore.PutOptions{ContentMD5Parts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.AbortMultipart(context.Background(), key, id) })
	ids := make([]string, n)
	var g errgroup
	for i := 1; i <= n; i++ {
		g.Go(func() error {
			b := []byte{byte(i)}
			_, err := st.UploadPart(ctx, key, id, i, bytes.NewReader(b), 1, md5b64(b))
			return err
		})
		g.Go(func() error {
			k := fmt.Sprintf("%sup/%04d", base, i)
			uid, err := st.CreateMultipart(ctx, k, objstore.PutOptions{})
			ids[i-1] = uid
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var g errgroup
		for i, uid := range ids {
			g.Go(func() error {
				return st.AbortMultipart(context.Background(), fmt.Sprintf("%sup/%04d", base, i+1), uid)
			})
		}
		_ = g.Wait()
	})
	parts, err := st.ListParts(ctx, key, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != n || parts[0].Number != 1 || parts[n-1].Number != n {
		t.Errorf("ListParts returned %d parts, want %d in order", len(parts), n)
	}
	ups, err := st.ListUploads(ctx, base+"up/")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != n {
		t.Errorf("ListUploads returned %d uploads, want %d", len(ups), n)
	}
}

// errgroup runs functions with bounded parallelism and keeps the first
// error.
type errgroup struct {
	wg   sync.WaitGroup
	sem  chan struct{}
	mu   sync.Mutex
	err  error
	once sync.Once
}

func (g *errgroup) Go(fn func() error) {
	g.once.Do(func() { g.sem = make(chan struct{}, 8) })
	g.wg.Add(1)
	g.sem <- struct{}{}
	go func() {
		defer g.wg.Done()
		defer func() { <-g.sem }()
		if err := fn(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *errgroup) Wait() error {
	g.wg.Wait()
	return g.err
}
