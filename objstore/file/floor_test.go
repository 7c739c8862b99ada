package file

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
)

// fullFS reports a fixed amount of free space: the seam that fakes a
// nearly full disk.
type fullFS struct {
	OS
	free int64
}

func (f fullFS) Free(string) (int64, error) { return f.free, nil }

// TestDiskFloor: writes that would take the free space below
// MinFreeBytes fail with ErrLowDisk, leaving no object and no temporary
// file behind, whether the size is known up front (Put, UploadPart,
// Complete) or only as the bytes arrive.
func TestDiskFloor(t *testing.T) {
	const floor = 64 << 20
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		name  string
		free  int64
		write func(s *Store) error
		ok    bool
	}{
		{"put fits", floor + 8<<20, func(s *Store) error {
			_, err := s.Put(ctx, "a", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
			return err
		}, true},
		{"put over the floor", floor + 512<<10, func(s *Store) error {
			_, err := s.Put(ctx, "a", bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
			return err
		}, false},
		{"put of unknown size stops mid-stream", floor + 4<<20, func(s *Store) error {
			_, err := s.Put(ctx, "a", bytes.NewReader(bytes.Repeat(body, 20)), -1, objstore.PutOptions{})
			return err
		}, false},
		{"part over the floor", floor + 512<<10, func(s *Store) error {
			id, err := s.CreateMultipart(ctx, "a", objstore.PutOptions{})
			if err != nil {
				return err
			}
			_, err = s.UploadPart(ctx, "a", id, 1, bytes.NewReader(body), int64(len(body)), "")
			return err
		}, false},
		{"disk already below the floor", floor - 1, func(s *Store) error {
			_, err := s.Put(ctx, "a", strings.NewReader("tiny"), 4, objstore.PutOptions{})
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := New(dir, Options{MinFreeBytes: floor, FS: fullFS{free: tc.free}}, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			err = tc.write(s)
			if tc.ok {
				if err != nil {
					t.Fatalf("write with room to spare: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrLowDisk) || !strings.Contains(err.Error(), "limits.minFreeBytes") {
				t.Fatalf("write past the floor: %v, want ErrLowDisk naming the setting", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an object was written: %v", err)
			}
			if ents, _ := os.ReadDir(s.tmpDir()); len(ents) != 0 {
				t.Errorf("%d temporary files left behind", len(ents))
			}
		})
	}
}

// TestPresignedURLBindsVersion: the store's own handler serves a signed
// URL only while the object it was signed for is at the key.
func TestPresignedURLBindsVersion(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t, objstore.Limits{}, nil)
	mustPutFile(t, s, "k")
	u, err := s.PresignGet(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get := func() int {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("fresh URL: %d", code)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	mustPutFile(t, s, "k") // the same bytes, written again
	if code := get(); code != http.StatusNotFound {
		t.Fatalf("URL of a replaced object: %d, want 404", code)
	}
}
