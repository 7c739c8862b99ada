package dump

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// pageBudget caps the text and blob bytes of one page, so that a page of
// large BLOBs does not hold ChunkSize of them in memory at once.
const pageBudget = 512 << 10

// page is a batch of decoded rows handed from the reader goroutine to the
// writer goroutine. Pages are recycled, so their buffers stop growing once
// they fit the data.
type page struct {
	step  int
	vals  []slot // rows*ncols values
	ncols int
	rows  int
	arena []byte
	key   []Value // key of the last row (paged tables)
	karen []byte  // backing bytes of key
	done  bool    // the table has no rows after this page
	// segEnd: the last page of a span that ends at a key (split.go);
	// key is that span's end.
	segEnd bool
	err    error
}

func (p *page) reset(step, ncols int) {
	p.step, p.ncols, p.rows = step, ncols, 0
	p.vals = p.vals[:0]
	p.arena = p.arena[:0]
	p.key = p.key[:0]
	p.karen = p.karen[:0]
	p.done, p.segEnd, p.err = false, false, nil
}

// cloneValues returns a copy of vals that shares no bytes with them.
func cloneValues(vals []Value) []Value {
	out := make([]Value, len(vals))
	for i, v := range vals {
		if v.Bytes != nil {
			v.Bytes = bytes.Clone(v.Bytes)
		}
		out[i] = v
	}
	return out
}

// setKey sets the page's key to a copy of vals.
func (p *page) setKey(vals []Value) {
	p.key = p.key[:0]
	p.karen = p.karen[:0]
	for _, v := range vals {
		if v.Type == TypeText || v.Type == TypeBlob {
			b := reserve(&p.karen, len(v.Bytes))
			copy(b, v.Bytes)
			v.Bytes = b
		}
		p.key = append(p.key, v)
	}
}

// slot is one value of a page, packed into 16 bytes where a Value takes
// 48: the reader writes every slot of a page and the writer reads it on
// the other core, so each cache line that moves between them carries
// three times as many values (the reader's stores into recycled pages
// were a quarter of its time).
type slot struct {
	x   uint64 // the INTEGER, the REAL's bits, or the offset of the bytes in the page's arena
	n   uint32 // length of TEXT or BLOB bytes (SQLite's limit is below 2^31)
	typ ValueType
}

// row returns the values of row r in dst (len ncols), their bytes
// pointing into the page's arena.
func (p *page) row(r int, dst []Value) []Value {
	for i, s := range p.vals[r*p.ncols : (r+1)*p.ncols] {
		dst[i] = s.value(p.arena)
	}
	return dst
}

func (s slot) value(arena []byte) Value {
	switch s.typ {
	case TypeInteger:
		return Value{Type: TypeInteger, Int: int64(s.x)}
	case TypeReal:
		return Value{Type: TypeReal, Real: math.Float64frombits(s.x)}
	case TypeText, TypeBlob:
		end := s.x + uint64(s.n)
		return Value{Type: s.typ, Bytes: arena[s.x:end:end]}
	}
	return Value{Type: TypeNull}
}

// tailSlot packs v, whose bytes (if any) are the last of arena.
func tailSlot(v Value, arena []byte) slot {
	switch v.Type {
	case TypeInteger:
		return slot{typ: TypeInteger, x: uint64(v.Int)}
	case TypeReal:
		return slot{typ: TypeReal, x: math.Float64bits(v.Real)}
	case TypeText, TypeBlob:
		return slot{typ: v.Type, x: uint64(len(arena) - len(v.Bytes)), n: uint32(len(v.Bytes))}
	}
	return slot{typ: TypeNull}
}

// arenaCap is as far as reserve grows a buffer by doubling: a page ends
// once its arena passes pageBudget, so one more row rarely needs more, and
// doubling past it would leave every recycled page holding twice the
// budget (three pages live, each counted twice by the collector's goal).
const arenaCap = pageBudget + pageBudget/8

// reserve returns a slice of n fresh bytes at the end of *buf. Earlier
// slices stay valid when the buffer is reallocated: they keep pointing at
// the old array, whose bytes are never written again.
func reserve(buf *[]byte, n int) []byte {
	b := *buf
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(min(2*cap(b), arenaCap), len(b)+n, 64<<10))
		copy(nb, b)
		b = nb
	}
	*buf = b[:len(b)+n]
	return b[len(b) : len(b)+n : len(b)+n]
}

// readColumn decodes column col of the current row, copying text and
// blob bytes into *arena.
func (s *Source) readColumn(st *sqlite.Stmt, col int, arena *[]byte) Value {
	return s.readSlot(st, col, arena).value(*arena)
}

// readSlot is readColumn packed into a slot.
func (s *Source) readSlot(st *sqlite.Stmt, col int, arena *[]byte) slot {
	switch st.ColumnType(col) {
	case sqlite.TypeInteger:
		return slot{typ: TypeInteger, x: uint64(st.ColumnInt64(col))}
	case sqlite.TypeFloat:
		return slot{typ: TypeReal, x: math.Float64bits(st.ColumnFloat(col))}
	case sqlite.TypeText:
		if s.utf16 {
			// column_blob would return UTF-16 bytes; let SQLite convert.
			t := st.ColumnText(col)
			dst := reserve(arena, len(t))
			copy(dst, t)
			return slot{typ: TypeText, x: uint64(len(*arena) - len(t)), n: uint32(len(t))}
		}
		return columnBytes(st, col, TypeText, arena)
	case sqlite.TypeBlob:
		return columnBytes(st, col, TypeBlob, arena)
	}
	return slot{typ: TypeNull}
}

// columnBytes copies the bytes of column col into *arena. ColumnReader
// asks SQLite for the pointer and the length once each (ColumnLen and
// ColumnBytes would ask for the length twice).
func columnBytes(st *sqlite.Stmt, col int, typ ValueType, arena *[]byte) slot {
	r := st.ColumnReader(col)
	n := r.Len()
	r.Read(reserve(arena, n))
	return slot{typ: typ, x: uint64(len(*arena) - n), n: uint32(n)}
}

// reader is one connection's side of the reading: the connection, its
// blob reader, and the per-table state of its queries. The Source's own
// connection is one; split.go adds a second on the same snapshot.
type reader struct {
	conn  *sqlite.Conn
	blobs blobHolder
	// large: the table's rows are big enough to read large values with
	// blob I/O; decided from a first page, it changes the queries only.
	large bool
	rows  int64 // rows and value bytes read in this table, for split.go's sizing
	bytes int64
	last  []Value // see span.onePage
}

func (rd *reader) startTable() {
	rd.large, rd.rows, rd.bytes = false, 0, 0
}

// span is a range of one table's keys: the rows after after (nil: from
// the table's start) up to and including to (nil: to the table's end).
type span struct {
	after []Value
	to    []Value
	// onePage stops after the span's first page, leaving its last key in
	// the reader's last (nil when the page ended the span).
	onePage bool
}

// prepare returns t's query for the rows of sp, bound.
func (rd *reader) prepare(t *tableSpec, sp span) (*sqlite.Stmt, error) {
	var q string
	switch {
	case sp.after == nil: // split spans always start after a key
		q = t.first
	case sp.to == nil && rd.large:
		q = t.nextLarge
	case sp.to == nil:
		q = t.next
	case rd.large:
		q = t.nextLargeTo
	default:
		q = t.nextTo
	}
	stmt, err := rd.conn.Prepare(q)
	if err != nil {
		return nil, err
	}
	for i, v := range sp.after {
		bindValue(stmt, i+1, v)
	}
	for i, v := range sp.to {
		bindValue(stmt, len(sp.after)+i+1, v)
	}
	return stmt, nil
}

// read is the reader goroutine: it walks the table steps from the cursor
// and sends pages until the end, an error, or stop. helpers are further
// connections on the same snapshot, for split reading.
func (s *Source) read(from Cursor, helpers []*sqlite.Conn, out chan<- *page, free chan *page, stop <-chan struct{}) {
	s.opts.Gate.lowerPriority()
	defer close(out)
	rds := []*reader{{conn: s.conn}}
	for _, c := range helpers {
		rds = append(rds, &reader{conn: c})
	}
	defer func() {
		for _, rd := range rds {
			rd.blobs.close()
		}
	}()
	for i := from.Step; i < len(s.steps); i++ {
		st := s.steps[i]
		if st.kind != stepTable || !st.t.rows {
			continue
		}
		var sp span
		if i == from.Step && from.After != nil {
			after, err := from.After.values(st.t.nkey)
			if err != nil {
				s.sendError(st.t, err, out, free, stop)
				return
			}
			sp.after = after
		}
		for _, rd := range rds {
			rd.startTable()
		}
		var ok bool
		if len(rds) > 1 && st.t.split && (sp.after == nil || sp.after[0].Type == TypeInteger) {
			ok = s.readSplit(i, st.t, sp, rds, out, free, stop)
		} else {
			ok = s.readSpan(rds[0], i, st.t, sp, out, free, stop)
		}
		if !ok {
			return
		}
	}
}

// sendError sends a page carrying err for table t.
func (s *Source) sendError(t *tableSpec, err error, out chan<- *page, free chan *page, stop <-chan struct{}) {
	select {
	case pg := <-free:
		pg.reset(0, 0)
		sendErrorPage(t, pg, err, out, stop)
	case <-stop:
	}
}

// sendErrorPage sends pg carrying err for table t.
func sendErrorPage(t *tableSpec, pg *page, err error, out chan<- *page, stop <-chan struct{}) {
	pg.err = fmt.Errorf("dump: read table %q: %w", t.meta.Name, explain(err))
	select {
	case out <- pg:
	case <-stop:
	}
}

// readSpan sends the pages of one span of a table with rd; it reports
// false when the reader must stop (error sent, or stop closed). The last
// page of a span that ends at a key has segEnd set, the last of the table
// done.
func (s *Source) readSpan(rd *reader, step int, t *tableSpec, sp span, out chan<- *page, free chan *page, stop <-chan struct{}) bool {
	chunk := s.opts.ChunkSize
	ncols := len(t.meta.Columns)
	var stmt *sqlite.Stmt
	gate := s.opts.Gate
	inGate := false
	fail := func(pg *page, err error) bool {
		if inGate {
			gate.leave()
			inGate = false
		}
		if stmt != nil {
			stmt.Reset()
		}
		sendErrorPage(t, pg, err, out, stop)
		return false
	}
	var pg *page
	select {
	case pg = <-free:
	case <-stop:
		return false
	}
	pg.reset(step, ncols)
	if rd.large && sp.after == nil {
		rd.large = false // the large-value queries start after a key
	}
	stmt, err := rd.prepare(t, sp)
	if err != nil {
		return fail(pg, err)
	}
	for {
		exhausted := false
		if !gate.enter(stop) {
			stmt.Reset()
			return false
		}
		inGate = true
		for pg.rows < chunk && len(pg.arena) < pageBudget {
			ok, err := stmt.Step()
			if err != nil {
				return fail(pg, err)
			}
			if !ok {
				exhausted = true
				break
			}
			if rd.large {
				s.readKey(stmt, t.nkey, pg) // the rowid of every row is needed
				rowid := pg.key[0].Int
				for c := 0; c < ncols; c++ {
					col := t.nkey + 2*c
					if stmt.ColumnType(col+1) == sqlite.TypeNull {
						pg.vals = append(pg.vals, s.readSlot(stmt, col, &pg.arena))
						continue
					}
					v, err := s.readLarge(rd, t, c, rowid, stmt.ColumnText(col+1), &pg.arena, stop)
					if err != nil {
						return fail(pg, err)
					}
					pg.vals = append(pg.vals, tailSlot(v, pg.arena))
				}
			} else {
				for c := 0; c < ncols; c++ {
					pg.vals = append(pg.vals, s.readSlot(stmt, t.nkey+c, &pg.arena))
				}
			}
			pg.rows++
		}
		if !exhausted && !rd.large && pg.rows > 0 {
			// Only the page's last key is used (the cursor's After), and
			// the statement is still on that row.
			s.readKey(stmt, t.nkey, pg)
		}
		if exhausted {
			if err := stmt.Reset(); err != nil {
				return fail(pg, err)
			}
			if sp.to != nil {
				// Every row up to the span's end is written, whether or
				// not a row has that key.
				pg.setKey(sp.to)
			}
		} else if t.paged && t.large && !rd.large && pg.rows > 0 && len(pg.arena)/pg.rows > largeValue/2 {
			// Switch this table to the large-value query, from the last
			// key on. Bind it now: the page, and its key, belong to the
			// writer once sent.
			rd.large = true
			if err := stmt.Reset(); err != nil {
				return fail(pg, err)
			}
			stmt, err = rd.prepare(t, span{after: pg.key, to: sp.to})
			if err != nil {
				return fail(pg, err)
			}
		}
		pg.done = exhausted && sp.to == nil
		pg.segEnd = exhausted && sp.to != nil
		rd.rows += int64(pg.rows)
		rd.bytes += int64(len(pg.arena))
		if sp.onePage {
			rd.last = nil
			if !exhausted {
				rd.last = cloneValues(pg.key)
			}
		}
		gate.leave()
		inGate = false
		select {
		case out <- pg:
		case <-stop:
			stmt.Reset()
			return false
		}
		if exhausted {
			return true
		}
		if sp.onePage {
			stmt.Reset() // reports the last Step's error, and that Step returned a row
			return true
		}
		runtime.Gosched() // see the writer's loop in engine.go
		select {
		case pg = <-free:
		case <-stop:
			stmt.Reset()
			return false
		}
		pg.reset(step, ncols)
	}
}

// readKey decodes the first n columns of the current row, the key, into
// pg.key.
func (s *Source) readKey(stmt *sqlite.Stmt, n int, pg *page) {
	pg.key = pg.key[:0]
	pg.karen = pg.karen[:0]
	for c := 0; c < n; c++ {
		pg.key = append(pg.key, s.readColumn(stmt, c, &pg.karen))
	}
}

// readLarge reads value column c of the row with the given rowid through
// incremental blob I/O into *arena: with the raw blob reader when the
// driver's handle is available, else with the driver's Blob.
func (s *Source) readLarge(rd *reader, t *tableSpec, c int, rowid int64, class string, arena *[]byte, stop <-chan struct{}) (Value, error) {
	typ := TypeBlob
	switch class {
	case "text":
		typ = TypeText
	case "blob":
	default:
		return Value{}, fmt.Errorf("large value of type %q in column %q", class, t.blobCols[c])
	}
	if r := rd.blobs.get(rd.conn); r != nil {
		s.largeReads.Add(1)
		dst, err := r.read(t.meta.Name, t.blobCols[c], rowid, arena, func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		})
		if err != nil {
			return Value{}, err
		}
		return Value{Type: typ, Bytes: dst}, nil
	}
	b, err := rd.conn.OpenBlob("main", t.meta.Name, t.blobCols[c], rowid, false)
	if err != nil {
		return Value{}, err
	}
	defer b.Close()
	s.largeReads.Add(1)
	dst := reserve(arena, int(b.Size()))
	if _, err := io.ReadFull(b, dst); err != nil {
		return Value{}, err
	}
	return Value{Type: typ, Bytes: dst}, nil
}

func bindValue(st *sqlite.Stmt, i int, v Value) {
	switch v.Type {
	case TypeInteger:
		st.BindInt64(i, v.Int)
	case TypeReal:
		st.BindFloat(i, v.Real)
	case TypeText:
		st.BindText(i, string(v.Bytes))
	case TypeBlob:
		st.BindBytes(i, v.Bytes)
	default:
		st.BindNull(i)
	}
}

// values decodes a cursor's key (from JSON) for a table whose key has n
// columns.
func (k Key) values(n int) ([]Value, error) {
	if len(k) != n {
		return nil, fmt.Errorf("%w: cursor key has %d values, the table's key %d", sluice.ErrConflict, len(k), n)
	}
	vals := make([]Value, len(k))
	for i, kv := range k {
		v, err := kv.value()
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// toKey converts decoded key values into a Cursor key.
func toKey(vals []Value) Key {
	k := make(Key, len(vals))
	for i, v := range vals {
		switch v.Type {
		case TypeInteger:
			k[i] = KeyValue{Type: "integer", V: strconv.FormatInt(v.Int, 10)}
		case TypeReal:
			// The exact bits, so the key survives JSON unchanged.
			k[i] = KeyValue{Type: "real", V: strconv.FormatUint(math.Float64bits(v.Real), 16)}
		case TypeText:
			if utf8.Valid(v.Bytes) {
				k[i] = KeyValue{Type: "text", V: string(v.Bytes)}
			} else {
				// JSON would replace invalid UTF-8 with U+FFFD.
				k[i] = KeyValue{Type: "text-base64", V: base64.StdEncoding.EncodeToString(v.Bytes)}
			}
		case TypeBlob:
			k[i] = KeyValue{Type: "blob", V: base64.StdEncoding.EncodeToString(v.Bytes)}
		default:
			k[i] = KeyValue{Type: "null"}
		}
	}
	return k
}

// value decodes a key component written by toKey.
func (kv KeyValue) value() (Value, error) {
	switch kv.Type {
	case "integer":
		i, err := strconv.ParseInt(kv.V, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: cursor key: %v", sluice.ErrInvalid, err)
		}
		return Value{Type: TypeInteger, Int: i}, nil
	case "real":
		u, err := strconv.ParseUint(kv.V, 16, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: cursor key: %v", sluice.ErrInvalid, err)
		}
		return Value{Type: TypeReal, Real: math.Float64frombits(u)}, nil
	case "text":
		return Value{Type: TypeText, Bytes: []byte(kv.V)}, nil
	case "blob", "text-base64":
		b, err := base64.StdEncoding.DecodeString(kv.V)
		if err != nil {
			return Value{}, fmt.Errorf("%w: cursor key: %v", sluice.ErrInvalid, err)
		}
		if kv.Type == "blob" {
			return Value{Type: TypeBlob, Bytes: b}, nil
		}
		return Value{Type: TypeText, Bytes: b}, nil
	case "null":
		return Value{Type: TypeNull}, nil
	}
	return Value{}, fmt.Errorf("%w: cursor key: unknown type %q", sluice.ErrInvalid, kv.Type)
}
