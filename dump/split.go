package dump

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
	"zombiezen.com/go/sqlite"
)

// Split reading. One reader is the dump's bound wherever SQLite is
// slower than the formatter: on values that are mostly BLOBs (a pread
// per overflow page, hex at 4.5 GB/s) and on many small rows (SQLite's
// VM). So a rowid table is cut into spans of rowids, each about a page of
// rows, and several connections, all on the Source's snapshot, read the
// spans at once; the merger hands their pages to the writer in key
// order, so the output is byte for byte the one reader's. Each reader
// can be at most a span or two ahead of the writer (its channel holds a
// page), so memory stays a few pages per reader. docs/architecture.md,
// "Split reading", has the whole design.

// MaxReaders is the largest accepted Options.Readers.
const MaxReaders = 4

// helperBusyTimeout bounds how long opening a further reader waits for
// a locked database.
const helperBusyTimeout = 100 * time.Millisecond

// splitMinRowids is the fewest rowids a table needs to be split: below
// it, the readers' goroutines (and, under a niced Gate, threads) would
// cost more than they could save.
const splitMinRowids = 32

// readers is how many connections read a splittable table. By default
// two, unless one core, or a Gate of one slot, would make them take
// turns.
func (o *Options) readers() int {
	switch {
	case o.Readers > 0:
		return o.Readers
	case runtime.GOMAXPROCS(0) < 2, o.Gate != nil && cap(o.Gate.slots) < 2:
		return 1
	}
	return 2
}

// splitter hands out spans of one table's rowids, in key order, sized
// from the rows and bytes read so far: from the table's first page on,
// which readSplit reads before any span is claimed.
type splitter struct {
	mu    sync.Mutex
	t     *tableSpec
	chunk float64
	after int64 // the next span starts after this rowid
	final bool  // the span to the table's end is claimed
	// Measured: rows, value bytes, rowids covered (at least the first
	// page's, so never zero).
	rows, bytes, width float64
	order              chan int // the reader of each claimed span, in key order
}

// newSplitter starts after the rowid after, with the first page's rows,
// value bytes and rowid width measured.
func newSplitter(t *tableSpec, chunk int, after int64, rows, bytes int64, width float64, readers int) *splitter {
	return &splitter{t: t, chunk: float64(chunk), after: after,
		rows: float64(rows), bytes: float64(bytes), width: width,
		order: make(chan int, 4*readers)}
}

// claim gives reader r the next span and queues r for the merger; it
// reports false once the span to the table's end has been claimed. The
// order channel cannot fill: a reader claims a span only after sending
// every page of its previous one, and holds at most one unsent page, so
// at most two of its spans are unmerged; the channel holds four per
// reader.
func (sp *splitter) claim(r int) (s span, width int64, ok bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.final {
		return span{}, 0, false
	}
	w := sp.nextWidth()
	s.after = []Value{{Type: TypeInteger, Int: sp.after}}
	// The rowids are int64, so the distance is taken in uint64; after+1
	// does not overflow while after < maxKey.
	if sp.after >= sp.t.maxKey || uint64(sp.t.maxKey)-uint64(sp.after+1) < uint64(w) {
		sp.final = true // to the table's end, for whatever lies beyond maxKey
	} else {
		sp.after += w
		s.to = []Value{{Type: TypeInteger, Int: sp.after}}
	}
	sp.order <- r
	return s, w, true
}

// nextWidth is the number of rowids the next span covers: about a page
// of rows (pageBudget bytes, at most chunk rows) at the density of rowids
// measured so far. Empty spans lower the density, so a gap in the rowids
// is crossed in spans that grow as they go.
func (sp *splitter) nextWidth() int64 {
	rows := min(max(pageBudget*sp.rows/max(sp.bytes, 1), 1), sp.chunk)
	return int64(min(max(rows*sp.width/sp.rows, 1), math.MaxInt64/4))
}

// report adds a finished span's rows, value bytes and width to the
// measure.
func (sp *splitter) report(rows, bytes int64, width float64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.rows += float64(rows)
	sp.bytes += float64(bytes)
	sp.width += width
}

// readSplit reads table t from sp with every reader of rds at once, and
// sends the pages to out in key order. It reports false when the reading
// must stop (error sent, or stop closed).
func (s *Source) readSplit(step int, t *tableSpec, sp span, rds []*reader, out chan<- *page, free chan *page, stop <-chan struct{}) bool {
	// The first page is read as one reader reads it. Spans then start
	// after its last key, sized from its rows, so a dump's first
	// checkpoint (a resumed job's progress in its tick) is a whole page,
	// and every reader takes the large-value queries if it took them.
	first := rds[0]
	if !s.readSpan(first, step, t, span{after: sp.after, onePage: true}, out, free, stop) {
		return false
	}
	if first.last == nil {
		return true // the table ended in that page
	}
	lo := t.minKey
	if sp.after != nil {
		lo = sp.after[0].Int + 1
	}
	last := first.last[0].Int
	width := float64(uint64(last)-uint64(lo)) + 1 // up to 2^64 rowids
	spl := newSplitter(t, s.opts.ChunkSize, last, first.rows, first.bytes, width, len(rds))
	for _, rd := range rds[1:] {
		rd.large = first.large
	}
	quit := make(chan struct{}) // the readers stop when the merger returns
	ins := make([]chan *page, len(rds))
	var wg sync.WaitGroup
	for r, rd := range rds {
		ins[r] = make(chan *page, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(ins[r])
			s.opts.Gate.lowerPriority()
			for {
				sp, width, ok := spl.claim(r)
				if !ok {
					return
				}
				rows, bytes := rd.rows, rd.bytes
				if !s.readSpan(rd, step, t, sp, ins[r], free, quit) {
					return
				}
				spl.report(rd.rows-rows, rd.bytes-bytes, float64(width))
			}
		}()
	}
	ok := merge(spl.order, ins, out, stop)
	close(quit)
	wg.Wait()
	for _, in := range ins {
		for pg := range in {
			free <- pg
		}
	}
	return ok
}

// merge forwards the spans' pages from the readers' channels to out in
// the order the spans were claimed, until the table's last page (true),
// an error page or stop (false).
func merge(order <-chan int, ins []chan *page, out chan<- *page, stop <-chan struct{}) bool {
	for {
		var r int
		select {
		case r = <-order:
		case <-stop:
			return false
		}
		for segEnd := false; !segEnd; {
			var pg *page
			var ok bool
			select {
			case pg, ok = <-ins[r]:
			case <-stop:
				return false
			}
			if !ok {
				return false // the reader stopped without an error page: only on stop
			}
			failed, done := pg.err != nil, pg.done
			segEnd = pg.segEnd
			select {
			case out <- pg:
			case <-stop:
				return false
			}
			if failed {
				return false
			}
			if done {
				return true
			}
		}
	}
}

// openHelpers opens split reading's further connections, when the
// Options want them and the plan has a table to split: at Open, right
// after s.conn's snapshot is pinned, which is when the check below is
// likeliest to find the database unchanged. One that cannot be opened
// leaves the dump with fewer readers, not failed.
func (s *Source) openHelpers() {
	if !s.wantsSplit(Cursor{}) {
		return
	}
	for len(s.extra) < s.opts.readers()-1 {
		c, err := s.openHelper()
		if err != nil {
			s.log.Debug("dump: reading with fewer connections", "path", s.path, "readers", 1+len(s.extra), "err", err)
			return
		}
		s.extra = append(s.extra, c)
	}
}

// openHelper opens a connection and starts its read transaction on the
// snapshot of s.conn.
//
// When s.conn's snapshot can be named (WAL mode, and a WAL that has had
// a transaction), the helper opens it by handle. When it cannot, s.conn
// reads the database file alone, and holds it still until Close: in the
// rollback-journal modes with its shared lock, which no commit gets past;
// in WAL mode with WAL read lock 0, which no checkpoint gets past. Then
// the helper sees the same file provided that it cannot name a snapshot
// either: a transaction committed since s.conn began would be in the WAL,
// and would make it nameable.
func (s *Source) openHelper() (*sqlite.Conn, error) {
	snap, snapErr := newSnapshot(s.conn)
	if errors.Is(snapErr, errNoHandle) {
		return nil, snapErr // nothing below could be checked
	}
	if snapErr == nil {
		defer snap.free()
	}
	c, err := openReadOnly(s.abs)
	if err != nil {
		return nil, err
	}
	// Not the dump's busy timeout: a rollback-journal writer waiting on
	// s.conn's lock refuses new readers until Close, and the dump does
	// not need a second reader enough to wait for one.
	if err := startRead(c, min(s.opts.BusyTimeout, helperBusyTimeout), func() error {
		if snapErr == nil {
			return snap.open(c)
		}
		return nil
	}); err != nil {
		c.Close()
		return nil, err
	}
	if snapErr != nil {
		if own, err := newSnapshot(c); err == nil {
			own.free()
			c.Close()
			return nil, fmt.Errorf("the database changed since the dump began (%v)", snapErr)
		}
	}
	return c, nil
}

// errNoHandle: the driver's connection does not have the layout rawConn
// reads.
var errNoHandle = errors.New("snapshot: no raw connection handle")

// snapshot is an sqlite3_snapshot: a connection's WAL read position.
type snapshot struct {
	tls *libc.TLS
	p   uintptr
}

// newSnapshot names the snapshot that c's read transaction reads.
func newSnapshot(c *sqlite.Conn) (*snapshot, error) {
	db := rawConn(c)
	if db == 0 {
		return nil, errNoHandle
	}
	tls := libc.NewTLS()
	pp := tls.Alloc(8)
	defer tls.Free(8)
	clear(libc.GoBytes(pp, 8))
	err := withMain(tls, func(zdb uintptr) error {
		if rc := sqlite3.Xsqlite3_snapshot_get(tls, db, zdb, pp); rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("snapshot get: %w", sqlite.ResultCode(rc).ToError())
		}
		return nil
	})
	if err != nil {
		tls.Close()
		return nil, err
	}
	return &snapshot{tls: tls, p: readPtr(libc.GoBytes(pp, 8))}, nil
}

// open points c's open, not yet started, read transaction at the
// snapshot.
func (sn *snapshot) open(c *sqlite.Conn) error {
	db := rawConn(c)
	if db == 0 {
		return errNoHandle
	}
	return withMain(sn.tls, func(zdb uintptr) error {
		if rc := sqlite3.Xsqlite3_snapshot_open(sn.tls, db, zdb, sn.p); rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("snapshot open: %w", sqlite.ResultCode(rc).ToError())
		}
		return nil
	})
}

func (sn *snapshot) free() {
	sqlite3.Xsqlite3_snapshot_free(sn.tls, sn.p)
	sn.tls.Close()
}

// withMain calls f with the C string "main", the schema name.
func withMain(tls *libc.TLS, f func(zdb uintptr) error) error {
	zdb, err := libc.CString("main")
	if err != nil {
		return err
	}
	defer libc.Xfree(tls, zdb)
	return f(zdb)
}

// wantsSplit reports whether a dump from cursor from reaches a table that
// split reading would read, so that other dumps open no connection.
func (s *Source) wantsSplit(from Cursor) bool {
	if s.opts.readers() < 2 {
		return false
	}
	for i := from.Step; i < len(s.steps); i++ {
		if st := s.steps[i]; st.kind == stepTable && st.t.rows && st.t.split {
			return true
		}
	}
	return false
}
