package dump

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestZipManyEntries crosses the 65535-entry limit of the classic end
// record, so the ZIP64 end records are required, and checks archive/zip
// reads every entry.
func TestZipManyEntries(t *testing.T) {
	const n = 65536 + 3
	var z zipWriter
	var b []byte
	for i := range n {
		z.beginEntry(&b, "t"+fmt.Sprint(i))
		start := len(b)
		b = fmt.Appendf(b, "\"v\"\r\n%d\r\n", i)
		z.data(b[start:])
		z.endEntry(&b)
		if i == n/2 { // a resume halfway through must not change anything
			st := z.appendState(nil)
			var nz zipWriter
			if rest, err := nz.restore(st); err != nil || len(rest) != 0 {
				t.Fatalf("restore: %v (%d bytes left)", err, len(rest))
			}
			z = nz
		}
	}
	z.finish(&b)
	if int64(len(b)) != z.off {
		t.Fatalf("counted %d bytes, wrote %d", z.off, len(b))
	}
	checkEndRecords(t, b, n, true)
	files := openZip(t, b)
	if len(files) != n {
		t.Fatalf("archive/zip read %d entries, want %d", len(files), n)
	}
	for _, i := range []int{0, 1, 65534, 65535, 65536, n - 1} {
		if want := fmt.Sprintf("\"v\"\r\n%d\r\n", i); string(readZipEntry(t, files[i])) != want || files[i].Name != fmt.Sprintf("t%d.csv", i) {
			t.Errorf("entry %d: %q %q", i, files[i].Name, readZipEntry(t, files[i]))
		}
	}
}

// checkEndRecords finds the end of central directory record and checks
// whether the ZIP64 end records precede it.
func checkEndRecords(t *testing.T, b []byte, entries int, zip64 bool) {
	t.Helper()
	end := b[len(b)-22:]
	if binary.LittleEndian.Uint32(end) != zipEndSig {
		t.Fatalf("no end record at the end")
	}
	count := binary.LittleEndian.Uint16(end[10:])
	has64 := len(b) >= 22+20+56 && binary.LittleEndian.Uint32(b[len(b)-42:]) == zipEnd64LocSig
	if has64 != zip64 {
		t.Errorf("ZIP64 end records present: %v, want %v", has64, zip64)
	}
	if zip64 {
		if count != 0xffff && entries >= 0xffff {
			t.Errorf("classic entry count %d, want 0xffff", count)
		}
		rec64 := int64(binary.LittleEndian.Uint64(b[len(b)-42+8:]))
		if binary.LittleEndian.Uint32(b[rec64:]) != zipEnd64Sig || binary.LittleEndian.Uint64(b[rec64+32:]) != uint64(entries) {
			t.Errorf("bad ZIP64 end record at %d", rec64)
		}
	} else if int(count) != entries {
		t.Errorf("entry count %d, want %d", count, entries)
	}
}

// sparseFile is an io.ReaderAt over real bytes with a run of zeros in
// between, so that an archive with an entry over 4 GiB can be read
// without holding it.
type sparseFile struct {
	head  []byte
	zeros int64
	tail  []byte
}

func (s *sparseFile) size() int64 { return int64(len(s.head)) + s.zeros + int64(len(s.tail)) }

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		o := off + int64(n)
		switch h, z := int64(len(s.head)), int64(len(s.head))+s.zeros; {
		case o >= s.size():
			return n, io.EOF
		case o < h:
			n += copy(p[n:], s.head[o:])
		case o < z:
			k := int(min(int64(len(p)-n), z-o))
			clear(p[n : n+k])
			n += k
		default:
			n += copy(p[n:], s.tail[o-z:])
		}
	}
	return n, nil
}

// TestZipLargeEntry writes an entry of 4 GiB + 1 MiB of zeros (accounted,
// not stored: the reader supplies the zeros), then a small entry whose
// offset is past 4 GiB, and reads both back with archive/zip. This needs
// ZIP64 sizes, offsets and end records.
func TestZipLargeEntry(t *testing.T) {
	const big = 4<<30 + 1<<20
	var z zipWriter
	var head []byte
	z.beginEntry(&head, "big")
	zero := make([]byte, 1<<20)
	for range big / len(zero) {
		z.cur.crc = crc32.Update(z.cur.crc, crc32.IEEETable, zero)
	}
	z.cur.size = big
	z.off += big
	// A resume in the middle of the large entry.
	st := z.appendState(nil)
	z = zipWriter{}
	if _, err := z.restore(st); err != nil {
		t.Fatal(err)
	}
	var tail []byte
	z.endEntry(&tail)
	z.beginEntry(&tail, "small")
	start := len(tail)
	tail = append(tail, "\"after\"\r\n"...)
	z.data(tail[start:])
	z.finish(&tail)
	sf := &sparseFile{head: head, zeros: big, tail: tail}
	if z.off != sf.size() {
		t.Fatalf("counted %d bytes, archive has %d", z.off, sf.size())
	}
	zr, err := zip.NewReader(sf, sf.size())
	if err != nil {
		t.Fatalf("archive/zip: %v", err)
	}
	if len(zr.File) != 2 || zr.File[0].UncompressedSize64 != big || zr.File[1].Name != "small.csv" {
		t.Fatalf("entries: %+v", zr.File)
	}
	if got := readZipEntry(t, zr.File[1]); string(got) != "\"after\"\r\n" {
		t.Errorf("small entry: %q", got)
	}
	// Reading 4 GiB through archive/zip to reach the descriptor is slow;
	// check the ZIP64 data descriptor that follows the data directly.
	d := tail[:24]
	if binary.LittleEndian.Uint32(d) != zipDescriptorSig || binary.LittleEndian.Uint32(d[4:]) != zr.File[0].CRC32 ||
		binary.LittleEndian.Uint64(d[8:]) != big || binary.LittleEndian.Uint64(d[16:]) != big {
		t.Errorf("big entry's data descriptor: % x", d)
	}

	// The same archive as a sparse file, checked by Info-ZIP.
	unzip := requireTool(t, "unzip")
	path := filepath.Join(t.TempDir(), "big.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tail, int64(len(head))+big); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Test only the small entry: unzip must find it past 4 GiB through
	// the ZIP64 records (testing the big one would read 4 GiB).
	out, err := exec.Command(unzip, "-t", path, "small.csv").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
	out, err = exec.Command(unzip, "-Z", "-1", path).CombinedOutput()
	if err != nil || string(out) != "big.csv\nsmall.csv\n" {
		t.Fatalf("unzip -Z -1: %v\n%s", err, out)
	}
}

func TestZipSmallArchiveIsClassic(t *testing.T) {
	var z zipWriter
	var b []byte
	z.beginEntry(&b, "a")
	z.finish(&b) // closes the open entry
	checkEndRecords(t, b, 1, false)
	if files := openZip(t, b); len(files) != 1 || files[0].UncompressedSize64 != 0 {
		t.Fatalf("entries: %+v", files)
	}
}

func TestZipRestoreRejectsInconsistentDirectory(t *testing.T) {
	good := zipWriter{off: 300, entries: []zipEntry{{name: "a.csv", offset: 0, size: 10}, {name: "b.csv", offset: 100, size: 10}}}
	tests := []struct {
		name string
		z    zipWriter
		ok   bool
	}{
		{"good", good, true},
		{"open", zipWriter{off: 300, entries: good.entries, open: true, cur: zipEntry{name: "c.csv", offset: 200, size: 50}}, true},
		{"overlap", zipWriter{off: 300, entries: []zipEntry{{name: "a.csv", offset: 50, size: 100}, {name: "b.csv", offset: 100}}}, false},
		{"past end", zipWriter{off: 10, entries: good.entries}, false},
		{"open past end", zipWriter{off: 300, entries: good.entries, open: true, cur: zipEntry{name: "c.csv", offset: 200, size: 500}}, false},
		{"empty name", zipWriter{off: 300, entries: []zipEntry{{offset: 0}}}, false},
	}
	for _, tt := range tests {
		var z zipWriter
		_, err := z.restore(tt.z.appendState(nil))
		if (err == nil) != tt.ok {
			t.Errorf("%s: restore error %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
