package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// TestSyncUploadDropsCache checks that a checkpoint's sync takes the data
// file's pages out of the page cache, and that the object is whole after
// it.
func TestSyncUploadDropsCache(t *testing.T) {
	const ps = 1 << 20
	ctx := context.Background()
	s := newTestStore(t, objstore.Limits{MinPartSize: ps}, nil)
	var st unix.Statfs_t
	if err := unix.Statfs(s.Root(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		t.Skip("the test directory is in memory: its pages are the files")
	}
	id, err := s.CreateMultipart(ctx, "k/obj", objstore.PutOptions{PartSize: ps})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4*ps)
	rand.Read(data)
	var parts []objstore.Part
	for n := 1; n <= 4; n++ {
		p, err := s.UploadPart(ctx, "k/obj", id, n, bytes.NewReader(data[(n-1)*ps:n*ps]), ps, "")
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	path := filepath.Join(s.uploadDir(id), dataFile)
	if n := residentPages(t, path); n == 0 {
		t.Fatal("no page of the parts just written is cached: the test cannot see a drop")
	}
	if err := s.SyncUpload(ctx, "k/obj", id); err != nil {
		t.Fatal(err)
	}
	if n := residentPages(t, path); n != 0 {
		t.Errorf("%d pages of the synced data file are still cached, want 0", n)
	}
	if _, err := s.CompleteMultipart(ctx, "k/obj", id, parts, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := storetest.ReadObject(t, s, "k/obj"); !bytes.Equal(got, data) {
		t.Errorf("the object reads back as %d bytes, not the %d written", len(got), len(data))
	}
}

// residentPages counts the pages of the file at path in the page cache.
func residentPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	// x/sys has no mincore wrapper.
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
