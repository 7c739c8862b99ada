package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// flushAt is the output buffer size at which the writer flushes inside a
// page, so one page of large values never needs a huge output buffer.
const flushAt = 1 << 20

// Dump writes the snapshot from cursor from to w; see the package
// documentation for the contract. checkpoint may be nil. It is called at
// every step boundary and after every page of a table that can be
// resumed mid-way, never for the final (Done) position, which Dump returns.
func (s *Source) Dump(ctx context.Context, w io.Writer, from Cursor, checkpoint func(*Boundary) error) (Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return from, fmt.Errorf("dump: %w: source is closed", sluice.ErrInvalid)
	}
	if from.Done {
		return from, nil
	}
	if err := s.checkCursor(from); err != nil {
		return from, err
	}
	f, err := newFormatter(s.opts)
	if err != nil {
		return from, err
	}
	if from.Step > 0 || from.After != nil {
		if err := f.restore(from.State); err != nil {
			return from, fmt.Errorf("dump: %w: cursor state: %v", sluice.ErrInvalid, err)
		}
	}
	if checkpoint == nil {
		checkpoint = func(*Boundary) error { return nil }
	}
	if err := ctx.Err(); err != nil {
		return from, fmt.Errorf("dump: %w", err)
	}

	var helpers []*sqlite.Conn
	if s.wantsSplit(from) {
		helpers = s.extra
	}
	for _, c := range append([]*sqlite.Conn{s.conn}, helpers...) {
		c.SetInterrupt(ctx.Done())
		defer c.SetInterrupt(nil)
	}
	pages := make(chan *page, 2)
	// Three pages keep one reader and the writer busy; split reading
	// lets each further reader hold two more (split.go).
	free := make(chan *page, 3+2*len(helpers))
	for range cap(free) {
		free <- new(page)
	}
	stop := make(chan struct{})
	go s.read(from, helpers, pages, free, stop)
	defer func() {
		close(stop)
		for range pages { // let the reader finish before the conn is reused
		}
	}()

	wr := &dumpWriter{w: w, f: f, cur: from, out: make([]byte, 0, flushAt+flushAt/4)}
	wr.cur.State = nil
	wr.cur.Digest = nil
	if !s.opts.NoDigests && ((from.Step == 0 && from.After == nil) || from.Digest != nil) {
		// Without a Gate the digests hash on a goroutine of their own.
		// A Gate bounds the cores the engine takes, and its slots and
		// nice value cover the reader and the formatter only, so under
		// one the formatter hashes, as it formats, inside its slot. (A
		// niced hasher outside the slots made jobs slower: every hand-off
		// to a goroutine locked on a thread of its own wakes that thread.)
		if s.opts.Gate == nil {
			wr.dg = newPipedDigester()
			defer wr.dg.close()
		} else {
			wr.dg = newDigester()
		}
	}
	if wr.dg != nil && from.Digest != nil && (from.Step > 0 || from.After != nil) {
		if err := wr.dg.restore(from.Digest, from.After != nil); err != nil {
			return from, err
		}
	}
	var cur Cursor
	if g := s.opts.Gate; g != nil && g.nice > 0 {
		// A goroutine of its own, so that only it is pinned to the
		// lowered thread (the caller's goroutine may be an HTTP
		// connection's, which lives on). checkpoint runs back on the
		// caller's goroutine: a callback that takes locks others wait on
		// (a state database write, SQLite's allocator) must not hold them
		// at the lowest priority.
		calls := make(chan *Boundary)
		replies := make(chan error)
		go func() {
			defer close(calls)
			g.lowerPriority()
			cur, err = wr.run(ctx, s, pages, free, func(b *Boundary) error {
				calls <- b
				return <-replies
			})
		}()
		for b := range calls {
			replies <- checkpoint(b)
		}
	} else {
		cur, err = wr.run(ctx, s, pages, free, checkpoint)
	}
	if err != nil {
		if ctx.Err() != nil {
			return cur, fmt.Errorf("dump: %w", ctx.Err())
		}
		return cur, err
	}
	return cur, nil
}

// checkCursor verifies that from fits this snapshot's plan, so that a
// cursor taken on another schema fails instead of producing garbage.
func (s *Source) checkCursor(from Cursor) error {
	if from.Step < 0 || from.Step >= len(s.steps) {
		return fmt.Errorf("dump: %w: cursor step %d outside the plan (%d steps); schema changed?", sluice.ErrConflict, from.Step, len(s.steps))
	}
	st := s.steps[from.Step]
	name := ""
	if st.kind == stepTable {
		name = st.t.meta.Name
	}
	if from.Table != name {
		return fmt.Errorf("dump: %w: cursor is at table %q but step %d is %q; schema changed?", sluice.ErrConflict, from.Table, from.Step, name)
	}
	if from.After != nil && (st.kind != stepTable || !st.t.paged || len(from.After) != st.t.nkey) {
		return fmt.Errorf("dump: %w: cursor key does not fit table %q", sluice.ErrConflict, name)
	}
	return nil
}

// dumpWriter is the writer goroutine's state: the formatter, the output
// buffer and the position reached.
type dumpWriter struct {
	w   io.Writer
	f   formatter
	cur Cursor // position of the next byte; Bytes counts what w accepted
	out []byte
	dg  *digester // nil when resumed from a cursor without digest state
	bnd Boundary  // the one offered to checkpoint, reused: valid only during the call
}

func (d *dumpWriter) flush() error {
	if len(d.out) == 0 {
		return nil
	}
	n, err := d.w.Write(d.out)
	d.cur.Bytes += int64(n)
	if err == nil && n != len(d.out) {
		err = io.ErrShortWrite
	}
	d.out = d.out[:0]
	if err != nil {
		return fmt.Errorf("dump: write: %w", err)
	}
	return nil
}

// A Boundary is a position at which Dump calls its checkpoint callback.
// Progress is the position as it goes by; Cursor is the position to
// persist and resume from, with the formatter's state and the per-table
// digests' running hash. The hash takes a round trip to the goroutine
// that computes it, so a callback takes Cursor only at the positions it
// keeps: a progress display never, a job after each part it cuts. Both
// are valid only during the callback.
type Boundary struct {
	cur      Cursor
	d        *dumpWriter
	resolved bool
}

// Progress returns the position without the formatter's state and the
// digest state: for display, never to resume from.
func (b *Boundary) Progress() Cursor {
	c := b.cur
	c.State, c.Digest = nil, nil
	return c
}

// Cursor returns the position to persist and resume from.
func (b *Boundary) Cursor() Cursor {
	if !b.resolved {
		b.resolved = true
		b.cur.State = b.d.f.state()
		if b.d.dg != nil {
			b.cur.Digest = b.d.dg.state(b.cur.After != nil)
		}
	}
	return b.cur
}

// mark flushes and offers the current position to checkpoint.
func (d *dumpWriter) mark(checkpoint func(*Boundary) error) (stop bool, err error) {
	if err := d.flush(); err != nil {
		return false, err
	}
	d.bnd = Boundary{cur: d.cur, d: d}
	b := &d.bnd
	if err := checkpoint(b); err != nil {
		if errors.Is(err, ErrStop) {
			d.cur = b.Cursor()
			return true, nil
		}
		return false, fmt.Errorf("dump: checkpoint: %w", err)
	}
	return false, nil
}

func (d *dumpWriter) run(ctx context.Context, s *Source, pages <-chan *page, free chan<- *page, checkpoint func(*Boundary) error) (Cursor, error) {
	from := d.cur
	gate := s.opts.Gate
	for i := from.Step; i < len(s.steps); i++ {
		st := s.steps[i]
		switch st.kind {
		case stepBegin:
			d.f.begin(&d.out)
		case stepSchema:
			d.f.schema(&d.out, st.stmt)
		case stepEnd:
			d.f.end(&d.out)
		case stepTable:
			t := st.t
			mid := i == from.Step && from.After != nil
			if !mid && st.stmt != "" {
				d.f.schema(&d.out, st.stmt)
			}
			d.f.beginTable(&d.out, &t.meta)
			if !mid && d.dg != nil {
				d.dg.beginTable(&t.meta)
			}
			if t.rows {
				rowBuf := make([]Value, len(t.meta.Columns))
				for {
					var pg *page
					var ok bool
					select {
					case pg, ok = <-pages:
					case <-ctx.Done():
						// The reader may be waiting at a gate, where the
						// connection's interrupt does not reach it.
						return d.cur, ctx.Err()
					}
					if !ok {
						return d.cur, fmt.Errorf("dump: reader stopped early")
					}
					if pg.err != nil {
						return d.cur, pg.err
					}
					if pg.step != i {
						return d.cur, fmt.Errorf("dump: internal error: page for step %d at step %d", pg.step, i)
					}
					// Formatting holds a gate slot; writing to w (which may
					// block on a client or a store) does not.
					if !gate.enter(ctx.Done()) {
						return d.cur, ctx.Err()
					}
					for r := 0; r < pg.rows; r++ {
						row := pg.row(r, rowBuf)
						d.f.row(&d.out, &t.meta, row)
						if d.dg != nil {
							d.dg.row(row)
						}
						if len(d.out) >= flushAt {
							gate.leave()
							if err := d.flush(); err != nil {
								return d.cur, err
							}
							if !gate.enter(ctx.Done()) {
								return d.cur, ctx.Err()
							}
						}
					}
					gate.leave()
					d.cur.Rows += int64(pg.rows)
					d.cur.TableRows += int64(pg.rows)
					// No checkpoint after a page without rows: split
					// reading sends one for each empty span.
					done, mark := pg.done, t.paged && pg.rows > 0
					if !done && t.paged && (pg.rows > 0 || pg.segEnd) {
						d.cur.After = toKey(pg.key) // a span's end key, even past an empty span
					}
					if d.dg != nil {
						d.dg.release() // the digest may still read the page's values
					}
					free <- pg
					if done {
						break
					}
					// Both dump goroutines are CPU-bound; yielding once a
					// page lets the process's other goroutines (HTTP
					// queries in sluice serve) run within a page's time
					// rather than waiting for a preemption slice.
					runtime.Gosched()
					if err := ctx.Err(); err != nil {
						return d.cur, err
					}
					if mark {
						if stop, err := d.mark(checkpoint); stop || err != nil {
							return d.cur, err
						}
					}
				}
			}
			d.f.endTable(&d.out, &t.meta)
			if d.dg != nil {
				d.dg.endTable(&t.meta)
			}
			d.cur.TablesDone++
		}
		d.cur.Step = i + 1
		d.cur.After = nil
		d.cur.Table, d.cur.TableRows = "", 0
		if i+1 < len(s.steps) && s.steps[i+1].kind == stepTable {
			d.cur.Table = s.steps[i+1].t.meta.Name
		}
		if i+1 == len(s.steps) {
			if err := d.flush(); err != nil {
				return d.cur, err
			}
			d.cur.Done = true
			if d.dg != nil {
				d.cur.Digest = d.dg.state(false)
			}
			return d.cur, nil
		}
		if stop, err := d.mark(checkpoint); stop || err != nil {
			return d.cur, err
		}
	}
	return d.cur, nil
}
