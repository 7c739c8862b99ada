package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// smallDB is a small database whose tables exercise every kind of key a
// cursor can hold: rowid (with extreme values), composite text/int,
// invalid UTF-8 text, REAL and BLOB primary keys, and a table whose rowid
// is unreachable (read in one scan).
func smallDB(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "small.db")
	c, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExec(t, c, "PRAGMA journal_mode=DELETE")
	mustExec(t, c, `BEGIN;
CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
CREATE TABLE empty(x);
CREATE TABLE w(k TEXT, n INTEGER, v, PRIMARY KEY(k, n)) WITHOUT ROWID;
CREATE TABLE rk(k REAL PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE bk(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE sh(rowid, _rowid_, oid);
CREATE VIEW va AS SELECT * FROM a;
INSERT INTO a(id, v) VALUES(-9223372036854775808, 'min'), (-1, 1.5), (2, X'00'), (9223372036854775806, 'x
y'), (9223372036854775807, NULL);
INSERT INTO w VALUES('a', 1, 'one'), ('a', 2, 'two'), (CAST(X'ff00' AS TEXT), 0, 'bad utf8'), ('b', -1, 1e300);
INSERT INTO rk VALUES(-0.5, 'a'), (0.1, 'b'), (1e300, 'c');
INSERT INTO bk VALUES(X'', 1), (X'00', 2), (X'ff', 3);
INSERT INTO sh VALUES(1, 2, 3), (4, 5, 6);
COMMIT`)
	return path
}

// TestResumeEveryBoundary stops a dump at every checkpoint, round-trips
// the cursor through JSON, continues on a new Source, and checks that the
// two parts concatenate to exactly one uninterrupted dump, for every format.
func TestResumeEveryBoundary(t *testing.T) {
	db := smallDB(t, t.TempDir())
	ctx := context.Background()
	// "csv-plain" is csv of one table as a plain CSV document.
	for _, format := range []sluice.Format{sluice.FormatSQL, sluice.FormatCSV, "csv-plain", sluice.FormatJSON, sluice.FormatJSONTyped, sluice.FormatNDJSON} {
		for _, c := range []struct {
			preserve bool
			readers  int
		}{{false, 1}, {true, 1}, {false, 2}, {true, 2}} {
			preserve := c.preserve
			if c.readers > 1 && format != sluice.FormatSQL && format != sluice.FormatJSONTyped {
				continue // split reading is the reader's, whatever the format
			}
			t.Run(fmt.Sprintf("%s/preserve=%v/readers=%d", format, preserve, c.readers), func(t *testing.T) {
				opts := Options{Format: format, ChunkSize: 1, PreserveRowids: preserve, Readers: c.readers}
				if format == "csv-plain" {
					opts.Format, opts.Tables, opts.PlainCSV = sluice.FormatCSV, []string{"w"}, true
				}
				full := dumpAll(t, db, opts)
				// Count the checkpoints of an uninterrupted dump.
				src, err := Open(ctx, db, opts, testsupport.Logger(t))
				if err != nil {
					t.Fatal(err)
				}
				var marks []Cursor
				var sink bytes.Buffer
				final, err := src.Dump(ctx, &sink, Cursor{}, func(b *Boundary) error {
					c := b.Progress()
					if c.Bytes != int64(sink.Len()) {
						t.Errorf("checkpoint at %d bytes but %d written", c.Bytes, sink.Len())
					}
					marks = append(marks, c)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				totalRows := final.Rows
				wantDigests, ok := src.Digests(final)
				src.Close()
				if !ok || len(wantDigests.Tables) != len(src.Plan().Tables) {
					t.Fatalf("uninterrupted dump: digests %+v, ok %v", wantDigests, ok)
				}
				if len(marks) < 20 && opts.Tables == nil || len(marks) < 5 {
					t.Fatalf("only %d checkpoints with ChunkSize 1", len(marks))
				}
				// With several readers the spans, so the checkpoints, differ
				// from run to run: stop at each until a run ends first.
				for k := 0; k < len(marks) || opts.Readers > 1; k++ {
					var first bytes.Buffer
					src, err := Open(ctx, db, opts, testsupport.Logger(t))
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					cur, err := src.Dump(ctx, &first, Cursor{}, func(*Boundary) error {
						if n == k {
							return ErrStop
						}
						n++
						return nil
					})
					src.Close()
					if err != nil {
						t.Fatalf("stop at %d: %v", k, err)
					}
					if cur.Done && opts.Readers > 1 && k > 0 && cur.Bytes == int64(first.Len()) {
						break
					}
					if cur.Done || cur.Bytes != int64(first.Len()) {
						t.Fatalf("stop at %d: cursor %+v after %d bytes", k, cur, first.Len())
					}
					js, err := json.Marshal(cur)
					if err != nil {
						t.Fatal(err)
					}
					var back Cursor
					if err := json.Unmarshal(js, &back); err != nil {
						t.Fatal(err)
					}
					src2, err := Open(ctx, db, opts, testsupport.Logger(t))
					if err != nil {
						t.Fatal(err)
					}
					var rest bytes.Buffer
					end, err := src2.Dump(ctx, &rest, back, nil)
					gotDigests, ok := src2.Digests(end)
					src2.Close()
					if !ok || !reflect.DeepEqual(gotDigests, wantDigests) {
						t.Fatalf("resume from %s: digests %+v, want %+v", js, gotDigests, wantDigests)
					}
					if err != nil {
						t.Fatalf("resume from %s: %v", js, err)
					}
					got := append(first.Bytes(), rest.Bytes()...)
					if !bytes.Equal(got, full) {
						t.Fatalf("stop at checkpoint %d (%s): concatenation differs from the full dump (%d vs %d bytes)", k, js, len(got), len(full))
					}
					if !end.Done || end.Bytes != int64(len(full)) || end.Rows != totalRows {
						t.Fatalf("final cursor %+v, want Done at %d bytes, %d rows", end, len(full), totalRows)
					}
				}
			})
		}
	}
}

// TestResumeRejectsForeignCursor: a cursor that does not fit the plan is
// refused rather than producing garbage.
func TestResumeRejectsForeignCursor(t *testing.T) {
	db := smallDB(t, t.TempDir())
	src, err := Open(context.Background(), db, Options{}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, c := range []Cursor{
		{Step: 999},
		{Step: 1, Table: "nope"},
		{Step: -1},
	} {
		var buf bytes.Buffer
		if _, err := src.Dump(context.Background(), &buf, c, nil); !errors.Is(err, sluice.ErrConflict) {
			t.Errorf("cursor %+v: got %v, want ErrConflict", c, err)
		}
		if buf.Len() != 0 {
			t.Errorf("cursor %+v: wrote %d bytes", c, buf.Len())
		}
	}
}

// TestResumeOnSameSource: after ErrStop the same Source (same snapshot)
// continues from the cursor.
func TestResumeOnSameSource(t *testing.T) {
	db := smallDB(t, t.TempDir())
	ctx := context.Background()
	full := dumpAll(t, db, Options{ChunkSize: 2})
	src, err := Open(ctx, db, Options{ChunkSize: 2}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	cur := Cursor{}
	for i := 0; !cur.Done; i++ {
		if i > 1000 {
			t.Fatal("no progress")
		}
		n := 0
		cur, err = src.Dump(ctx, &out, cur, func(*Boundary) error {
			n++
			if n == 3 {
				return ErrStop
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), full) {
		t.Fatal("stop-and-continue on one Source differs from one dump")
	}
}

// TestBoundary checks what a checkpoint callback is offered: Progress is
// the position without the formatter's and the digests' state, Cursor
// the same position with both, and the same value each time it is asked.
func TestBoundary(t *testing.T) {
	db := smallDB(t, t.TempDir())
	ctx := context.Background()
	src, err := Open(ctx, db, Options{Format: sluice.FormatCSV, ChunkSize: 1}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	inTable := 0
	_, err = src.Dump(ctx, &bytes.Buffer{}, Cursor{}, func(b *Boundary) error {
		p, c := b.Progress(), b.Cursor()
		if p.State != nil || p.Digest != nil {
			t.Errorf("progress at %+v carries state", p)
		}
		if !reflect.DeepEqual(c, b.Cursor()) {
			t.Errorf("cursor changed when asked again: %+v", c)
		}
		if c.State == nil || c.Digest == nil {
			t.Errorf("cursor at step %d without the zip's or the digests' state", c.Step)
		}
		if c.After != nil {
			inTable++
			if c.Digest.Open == nil {
				t.Errorf("cursor inside table %q without the table's running hash", c.Table)
			}
		}
		c.State, c.Digest = nil, nil
		if !reflect.DeepEqual(p, c) {
			t.Errorf("progress %+v, cursor %+v", p, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inTable == 0 {
		t.Fatal("no boundary inside a table")
	}
}
