package dump

// Per-table digests, computed by the writer goroutine from the same values
// it formats (docs/verify.md describes the encoding). A table's digest is
// SHA-256 over:
//
//	uint64 column count, then per column: uint64 name length, name bytes
//	per row, per value in column order:
//	  1 (INTEGER) + 8 bytes big-endian two's complement
//	  2 (REAL)    + 8 bytes big-endian IEEE-754 bits
//	  3 (TEXT)    + uint64 length + the stored bytes
//	  4 (BLOB)    + uint64 length + the bytes
//	  5 (NULL)
//
// all integers big-endian. Rows are in dump order (rowid or primary key),
// so a restored copy hashes the same when read in the same key order.

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"

	"github.com/sluice-dev/sluice"
)

// TableDigest is the digest of one dumped table.
type TableDigest struct {
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	Rows    int64    `json:"rows"`
	Digest  string   `json:"digest"` // hex SHA-256, see docs/verify.md
}

// DigestState is the digest part of a Cursor: the tables finished so far
// and the running hash of the open one, so that a resumed dump ends with
// the digests of an uninterrupted one.
type DigestState struct {
	Tables   []TableDigest `json:"tables,omitempty"`
	Open     []byte        `json:"open,omitempty"`     // SHA-256 state of the open table (crypto/sha256 MarshalBinary)
	OpenRows int64         `json:"openRows,omitempty"` // rows hashed into Open
}

// digestFlushAt is the size at which canonical bytes are handed to the
// hash; batching keeps the per-value cost to an append. It is small
// enough that a page of small rows is hashed while it is formatted when
// the hash runs on a pipe.
const digestFlushAt = 32 << 10

// digestDirect is the value size from which a value's bytes are hashed
// where they lie instead of being copied into the buffer.
const digestDirect = 4096

// digester hashes the rows of the table being written.
type digester struct {
	h      hash.Hash
	buf    []byte
	rows   int64
	tables []TableDigest
	pipe   *hashPipe // nil: hash on the caller's goroutine
	lent   bool      // the pipe holds slices of the caller's values
}

func newDigester() *digester {
	return &digester{h: sha256.New(), buf: make([]byte, 0, digestFlushAt+digestDirect)}
}

// newPipedDigester returns a digester that hashes on a goroutine of its
// own; close must be called. Values hashed in place stay borrowed until
// release (or a table end or state) returns.
func newPipedDigester() *digester {
	d := newDigester()
	d.pipe = newHashPipe(d.h, cap(d.buf))
	return d
}

// close stops the pipe, if any.
func (d *digester) close() {
	if d.pipe != nil {
		d.pipe.close()
	}
}

// restore takes back the state from a cursor; open says whether the
// cursor is inside a table.
func (d *digester) restore(st *DigestState, open bool) error {
	d.wait()
	d.tables = append(d.tables[:0], st.Tables...)
	d.rows = 0
	d.h.Reset()
	if !open {
		return nil
	}
	if err := d.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Open); err != nil {
		return fmt.Errorf("dump: %w: cursor digest state: %v", sluice.ErrInvalid, err)
	}
	d.rows = st.OpenRows
	return nil
}

// beginTable starts a table's digest with its column list.
func (d *digester) beginTable(t *tableMeta) {
	d.wait()
	d.h.Reset()
	d.rows = 0
	d.buf = binary.BigEndian.AppendUint64(d.buf[:0], uint64(len(t.Columns)))
	for _, c := range t.Columns {
		d.buf = binary.BigEndian.AppendUint64(d.buf, uint64(len(c)))
		d.buf = append(d.buf, c...)
	}
}

// row adds one row.
func (d *digester) row(vals []Value) {
	d.rows++
	for i := range vals {
		v := &vals[i]
		switch v.Type {
		case TypeInteger:
			d.buf = binary.BigEndian.AppendUint64(append(d.buf, byte(TypeInteger)), uint64(v.Int))
		case TypeReal:
			d.buf = binary.BigEndian.AppendUint64(append(d.buf, byte(TypeReal)), math.Float64bits(v.Real))
		case TypeText, TypeBlob:
			d.buf = binary.BigEndian.AppendUint64(append(d.buf, byte(v.Type)), uint64(len(v.Bytes)))
			if len(v.Bytes) > digestDirect {
				d.flush()
				d.write(v.Bytes)
				continue
			}
			d.buf = append(d.buf, v.Bytes...)
		default:
			d.buf = append(d.buf, byte(TypeNull))
		}
	}
	if len(d.buf) >= digestFlushAt {
		d.flush()
	}
}

// write hashes b in place: on the pipe, b is borrowed until release.
func (d *digester) write(b []byte) {
	if d.pipe == nil {
		d.h.Write(b)
		return
	}
	d.pipe.send(b, false)
	d.lent = true
}

func (d *digester) flush() {
	if len(d.buf) == 0 {
		return
	}
	if d.pipe == nil {
		d.h.Write(d.buf)
		d.buf = d.buf[:0]
		return
	}
	d.buf = d.pipe.send(d.buf, true)
}

// wait hashes everything added so far, so that d.h may be read.
func (d *digester) wait() {
	d.flush()
	if d.pipe != nil {
		d.pipe.wait()
		d.lent = false
	}
}

// release returns once no value passed to row is still borrowed.
func (d *digester) release() {
	if d.lent {
		d.wait()
	}
}

// endTable finishes the table's digest.
func (d *digester) endTable(t *tableMeta) {
	d.wait()
	d.tables = append(d.tables, TableDigest{
		Name:    t.Name,
		Columns: append([]string(nil), t.Columns...),
		Rows:    d.rows,
		Digest:  hex.EncodeToString(d.h.Sum(nil)),
	})
}

// state returns the digest state at a boundary; open says whether it is
// inside a table. The returned value shares nothing the digester changes.
func (d *digester) state(open bool) *DigestState {
	st := &DigestState{Tables: d.tables[:len(d.tables):len(d.tables)]}
	if open {
		d.wait()
		b, err := d.h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic(err) // crypto/sha256 always marshals
		}
		st.Open, st.OpenRows = b, d.rows
	}
	return st
}

// Digests are the digests of a finished dump.
type Digests struct {
	Schema string        `json:"schema"` // hex SHA-256 of the plan's schema statements
	Tables []TableDigest `json:"tables"`
}

// Digests returns the table digests of a finished dump's cursor, with
// the snapshot's schema digest. ok is false when the cursor carries none
// (a dump resumed from a cursor of a build without digests).
func (s *Source) Digests(final Cursor) (d Digests, ok bool) {
	if !final.Done || final.Digest == nil {
		return Digests{}, false
	}
	return Digests{Schema: s.schemaDigest(), Tables: final.Digest.Tables}, true
}

// schemaDigest is SHA-256 over the plan's schema statements in order,
// each as uint64 length + text: what a SQL dump of this plan would write
// as schema, whatever the format.
func (s *Source) schemaDigest() string {
	h := sha256.New()
	var n [8]byte
	for _, st := range s.steps {
		if st.stmt == "" {
			continue
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(st.stmt)))
		h.Write(n[:])
		h.Write([]byte(st.stmt))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TableHasher computes a table digest from values read elsewhere (a
// parsed JSON or CSV dump), with the same encoding as the engine.
type TableHasher struct {
	d    *digester
	meta tableMeta
}

// NewTableHasher returns a TableHasher.
func NewTableHasher() *TableHasher { return &TableHasher{d: newDigester()} }

// Begin starts a table with its column list.
func (h *TableHasher) Begin(name string, columns []string) {
	h.meta = tableMeta{Name: name, Columns: columns}
	h.d.beginTable(&h.meta)
}

// Row adds one row; len(vals) must equal the number of columns.
func (h *TableHasher) Row(vals []Value) { h.d.row(vals) }

// End finishes the table and returns its digest.
func (h *TableHasher) End() TableDigest {
	h.d.endTable(&h.meta)
	td := h.d.tables[len(h.d.tables)-1]
	h.d.tables = h.d.tables[:0]
	return td
}

// nopFormatter writes nothing: a digest-only pass (Options.DigestOnly).
type nopFormatter struct{}

func (nopFormatter) begin(*[]byte)                    {}
func (nopFormatter) schema(*[]byte, string)           {}
func (nopFormatter) beginTable(*[]byte, *tableMeta)   {}
func (nopFormatter) row(*[]byte, *tableMeta, []Value) {}
func (nopFormatter) endTable(*[]byte, *tableMeta)     {}
func (nopFormatter) end(*[]byte)                      {}
func (nopFormatter) state() []byte                    { return nil }
func (nopFormatter) restore([]byte) error             { return nil }
