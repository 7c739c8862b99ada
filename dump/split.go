package dump

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
	"zombiezen.com/go/sqlite"
)

// Split reading. Without a Gate the formatter outruns one reader on
// tables whose values are mostly BLOBs: the reader's time goes to
// SQLite's VM and to a pread per overflow page, and the formatter waits.
// So a rowid table is cut into spans of rowids, each about a page of
// rows, and several connections, all on the Source's snapshot, read the
// spans at once; the merger hands their pages to the writer in key
// order, so the output is byte for byte the one reader's. Each reader
// can be at most a span or two ahead of the writer (its channel holds a
// page), so memory stays a few pages per reader.

// MaxReaders is the largest accepted Options.Readers.
const MaxReaders = 4

// splitFirstRows is the size of the spans claimed before any span of
// the table has been measured.
const splitFirstRows = 16

// readers is how many connections read a splittable table.
func (o *Options) readers() int {
	switch {
	case o.Readers > 0:
		return o.Readers
	case o.Gate != nil || runtime.GOMAXPROCS(0) < 2:
		return 1
	}
	return 2
}

// splitter hands out spans of one table's rowids, in key order, sized
// from the rows and bytes of the spans read so far.
type splitter struct {
	mu    sync.Mutex
	t     *tableSpec
	chunk float64
	atMin bool  // the next span starts at the table's smallest rowid
	after int64 // else it starts after this rowid
	final bool  // the span to the table's end is claimed
	// Measured over the finished spans: rows, value bytes, rowids covered.
	rows, bytes, width float64
	order              chan int // the reader of each claimed span, in key order
}

func newSplitter(t *tableSpec, chunk int, after []Value, readers int) *splitter {
	sp := &splitter{t: t, chunk: float64(chunk), atMin: after == nil, order: make(chan int, 4*readers)}
	if after != nil {
		sp.after = after[0].Int
	}
	return sp
}

// claim gives reader r the next span and queues r for the merger; it
// reports false once the span to the table's end has been claimed. The
// order channel cannot fill: a reader claims a span only after sending
// every page of its previous one, and holds at most one unsent page, so
// at most two of its spans are unmerged; the channel holds four.
func (sp *splitter) claim(r int) (s span, width int64, ok bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.final {
		return span{}, 0, false
	}
	w := sp.nextWidth()
	lo := sp.t.minKey // the span's first rowid
	if !sp.atMin {
		s.after = []Value{{Type: TypeInteger, Int: sp.after}}
		lo = sp.after + 1
	}
	// The rowids are int64, so the distance is taken in uint64; lo does
	// not overflow while after < maxKey.
	if (!sp.atMin && sp.after >= sp.t.maxKey) || uint64(sp.t.maxKey)-uint64(lo) < uint64(w) {
		sp.final = true // to the table's end, for whatever lies beyond maxKey
	} else {
		hi := lo + (w - 1)
		s.to = []Value{{Type: TypeInteger, Int: hi}}
		sp.atMin, sp.after = false, hi
	}
	sp.order <- r
	return s, w, true
}

// nextWidth is the number of rowids the next span covers: about a page
// of rows (pageBudget bytes, at most chunk rows) at the density of rowids
// measured so far. While every span measured was empty, it doubles.
func (sp *splitter) nextWidth() int64 {
	rows := float64(splitFirstRows)
	if sp.rows > 0 {
		rows = min(max(pageBudget*sp.rows/max(sp.bytes, 1), 1), sp.chunk)
	}
	w := rows
	switch {
	case sp.width > 0 && sp.rows == 0:
		w = 2 * sp.width
	case sp.width > 0:
		w = rows * sp.width / sp.rows
	}
	return int64(min(max(w, 1), math.MaxInt64/4))
}

// report adds a finished span's rows, value bytes and width to the
// measure.
func (sp *splitter) report(rows, bytes, width int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.rows += float64(rows)
	sp.bytes += float64(bytes)
	sp.width += float64(width)
}

// readSplit reads table t from sp with every reader of rds at once, and
// sends the pages to out in key order. It reports false when the reading
// must stop (error sent, or stop closed).
func (s *Source) readSplit(step int, t *tableSpec, sp span, rds []*reader, out chan<- *page, free chan *page, stop <-chan struct{}) bool {
	spl := newSplitter(t, s.opts.ChunkSize, sp.after, len(rds))
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
				spl.report(rd.rows-rows, rd.bytes-bytes, width)
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

// helpers returns the further connections, on this Source's snapshot,
// that split reading uses, opening them on first use: none when the
// Options want one reader, fewer when one cannot be opened (the dump then
// reads with the connections it has).
func (s *Source) helpers() []*sqlite.Conn {
	for len(s.extra) < s.opts.readers()-1 && !s.extraFailed {
		c, err := s.openHelper()
		if err != nil {
			s.extraFailed = true
			s.log.Debug("dump: reading with fewer connections", "path", s.path, "readers", 1+len(s.extra), "err", err)
			break
		}
		s.extra = append(s.extra, c)
	}
	return s.extra
}

// openHelper opens a connection and starts its read transaction on the
// snapshot of s.conn. In WAL mode it opens that snapshot by handle. In
// the rollback-journal modes it need not: s.conn holds a shared lock
// until Close, and no writer can commit while it does.
func (s *Source) openHelper() (*sqlite.Conn, error) {
	mode, err := s.queryText("PRAGMA journal_mode")
	if err != nil {
		return nil, err
	}
	c, err := openReadOnly(s.abs)
	if err != nil {
		return nil, err
	}
	if err := startRead(c, s.opts.BusyTimeout, func() error {
		if mode == "wal" {
			return shareSnapshot(s.conn, c)
		}
		return nil
	}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// shareSnapshot points the open, not yet started, read transaction of to
// at the snapshot that from reads (sqlite3_snapshot_open).
func shareSnapshot(from, to *sqlite.Conn) error {
	a, b := rawConn(from), rawConn(to)
	if a == 0 || b == 0 {
		return errors.New("snapshot: no raw connection handle")
	}
	tls := libc.NewTLS()
	defer tls.Close()
	zdb, err := libc.CString("main")
	if err != nil {
		return err
	}
	defer libc.Xfree(tls, zdb)
	pp := tls.Alloc(8)
	defer tls.Free(8)
	clear(libc.GoBytes(pp, 8))
	if rc := sqlite3.Xsqlite3_snapshot_get(tls, a, zdb, pp); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("snapshot get: %w", sqlite.ResultCode(rc).ToError())
	}
	snap := readPtr(libc.GoBytes(pp, 8))
	defer sqlite3.Xsqlite3_snapshot_free(tls, snap)
	if rc := sqlite3.Xsqlite3_snapshot_open(tls, b, zdb, snap); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("snapshot open: %w", sqlite.ResultCode(rc).ToError())
	}
	return nil
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
