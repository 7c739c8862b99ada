package dump

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"zombiezen.com/go/sqlite"
)

// spansDB has the shapes that stress split reading: rowids in clumps with
// wide gaps and at both ends of int64, values either side of largeValue
// (a reader switches to blob I/O on its own), and tables of no, one and
// a few rows.
func spansDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "spans.db")
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, `PRAGMA journal_mode=WAL;
CREATE TABLE clumps(id INTEGER PRIMARY KEY, v, b BLOB);
CREATE TABLE bigs(id INTEGER PRIMARY KEY, b BLOB);
CREATE TABLE ends(id INTEGER PRIMARY KEY, v);
CREATE TABLE none(id INTEGER PRIMARY KEY, v);
CREATE TABLE one(v);
CREATE TABLE few(v);
INSERT INTO ends VALUES(-9223372036854775808, 'min'), (-9223372036854775807, 'min+1'), (0, 'zero'), (9223372036854775806, 'max-1'), (9223372036854775807, 'max');
INSERT INTO one VALUES('only');
INSERT INTO few VALUES(1), (2), (3)`)
	rng := rand.New(rand.NewSource(14))
	ins, _, err := c.PrepareTransient("INSERT INTO clumps VALUES(?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Finalize()
	bigs, _, err := c.PrepareTransient("INSERT INTO bigs VALUES(?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer bigs.Finalize()
	mustExec(t, c, "BEGIN")
	id := int64(-1 << 40)
	for clump := 0; clump < 24; clump++ {
		id += rng.Int63n(1 << 36)
		for range 1 + rng.Intn(60) {
			id += 1 + rng.Int63n(3)
			ins.BindInt64(1, id)
			ins.BindText(2, "row")
			size := rng.Intn(600)
			if rng.Intn(20) == 0 {
				size = largeValue - 64 + rng.Intn(20_000) // either side of the blob I/O threshold
			}
			b := make([]byte, size)
			rng.Read(b)
			ins.BindBytes(3, b)
			if _, err := ins.Step(); err != nil {
				t.Fatal(err)
			}
			ins.Reset()
		}
	}
	// Rows large enough on average that each reader switches to blob I/O.
	for id := range 80 {
		b := make([]byte, largeValue/2+rng.Intn(largeValue))
		rng.Read(b)
		bigs.BindInt64(1, int64(id))
		bigs.BindBytes(2, b)
		if _, err := bigs.Step(); err != nil {
			t.Fatal(err)
		}
		bigs.Reset()
	}
	mustExec(t, c, "COMMIT")
	return path
}

// TestSplitReadersSameBytes: 2 and MaxReaders readers, at several page
// sizes, writes the bytes of one reader, and each Source opened the
// connections it was asked for.
func TestSplitReadersSameBytes(t *testing.T) {
	dir := t.TempDir()
	dbs := map[string]string{
		"spans":   spansDB(t, dir),
		"edge":    buildEdgeDB(t, dir),
		"resume":  smallDB(t, dir),
		"chinook": testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), dir),
	}
	for name, db := range dbs {
		for _, chunk := range []int{1, 7, DefaultChunkSize} {
			if chunk != DefaultChunkSize && name == "chinook" {
				continue // slow, and the others cover it
			}
			want := dumpAll(t, db, Options{ChunkSize: chunk, Readers: 1})
			for _, readers := range []int{2, MaxReaders} {
				opts := Options{ChunkSize: chunk, Readers: readers}
				src, err := Open(context.Background(), db, opts, testsupport.Logger(t))
				if err != nil {
					t.Fatal(err)
				}
				if len(src.extra) != readers-1 {
					t.Errorf("%s: %d readers asked, %d opened", name, readers, 1+len(src.extra))
				}
				src.Close()
				if got := dumpAll(t, db, opts); !bytes.Equal(got, want) {
					t.Fatalf("%s, chunk %d, %d readers: %d bytes differ from one reader's %d", name, chunk, readers, len(got), len(want))
				}
			}
		}
	}
}

// TestSplitSnapshot: the further readers read the snapshot of the
// Source's own connection, whether the WAL held transactions when it was
// pinned (the helpers open it by handle) or was empty (the helpers then
// must find it still empty, and are refused once a writer committed).
func TestSplitSnapshot(t *testing.T) {
	for _, walBusy := range []bool{true, false} {
		dir := t.TempDir()
		db := spansDB(t, dir) // closed: its WAL is checkpointed and gone
		w, err := sqlite.OpenConn(db, sqlite.OpenReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		mustExec(t, w, "PRAGMA wal_autocheckpoint=0")
		if walBusy {
			mustExec(t, w, "UPDATE clumps SET v = 'in the wal' WHERE id % 3 = 0")
		}
		want := dumpAll(t, db, Options{Readers: 1})
		src, err := Open(context.Background(), db, Options{Readers: 2}, testsupport.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if len(src.extra) != 1 {
			t.Fatalf("wal in use %v: no second reader", walBusy)
		}
		mustExec(t, w, "UPDATE clumps SET v = 'after open'; DELETE FROM ends; INSERT INTO few VALUES(4)")
		// A reader opened after the commit: on the snapshot by handle,
		// refused when there is none to open.
		h, err := src.openHelper()
		switch {
		case !walBusy && err == nil:
			h.Close()
			t.Error("a reader opened after a commit to an empty WAL was accepted")
		case walBusy && err != nil:
			t.Errorf("no reader on the snapshot after a commit: %v", err)
		case walBusy:
			st, _, err := h.PrepareTransient("SELECT count(*) FROM few")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Step(); err != nil {
				t.Fatal(err)
			}
			if n := st.ColumnInt(0); n != 3 {
				t.Errorf("the late reader sees %d rows in few, the snapshot 3", n)
			}
			st.Finalize()
			h.Close()
		}
		var got bytes.Buffer
		if _, err := src.Dump(context.Background(), &got, Cursor{}, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("wal in use %v: the split dump is not the snapshot's", walBusy)
		}
		if src.largeReads.Load() == 0 {
			t.Error("no value was read with blob I/O")
		}
	}
}

// TestReadersDefault: two readers by default, one under a Gate of one
// slot, and whatever is asked for.
func TestReadersDefault(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: one reader whatever the gate")
	}
	for _, c := range []struct {
		opts Options
		want int
	}{
		{Options{}, 2},
		{Options{Gate: NewGate(1)}, 1},
		{Options{Gate: NewGate(2)}, 2},
		{Options{Gate: NewGate(1), Readers: 3}, 3},
		{Options{Readers: 1}, 1},
	} {
		if got := c.opts.readers(); got != c.want {
			t.Errorf("%+v: %d readers, want %d", c.opts, got, c.want)
		}
	}
}

func TestReadersOutOfRange(t *testing.T) {
	db := smallDB(t, t.TempDir())
	for _, n := range []int{-1, MaxReaders + 1} {
		if _, err := Open(context.Background(), db, Options{Readers: n}, testsupport.Logger(t)); !errors.Is(err, sluice.ErrInvalid) {
			t.Errorf("Readers %d: got %v, want ErrInvalid", n, err)
		}
	}
}

// TestSplitterSeededWidth: seeded with a first page of two rows over
// all of int64, the next span is wide, not one rowid (the widths are
// floats: 2^63 rowids do not fit an int64).
func TestSplitterSeededWidth(t *testing.T) {
	sp := newSplitter(&tableSpec{minKey: -1 << 63, maxKey: 1<<63 - 1}, 2, -1, 2, 16, float64(uint64(1<<63))+1, 2)
	if _, w, _ := sp.claim(0); w < 1<<60 {
		t.Fatalf("next span %d rowids wide", w)
	}
}

// TestSplitterWidths: after a first page of one row, the spans cover
// the rowids without gap or overlap, and end with one span to the
// table's end, for rowids anywhere in int64.
func TestSplitterWidths(t *testing.T) {
	for _, c := range []struct {
		name     string
		min, max int64
		after    int64 // the first page's last rowid
	}{
		{"dense", 1, 100_000, 1},
		{"whole int64", -1 << 63, 1<<63 - 1, -1 << 63},
		{"after the max", 1, 10, 10},
		{"after a key", -50, 1 << 62, 7},
		{"one rowid left", 4, 5, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := newSplitter(&tableSpec{minKey: c.min, maxKey: c.max}, DefaultChunkSize, c.after, 1, 0, 1, 1)
			next := c.after + 1 // the first rowid the next span must start at
			for i := 0; ; i++ {
				s, w, ok := sp.claim(0)
				if !ok {
					t.Fatal("no final span")
				}
				<-sp.order
				if s.after == nil || s.after[0].Int+1 != next {
					t.Fatalf("span %d starts after %v, want after %d", i, s.after, next-1)
				}
				if s.to == nil {
					if _, _, ok := sp.claim(0); ok {
						t.Fatal("a span after the final one")
					}
					return
				}
				if s.to[0].Int-next != w-1 || s.to[0].Int >= c.max {
					t.Fatalf("span %d: [%d, %d] for width %d, table max %d", i, next, s.to[0].Int, w, c.max)
				}
				next = s.to[0].Int + 1
				sp.report(0, 0, float64(w)) // empty: the density falls, the widths grow
			}
		})
	}
}
