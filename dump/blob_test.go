package dump

import (
	"bytes"
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
)

// blobTestSizes straddle SQLite's overflow pages and blobReader's chunks.
var blobTestSizes = []int{0, 1, 4091, 4096, 40000, blobChunk - 1, blobChunk, blobChunk + 1, 2*blobChunk + 12345}

// blobTestDB creates a database with page size pageSize and one row per
// entry of blobTestSizes: a random BLOB in a and a TEXT of the same size
// in b. With wal, the values of the even rows are rewritten after a first
// commit and the WAL is kept (the returned writer connection stays open),
// so that some overflow pages are read from the WAL, where SQLite cannot
// read them directly into the caller's buffer.
func blobTestDB(t *testing.T, pageSize int, wal bool) (path string, want map[int64][2][]byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), fmt.Sprintf("blob%d.db", pageSize))
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		t.Helper()
		st, _, err := c.PrepareTransient(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer st.Finalize()
		if _, err := st.Step(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	if wal {
		exec("PRAGMA journal_mode=WAL")
		exec("PRAGMA wal_autocheckpoint=0")
	}
	exec("CREATE TABLE t(id INTEGER PRIMARY KEY, a BLOB, b TEXT)")
	r := rand.New(rand.NewPCG(uint64(pageSize), 7))
	want = make(map[int64][2][]byte)
	put := func(id int64, n int) {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		st := c.Prep("INSERT OR REPLACE INTO t VALUES(?,?,?)")
		st.BindInt64(1, id)
		st.BindBytes(2, a)
		st.BindText(3, string(b))
		if _, err := st.Step(); err != nil {
			t.Fatal(err)
		}
		st.Reset()
		want[id] = [2][]byte{a, b}
	}
	for i, n := range blobTestSizes {
		put(int64(i+1), n)
	}
	if wal {
		for i, n := range blobTestSizes {
			if i%2 == 0 {
				put(int64(i+1), n)
			}
		}
		t.Cleanup(func() { c.Close() })
	} else if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func TestBlobReaderReadsEveryValue(t *testing.T) {
	for _, tc := range []struct {
		pageSize int
		wal      bool
	}{{512, false}, {4096, false}, {65536, false}, {4096, true}} {
		t.Run(fmt.Sprintf("page%d/wal=%v", tc.pageSize, tc.wal), func(t *testing.T) {
			path, want := blobTestDB(t, tc.pageSize, tc.wal)
			r := openBlobReader(t, path)
			never := func() bool { return false }
			var arena []byte
			type got struct {
				id  int64
				col int
				b   []byte
			}
			var gots []got
			// Alternate columns and walk the rows twice, forwards then
			// backwards, to exercise both reopen and a fresh open.
			ids := make([]int64, 0, 2*len(blobTestSizes))
			for i := range blobTestSizes {
				ids = append(ids, int64(i+1))
			}
			for i := len(blobTestSizes); i > 0; i-- {
				ids = append(ids, int64(i))
			}
			for k, id := range ids {
				for _, col := range []int{k % 2, 1 - k%2} {
					b, err := r.read("t", []string{"a", "b"}[col], id, &arena, never)
					if err != nil {
						t.Fatalf("row %d col %d: %v", id, col, err)
					}
					gots = append(gots, got{id, col, b})
				}
			}
			// Checked at the end: earlier values must survive later reads
			// into the same arena.
			for _, g := range gots {
				if w := want[g.id][g.col]; !bytes.Equal(g.b, w) {
					t.Fatalf("row %d col %d: got %d bytes, want %d (first difference at %d)", g.id, g.col, len(g.b), len(w), diffAt(g.b, w))
				}
			}

			// A missing row fails with SQLite's message, and the reader
			// keeps working afterwards.
			if _, err := r.read("t", "a", 9999, &arena, never); err == nil {
				t.Fatal("reading a missing row succeeded")
			}
			b, err := r.read("t", "a", 1, &arena, never)
			if err != nil || !bytes.Equal(b, want[1][0]) {
				t.Fatalf("read after a failure: %v", err)
			}
			if _, err := r.read("nosuch", "a", 1, &arena, never); err == nil {
				t.Fatal("reading a missing table succeeded")
			}
		})
	}
}

// openBlobReader opens path read-only and returns a raw blob reader on it;
// both are closed when the test ends.
func openBlobReader(t *testing.T, path string) *blobReader {
	t.Helper()
	c, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := newBlobReader(c)
	if r == nil {
		t.Fatal("no raw blob reader: zombiezen's Conn layout changed; readLarge falls back to the slow Blob.Read")
	}
	t.Cleanup(r.close)
	return r
}

func TestBlobReaderStopsBetweenChunks(t *testing.T) {
	path, _ := blobTestDB(t, 4096, false)
	r := openBlobReader(t, path)
	var arena []byte
	last := int64(len(blobTestSizes)) // the value of more than two chunks
	if _, err := r.read("t", "a", last, &arena, func() bool { return true }); err == nil {
		t.Fatal("a stopped read of a multi-chunk value succeeded")
	}
	if _, err := r.read("t", "a", 1, &arena, func() bool { return true }); err != nil {
		t.Fatalf("a one-chunk value must not poll stop: %v", err)
	}
}

// TestReadLargeFallbackAgrees reads every value of a table through the
// Source with the raw reader and with the driver's Blob fallback.
func TestReadLargeFallbackAgrees(t *testing.T) {
	path, want := blobTestDB(t, 4096, false)
	src, err := Open(context.Background(), path, Options{}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	spec := &tableSpec{meta: tableMeta{Name: "t"}, blobCols: []string{"id", "a", "b"}}
	stop := make(chan struct{})
	raw := &reader{conn: src.conn}
	defer raw.blobs.close()
	fallback := &reader{conn: src.conn, blobs: blobHolder{tried: true}}
	for id := range int64(len(blobTestSizes)) {
		id++
		for c, class := range []string{"", "blob", "text"} {
			if c == 0 {
				continue
			}
			var a1, a2 []byte
			v1, err := src.readLarge(raw, spec, c, id, class, &a1, stop)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := src.readLarge(fallback, spec, c, id, class, &a2, stop)
			if err != nil {
				t.Fatal(err)
			}
			w := want[id][c-1]
			if v1.Type != v2.Type || !bytes.Equal(v1.Bytes, w) || !bytes.Equal(v2.Bytes, w) {
				t.Fatalf("row %d col %d: raw %v/%d bytes, fallback %v/%d bytes, want %d", id, c, v1.Type, len(v1.Bytes), v2.Type, len(v2.Bytes), len(w))
			}
		}
	}
	if raw.blobs.r == nil {
		t.Fatal("the raw reader was not used")
	}
}
