package jobs

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
)

// pipeline is a tick's checkpointing while parts upload in the
// background (docs/jobs.md, "The pipeline"). At the first page boundary
// after each part is cut it takes a mark: the dump cursor there, with the
// bytes written since that part (objstore.Mark). A checkpoint saves the
// newest mark whose parts are all stored, so it always covers an
// acknowledged prefix of the upload. Saving one (the store's sync of the
// parts and the state transaction, each with an fsync) runs on a goroutine
// of its own while the dump goes on, one save at a time. The dump waits
// only when the window is full: Config.UploadConcurrency parts cut and
// not covered by a persisted checkpoint. Those are the parts a crash
// makes the job dump and upload again. A save starts once it would cover
// half the window more than the last, or Config.CheckpointInterval after
// the last one, and when the tick yields or the dump ends (saveAll, which
// waits for every part).
type pipeline struct {
	k  *tick
	w  *objstore.Writer
	cw *countWriter
	fr *framer

	marks     []pendingMark // taken and not yet saved, oldest first
	marked    int           // PartsCut at the last mark
	saved     int           // parts the persisted checkpoint covers
	partsBase int           // parts stored before this tick
	inflight  *pendingSave  // the save running in the background, if any
	lastSave  time.Time     // start of the last checkpoint
	lastProg  time.Time     // start of the last save of either kind
	lastWAL   time.Time
	release   bool // the tick yields to release its snapshot (WALLimit)
}

type pendingMark struct {
	m   objstore.Mark
	cur dump.Cursor
}

// pendingSave is a checkpoint (or the progress alone) being persisted.
type pendingSave struct {
	done chan struct{}
	err  error
	at   *objstore.Mark // the checkpoint's mark; nil for progress
}

func newPipeline(k *tick) *pipeline {
	cw := &countWriter{w: k.w, n: k.ust.Bytes + int64(k.w.Buffered())} // the leftover is buffered
	now := time.Now()
	return &pipeline{k: k, w: k.w, cw: cw, fr: newFramer(cw, k.job.Spec.Compression),
		marked: k.w.PartsCut(), saved: k.w.PartsCut(), partsBase: len(k.ust.Parts),
		lastSave: now, lastProg: now, lastWAL: now}
}

// boundary is the dump's checkpoint callback, run at every page and step
// boundary on the tick's goroutine. It takes the resumable cursor only
// where it keeps one: at a mark, and when the tick yields.
func (p *pipeline) boundary(b *dump.Boundary) error {
	k := p.k
	yield := time.Since(k.start) >= k.s.cfg.TickBudget || k.s.stopCtx.Err() != nil || k.ctx.Err() != nil
	if !yield && p.walPinned() {
		yield, p.release = true, true
	}
	var err error
	if yield {
		err = p.saveAll(b.Cursor())
	} else {
		err = p.advance(b)
	}
	if err == nil && k.s.cfg.afterCheckpoint != nil {
		err = k.s.cfg.afterCheckpoint(k.job.ID, p.saved)
	}
	if err == nil && yield {
		err = dump.ErrStop
	}
	return err
}

// advance takes a mark if a part was cut since the last one, starts a
// save when one is due and none is running, and waits only when the
// window is full.
func (p *pipeline) advance(b *dump.Boundary) error {
	k := p.k
	if err := p.reap(false); err != nil {
		return err
	}
	c := b.Progress()
	if p.w.PartsCut() != p.marked {
		// The mark's bytes must be a whole compressed stream.
		if err := p.fr.endFrame(); err != nil {
			return err
		}
		p.marks = append(p.marks, pendingMark{m: p.w.Mark(), cur: b.Cursor()})
		p.marked = p.w.PartsCut()
	}
	p.dropStale()
	window := k.s.cfg.UploadConcurrency
	if p.w.PartsCut()-p.saved >= window {
		return p.makeRoom(window, c)
	}
	if p.inflight != nil {
		return nil
	}
	if i := p.newestStored(); i >= 0 && p.saveDue(i, window) {
		return p.startSave(i, c)
	}
	if time.Since(p.lastProg) >= time.Second {
		p.startProgress(c)
	}
	return nil
}

// saveDue reports whether a checkpoint at mark i is worth its fsyncs
// now: it covers at least half the window more than the last one, or
// the last one is Config.CheckpointInterval old. Counting the parts the
// save would cover, not the parts cut, matters when the store
// acknowledges slowly (S3): the parts cut run ahead of the stored ones,
// and a save per acknowledged part would follow each one.
func (p *pipeline) saveDue(i, window int) bool {
	return p.marks[i].m.Part-p.saved >= max(1, window/2) || time.Since(p.lastSave) >= p.k.s.cfg.CheckpointInterval
}

// makeRoom runs when the window is full: it waits for the running save,
// which may free it, and otherwise for the parts of the oldest mark that
// leaves room in the window, and saves there.
func (p *pipeline) makeRoom(window int, c dump.Cursor) error {
	if err := p.reap(true); err != nil {
		return err
	}
	if p.w.PartsCut()-p.saved < window {
		return nil
	}
	if err := p.waitRoom(window); err != nil {
		return err
	}
	i := p.newestStored()
	if i < 0 {
		return nil
	}
	if err := p.startSave(i, c); err != nil {
		return err
	}
	return p.reap(true)
}

// dropStale forgets marks taken before the stream outgrew its part size:
// their upload was completed into the partial object.
func (p *pipeline) dropStale() {
	for len(p.marks) > 0 {
		if _, stale := p.w.Stored(p.marks[0].m); !stale {
			return
		}
		p.marks = p.marks[1:]
		p.saved = 0
	}
}

// waitRoom waits until the oldest mark that leaves room in the window is
// stored; with no such mark (one page spanned several parts), the newest.
func (p *pipeline) waitRoom(window int) error {
	if len(p.marks) == 0 {
		return nil
	}
	cut := p.w.PartsCut()
	target := p.marks[len(p.marks)-1]
	for _, pm := range p.marks {
		if cut-pm.m.Part < window {
			target = pm
			break
		}
	}
	return storeErr(p.w.WaitStored(p.k.ctx, target.m))
}

// newestStored returns the index of the newest mark whose parts are all
// stored, or -1.
func (p *pipeline) newestStored() int {
	for i := len(p.marks) - 1; i >= 0; i-- {
		if ok, _ := p.w.Stored(p.marks[i].m); ok {
			return i
		}
	}
	return -1
}

// startSave starts persisting the checkpoint at mark i in the background,
// and forgets that mark and the ones before it. Everything the save
// writes is copied here, on the tick's goroutine.
func (p *pipeline) startSave(i int, c dump.Cursor) error {
	k, pm := p.k, p.marks[i]
	pend, err := p.w.StateAt(pm.m)
	if err != nil {
		return storeErr(err)
	}
	p.progress(c)
	k.cur.Dump, k.cur.Instance = pm.cur, k.src.instance
	cp, job := k.checkpoint(pm.m.Leftover), *k.job
	p.marks = p.marks[i+1:]
	p.start(&pm.m, func(ctx context.Context) error {
		// The leftover file's fsyncs run beside the store's.
		wrote := make(chan error, 1)
		go func() { wrote <- k.s.st.WriteLeftover(&cp) }()
		st, err := pend.Durable(ctx)
		werr := <-wrote
		if err != nil {
			k.s.st.DiscardLeftover(&cp)
			return storeErr(err)
		}
		if werr != nil {
			return werr
		}
		cp.Upload, _ = json.Marshal(st)
		return k.s.saveCheckpoint(ctx, k.t, &job, &cp)
	})
	return nil
}

// startProgress persists the job's progress alone in the background, so
// that status stays current between checkpoints.
func (p *pipeline) startProgress(c dump.Cursor) {
	k := p.k
	p.progress(c)
	job := *k.job
	p.start(nil, func(ctx context.Context) error { return k.s.saveProgress(ctx, k.t, &job) })
}

// start runs save on a goroutine of its own (at the process's priority,
// never on a niced export thread: see docs/architecture.md) as the
// pipeline's one save in flight.
func (p *pipeline) start(at *objstore.Mark, save func(context.Context) error) {
	ps := &pendingSave{done: make(chan struct{}), at: at}
	p.inflight, p.lastProg = ps, time.Now()
	if at != nil {
		p.lastSave = p.lastProg
	}
	ctx := p.k.ctx
	go func() {
		defer close(ps.done)
		ps.err = save(ctx)
	}()
}

// reap collects the save in flight once it has ended (waiting for it if
// wait is set) and returns its error.
func (p *pipeline) reap(wait bool) error {
	ps := p.inflight
	if ps == nil {
		return nil
	}
	if wait {
		<-ps.done
	} else {
		select {
		case <-ps.done:
		default:
			return nil
		}
	}
	p.inflight = nil
	if ps.err != nil {
		return ps.err
	}
	// A checkpoint from before the stream outgrew its part size covers
	// nothing of the new upload (dropStale).
	if ps.at != nil {
		if _, stale := p.w.Stored(*ps.at); !stale {
			p.saved = ps.at.Part
		}
	}
	return nil
}

// finish waits for the save in flight, if any; a tick calls it before it
// ends, so that no save outlives it.
func (p *pipeline) finish() error { return p.reap(true) }

// saveAll checkpoints at c after every part is stored: when the tick
// yields and when the dump is done. At the dump's end the Writer is
// sealed first, so that the checkpoint holds no leftover bytes (up to a
// part's worth, written and fsynced for nothing) and names every part.
func (p *pipeline) saveAll(c dump.Cursor) error {
	if err := p.reap(true); err != nil {
		return err
	}
	if err := p.fr.endFrame(); err != nil {
		return err
	}
	if c.Done {
		if err := p.w.Seal(); err != nil {
			return storeErr(err)
		}
	}
	st, left, err := p.w.Checkpoint(p.k.ctx)
	if err != nil {
		return storeErr(err)
	}
	k := p.k
	p.progress(c)
	k.cur.Dump, k.cur.Instance = c, k.src.instance
	cp := k.checkpoint(left)
	cp.Upload, _ = json.Marshal(st)
	if err := k.s.saveCheckpoint(k.ctx, k.t, k.job, &cp); err != nil {
		return err
	}
	p.lastSave, p.lastProg = time.Now(), time.Now()
	p.saved, p.marked, p.marks = p.w.PartsCut(), p.w.PartsCut(), nil
	return nil
}

// progress updates the job's progress to the dump's position c.
func (p *pipeline) progress(c dump.Cursor) {
	job, plan := p.k.job, p.k.plan
	pr := &job.Progress
	pr.Rows, pr.TablesDone, pr.CurrentTable, pr.RowOffset = c.Rows, c.TablesDone, c.Table, c.TableRows
	pr.Bytes = p.cw.n
	pr.PartsUploaded = p.partsBase + p.w.PartsUploaded()
	ratio := 1.0
	if c.Bytes > 0 {
		ratio = float64(p.cw.n) / float64(c.Bytes)
	}
	est := int(math.Ceil(float64(plan.EstimatedBytes) * ratio / float64(p.w.PartSize())))
	pr.PartsTotal = max(pr.PartsUploaded, est)
}

// walPinned reports, at most once a second, whether the database's WAL
// has grown by more than Config.WALLimit since this snapshot was opened:
// the job's open read transaction keeps SQLite from checkpointing past
// it. The tick then yields and drops its snapshot, and the next tick
// continues from the cursor in a new one. Strict jobs read their own
// copy, which nothing writes to.
func (p *pipeline) walPinned() bool {
	k := p.k
	limit := k.s.cfg.WALLimit
	if limit <= 0 || k.job.Spec.Consistency == sluice.ConsistencyStrict || time.Since(p.lastWAL) < time.Second {
		return false
	}
	p.lastWAL = time.Now()
	fi, err := os.Stat(k.src.path + "-wal")
	if err != nil {
		return false
	}
	grown := fi.Size() - k.src.walAtOpen
	if grown <= limit {
		return false
	}
	k.s.log.Warn("jobs: the job's snapshot pins a growing WAL; continuing in a new snapshot",
		"job", k.job.ID, "wal_bytes", fi.Size(), "grown", grown, "limit", limit)
	return true
}

// saveCheckpoint writes the checkpoint and the job's progress in one
// transaction, fenced on the task lease. A job cancelled meanwhile stops
// the tick.
func (s *Service) saveCheckpoint(ctx context.Context, t state.Task, job *sluice.Job, cp *state.Checkpoint) error {
	now := s.now()
	cp.UpdatedAt = now
	// The leftover file is written (and fsynced) before the transaction,
	// which then holds the state database's write lock for its commit
	// alone.
	if err := s.st.WriteLeftover(cp); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		if err := tx.SaveCheckpoint(cp); err != nil {
			return err
		}
		job.UpdatedAt = now
		return tx.UpdateJob(job)
	})
	if err != nil {
		s.st.DiscardLeftover(cp)
	}
	return err
}

// saveProgress persists the job's progress only (between checkpoints, so
// status stays current), fenced like a checkpoint.
func (s *Service) saveProgress(ctx context.Context, t state.Task, job *sluice.Job) error {
	return s.st.Update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		job.UpdatedAt = s.now()
		return tx.UpdateJob(job)
	})
}

// fence checks inside a write transaction that this process still holds
// the task's lease and that the job was not cancelled.
func (s *Service) fence(tx *state.Tx, t state.Task, jobID string) error {
	held, err := tx.HoldsLease(t.ID, s.owner, s.now())
	if err != nil {
		return err
	}
	if !held {
		return errLeaseLost
	}
	j, err := tx.GetJob(jobID)
	if err != nil {
		return err
	}
	if j.State != sluice.StateRunning {
		return errCancelled
	}
	return nil
}
