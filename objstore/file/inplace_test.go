package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/storetest"
)

// TestInPlaceLayout checks the in-place layout: parts of one size land in
// one data file (plus the sidecar, and the short last part on its own
// when it comes first), a new Store on the same directory lists them from
// the sidecar, and Complete makes the data file the object without a
// copy (the object is the same inode).
func TestInPlaceLayout(t *testing.T) {
	const ps = 64 << 10
	tests := []struct {
		name  string
		hint  int64 // PutOptions.PartSize
		order []int // upload order of parts 1..3
	}{
		{"size given at create", ps, []int{3, 1, 2}},
		{"size from the first full part", 0, []int{1, 3, 2}},
		{"short last part first", 0, []int{3, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t, objstore.Limits{MinPartSize: ps}, nil)
			data := make([]byte, 2*ps+1000)
			rand.Read(data)
			chunks := [][]byte{data[:ps], data[ps : 2*ps], data[2*ps:]}
			id, err := s.CreateMultipart(ctx, "k/obj", objstore.PutOptions{PartSize: tc.hint})
			if err != nil {
				t.Fatal(err)
			}
			parts := make([]objstore.Part, 3)
			for _, n := range tc.order {
				c := chunks[n-1]
				if parts[n-1], err = s.UploadPart(ctx, "k/obj", id, n, bytes.NewReader(c), int64(len(c)), ""); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.SyncUpload(ctx, "k/obj", id); err != nil {
				t.Fatal(err)
			}
			dir := s.uploadDir(id)
			var names []string
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !slices.Contains(names, dataFile) || !slices.Contains(names, sidecarFile) || len(names) > 4 {
				t.Errorf("upload directory holds %v, want the data file, the sidecar, upload.json and at most the last part", names)
			}
			// Another process lists the parts from the sidecar.
			s2, err := New(s.Root(), Options{Limits: objstore.Limits{MinPartSize: ps}}, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			listed, err := s2.ListParts(ctx, "k/obj", id)
			if err != nil || len(listed) != 3 {
				t.Fatalf("list parts from the sidecar: %v %v", listed, err)
			}
			for i, p := range listed {
				if p.Number != i+1 || p.ETag != parts[i].ETag || p.Size != int64(len(chunks[i])) {
					t.Errorf("listed %+v, uploaded %+v", p, parts[i])
				}
				// Full parts are written in place, with a CRC32C checksum.
				crc := binary.BigEndian.AppendUint32(nil, crc32.Checksum(chunks[i], crc32.MakeTable(crc32.Castagnoli)))
				if want := base64.StdEncoding.EncodeToString(crc); i < 2 && p.Checksum != want {
					t.Errorf("part %d checksum %s, want the CRC32C %s", p.Number, p.Checksum, want)
				}
			}
			before, err := os.Stat(filepath.Join(dir, dataFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s2.CompleteMultipart(ctx, "k/obj", id, parts, objstore.PutOptions{NoOverwrite: true}); err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(s2.objPath("k/obj"))
			if err != nil {
				t.Fatal(err)
			}
			if before.Sys().(*syscall.Stat_t).Ino != after.Sys().(*syscall.Stat_t).Ino {
				t.Error("the object is a copy, not the upload's data file")
			}
			if got := storetest.ReadObject(t, s2, "k/obj"); !bytes.Equal(got, data) {
				t.Fatalf("object differs (%d bytes, want %d)", len(got), len(data))
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("upload directory left after complete: %v", err)
			}
		})
	}
}

// TestUploadPartBodies checks that a part's body is taken only when it
// has exactly the size announced and the request is still live, both
// written in place and as a file of its own, with bodies of more than
// one copy chunk.
func TestUploadPartBodies(t *testing.T) {
	const ps = copyBufSize + copyBufSize/2
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		body    int // bytes in the body; the part announces ps
		wantErr bool
	}{
		{"exact", context.Background(), ps, false},
		{"short", context.Background(), ps - 1, true},
		{"long", context.Background(), ps + 1, true},
		{"cancelled", cancelled, ps, true},
	}
	for _, layout := range []struct {
		name string
		hint int64 // PutOptions.PartSize: ps writes in place, 0 writes part files
	}{{"in place", ps}, {"part file", 0}} {
		for _, tc := range tests {
			t.Run(layout.name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				s := newTestStore(t, objstore.Limits{MinPartSize: ps}, nil)
				id, err := s.CreateMultipart(ctx, "k", objstore.PutOptions{PartSize: layout.hint})
				if err != nil {
					t.Fatal(err)
				}
				data := make([]byte, tc.body)
				rand.Read(data)
				_, err = s.UploadPart(tc.ctx, "k", id, 1, bytes.NewReader(data), ps, "")
				if (err != nil) != tc.wantErr {
					t.Fatalf("upload part: err = %v, want error %v", err, tc.wantErr)
				}
				parts, lerr := s.ListParts(ctx, "k", id)
				if lerr != nil {
					t.Fatal(lerr)
				}
				if tc.wantErr {
					if len(parts) != 0 {
						t.Errorf("a refused part is listed: %+v", parts)
					}
					return
				}
				if _, err := s.CompleteMultipart(ctx, "k", id, parts, objstore.PutOptions{}); err != nil {
					t.Fatal(err)
				}
				if got := storetest.ReadObject(t, s, "k"); !bytes.Equal(got, data) {
					t.Errorf("object differs (%d bytes, want %d)", len(got), len(data))
				}
			})
		}
	}
}
