package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// faultFS wraps OS, failing writes once budget bytes have been written
// (with err, or as a short write when err is nil) or failing Sync.
type faultFS struct {
	OS
	mu       sync.Mutex
	budget   int64
	err      error
	syncFail bool
}

func (f *faultFS) CreateTemp(dir, pattern string) (File, error) {
	file, err := f.OS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if int64(len(p)) <= f.fs.budget {
		f.fs.budget -= int64(len(p))
		return f.File.Write(p)
	}
	n := int(f.fs.budget)
	f.fs.budget = 0
	if _, err := f.File.Write(p[:n]); err != nil {
		return 0, err
	}
	return n, f.fs.err
}

func (f *faultFile) Sync() error {
	if f.fs.syncFail {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func tmpEntries(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		fault   *faultFS
		wantMsg string
		wantErr error
	}{
		{"ENOSPC", &faultFS{budget: 1000, err: &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}}, "disk full", syscall.ENOSPC},
		{"short write", &faultFS{budget: 1000}, "short write", nil},
		{"sync fails", &faultFS{budget: 1 << 30, syncFail: true}, "input/output error", syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fault := tc.fault
			s := newTestStore(t, objstore.Limits{MinPartSize: 1024}, fault)
			data := bytes.Repeat([]byte("x"), 5000)
			check := func(op string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s succeeded on a failing disk", op)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Errorf("%s: err = %v; want it to say %q", op, err, tc.wantMsg)
				}
				if !strings.Contains(err.Error(), s.Root()) && tc.wantMsg != "input/output error" {
					t.Errorf("%s: err = %v does not name the store root", op, err)
				}
				if objstore.IsRetryable(err) {
					t.Errorf("%s: a full disk must not be retried: %v", op, err)
				}
			}
			_, err := s.Put(ctx, "obj", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
			check("put", err)
			if _, err := s.Head(ctx, "obj"); !errors.Is(err, objstore.ErrNotExist) {
				t.Errorf("object exists after a failed put: %v", err)
			}
			if left := tmpEntries(t, s); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
			fault.mu.Lock()
			fault.budget = 1 << 30
			fault.mu.Unlock()
			id, err := s.CreateMultipart(ctx, "obj", objstore.PutOptions{})
			if err != nil && tc.name != "sync fails" {
				t.Fatal(err)
			}
			if tc.name == "sync fails" {
				return
			}
			fault.mu.Lock()
			fault.budget = 100
			fault.mu.Unlock()
			_, err = s.UploadPart(ctx, "obj", id, 1, bytes.NewReader(data), int64(len(data)), "")
			check("upload part", err)
			if left := tmpEntries(t, s); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestWriterDiskFull checks the error the dump engine sees when the
// disk fills during a streaming upload.
func TestWriterDiskFull(t *testing.T) {
	fault := &faultFS{budget: 300 << 10, err: &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}}
	s := newTestStore(t, objstore.Limits{MinPartSize: 64 << 10}, fault)
	w, err := objstore.NewWriter(context.Background(), s, "dump.sql", objstore.WriterOptions{PartSize: 64 << 10},
		testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20 && err == nil; i++ {
		_, err = w.Write(make([]byte, 64<<10))
	}
	if err == nil {
		err = w.Close()
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want a disk-full error", err)
	}
	if err := w.Abort(context.Background()); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if ups, _ := s.ListUploads(context.Background(), ""); len(ups) != 0 {
		t.Errorf("uploads left: %v", ups)
	}
}

// snapshot lists every path under dir with its size.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+fi.ModTime().String()+" "+fmt.Sprint(fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestBadKeysTouchNothing checks that keys escaping the root are refused
// before any file, inside or outside the root, is created or read.
func TestBadKeysTouchNothing(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	s, err := New(root, Options{SigningKey: []byte("k"), BaseURL: "http://127.0.0.1:1"}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPutFile(t, s, "ok/obj")
	id, err := s.CreateMultipart(ctx, "ok/obj2", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, parent)
	bad := append([]string{"../secret", "../../etc/passwd", "ok/../../secret", ".sluice/meta/ok/obj.json",
		".sluice", "a/\x00", "C:\\x", "\x7f", "ok/./obj", strings.Repeat("a", 1025), "\xff"}, storetest.BadKeys...)
	for _, key := range bad {
		errs := map[string]error{}
		_, errs["put"] = s.Put(ctx, key, strings.NewReader("pwned"), 5, objstore.PutOptions{})
		_, _, errs["get"] = s.Get(ctx, key, 0, -1)
		_, errs["head"] = s.Head(ctx, key)
		errs["delete"] = s.Delete(ctx, key)
		_, errs["create"] = s.CreateMultipart(ctx, key, objstore.PutOptions{})
		_, errs["upload part"] = s.UploadPart(ctx, key, id, 1, strings.NewReader("x"), 1, "")
		_, errs["copy part src"] = s.UploadPartCopy(ctx, "ok/obj2", id, 1, key, 0, 1)
		_, errs["list parts"] = s.ListParts(ctx, key, id)
		_, errs["complete"] = s.CompleteMultipart(ctx, key, id, []objstore.Part{{Number: 1, ETag: "x"}}, objstore.PutOptions{})
		errs["abort"] = s.AbortMultipart(ctx, key, id)
		_, errs["presign"] = s.PresignGet(ctx, key, time.Minute)
		for op, err := range errs {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s %q: err = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, p := range []string{"../", "/abs", "a/../../", "x\x00"} {
		if _, err := s.List(ctx, p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("list %q: err = %v, want ErrInvalidKey", p, err)
		}
		if _, err := s.ListUploads(ctx, p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("list uploads %q: err = %v, want ErrInvalidKey", p, err)
		}
	}
	// Upload ids are paths too.
	for _, id := range []string{"../../secret", "..", "", strings.Repeat("g", 32)} {
		if _, err := s.UploadPart(ctx, "ok/obj2", id, 1, strings.NewReader("x"), 1, ""); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("upload part with id %q: err = %v, want ErrNotExist", id, err)
		}
		if err := s.AbortMultipart(ctx, "ok/obj2", id); !errors.Is(err, objstore.ErrNotExist) {
			t.Errorf("abort with id %q: err = %v, want ErrNotExist", id, err)
		}
	}
	if after := snapshot(t, parent); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("bad keys changed the filesystem:\nbefore %v\nafter  %v", before, after)
	}
}

func mustPutFile(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, strings.NewReader("data"), 4, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestKeyConflicts(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, objstore.Limits{}, nil)
	mustPutFile(t, s, "a")
	if _, err := s.Put(ctx, "a/b", strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrExist) {
		t.Errorf("put under an object: err = %v, want ErrExist", err)
	}
	mustPutFile(t, s, "d/e")
	if _, err := s.Put(ctx, "d", strings.NewReader("x"), 1, objstore.PutOptions{}); !errors.Is(err, objstore.ErrExist) {
		t.Errorf("put over a key prefix: err = %v, want ErrExist", err)
	}
	if _, err := s.Head(ctx, "d"); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("head of a key prefix: err = %v, want ErrNotExist", err)
	}
	// Internal files never show in List.
	if _, err := s.CreateMultipart(ctx, "up", objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range l {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "a,d/e" {
		t.Errorf("list = %v, want [a d/e]", keys)
	}
}

func TestPartLimits(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, objstore.Limits{MinPartSize: 10, MaxPartSize: 100, MaxParts: 3}, nil)
	id, err := s.CreateMultipart(ctx, "k", objstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		num  int
		size int
	}{{0, 10}, {4, 10}, {1, 101}} {
		if _, err := s.UploadPart(ctx, "k", id, tc.num, bytes.NewReader(make([]byte, tc.size)), int64(tc.size), ""); err == nil {
			t.Errorf("part %d of %d bytes accepted", tc.num, tc.size)
		}
	}
	// A body shorter than announced is refused.
	if _, err := s.UploadPart(ctx, "k", id, 1, bytes.NewReader(make([]byte, 5)), 10, ""); err == nil {
		t.Error("short body accepted")
	}
}

func TestPresignVerify(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	s := newTestStore(t, objstore.Limits{}, nil)
	s.opts.Now = func() time.Time { return now }
	mustPutFile(t, s, "dir/a b+c.txt")
	u, err := s.PresignGet(ctx, "dir/a b+c.txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pu.EscapedPath(), "/files/dir/a%20b+c.txt") {
		t.Errorf("path %s", pu.EscapedPath())
	}
	key := strings.TrimPrefix(pu.Path, FilesPath)
	exp, v, sig := pu.Query().Get("expires"), pu.Query().Get("v"), pu.Query().Get("sig")
	for _, tc := range []struct {
		name             string
		key, exp, v, sig string
		at               time.Time
		want             error
	}{
		{"valid", key, exp, v, sig, now, nil},
		{"valid until expiry", key, exp, v, sig, now.Add(time.Minute), nil},
		{"expired", key, exp, v, sig, now.Add(time.Minute + time.Second), ErrExpired},
		{"other key", "dir/other", exp, v, sig, now, ErrBadSignature},
		{"extended expiry", key, "1800000000", v, sig, now, ErrBadSignature},
		{"other version", key, exp, "0123456789abcdef", sig, now, ErrBadSignature},
		{"bad sig", key, exp, v, strings.Repeat("0", 64), now, ErrBadSignature},
		{"garbage", key, "soon", v, "zz", now, ErrBadSignature},
	} {
		if err := s.Verify(tc.key, tc.exp, tc.v, tc.sig, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Served URLs: expired is 403.
	now = now.Add(2 * time.Minute)
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired URL: status %d, want 403", resp.StatusCode)
	}
	if _, err := s.PresignGet(ctx, "missing", time.Minute); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("presign missing: %v", err)
	}
	if _, err := s.PresignGet(ctx, "dir/a b+c.txt", 8*24*time.Hour); err == nil {
		t.Error("presign beyond 7 days accepted")
	}
	unsigned, err := New(t.TempDir(), Options{}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unsigned.PresignGet(ctx, "x", time.Minute); err == nil {
		t.Error("presign without a signing key succeeded")
	}
}

func TestSweepStaleTmp(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, Options{}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(s.tmpDir(), "w-old"), filepath.Join(s.tmpDir(), "w-fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir, Options{}, testsupport.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}
