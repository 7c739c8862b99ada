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
// acknowledged prefix of the upload. The dump waits for the store only
// when the window is full: Config.UploadConcurrency parts cut and not
// covered by the saved checkpoint. Those are the parts a crash makes the
// job dump and upload again. Checkpoints come at most about once per
// Config.CheckpointInterval while the window has room, and when the tick
// yields or the dump ends (saveAll, which waits for every part).
type pipeline struct {
	k  *tick
	w  *objstore.Writer
	cw *countWriter
	fr *framer

	marks     []pendingMark // taken and not yet saved, oldest first
	marked    int           // PartsCut at the last mark
	saved     int           // parts the saved checkpoint covers
	partsBase int           // parts stored before this tick
	lastSave  time.Time
	lastSaveP time.Time // last save of progress alone
	lastWAL   time.Time
	release   bool // the tick yields to release its snapshot (WALLimit)
}

type pendingMark struct {
	m   objstore.Mark
	cur dump.Cursor
}

func newPipeline(k *tick) *pipeline {
	cw := &countWriter{w: k.w, n: k.ust.Bytes + int64(len(k.cp.Leftover))}
	now := time.Now()
	return &pipeline{k: k, w: k.w, cw: cw, fr: newFramer(cw, k.job.Spec.Compression),
		marked: k.w.PartsCut(), saved: k.w.PartsCut(), partsBase: len(k.ust.Parts),
		lastSave: now, lastSaveP: now, lastWAL: now}
}

// boundary is the dump's checkpoint callback, run at every page and step
// boundary on the tick's goroutine.
func (p *pipeline) boundary(c dump.Cursor) error {
	k := p.k
	yield := time.Since(k.start) >= k.s.cfg.TickBudget || k.s.stopCtx.Err() != nil || k.ctx.Err() != nil
	if !yield && p.walPinned() {
		yield, p.release = true, true
	}
	var err error
	if yield {
		err = p.saveAll(c)
	} else {
		err = p.advance(c)
	}
	if err == nil && k.s.cfg.afterCheckpoint != nil {
		err = k.s.cfg.afterCheckpoint(k.job.ID, p.saved)
	}
	if err == nil && yield {
		err = dump.ErrStop
	}
	return err
}

// advance takes a mark if a part was cut since the last one, waits for
// the store if the window is full, and saves a checkpoint when one is
// due, or the progress alone once a second.
func (p *pipeline) advance(c dump.Cursor) error {
	k := p.k
	if p.w.PartsCut() != p.marked {
		// The mark's bytes must be a whole compressed stream.
		if err := p.fr.endFrame(); err != nil {
			return err
		}
		p.marks = append(p.marks, pendingMark{m: p.w.Mark(), cur: c})
		p.marked = p.w.PartsCut()
	}
	p.dropStale()
	window := k.s.cfg.UploadConcurrency
	full := p.w.PartsCut()-p.saved >= window
	if full {
		if err := p.waitRoom(window); err != nil {
			return err
		}
	}
	if full || time.Since(p.lastSave) >= k.s.cfg.CheckpointInterval {
		if i := p.newestStored(); i >= 0 {
			return p.save(i, c)
		}
	}
	if time.Since(p.lastSaveP) >= time.Second {
		p.progress(c)
		p.lastSaveP = time.Now()
		return k.s.saveProgress(k.ctx, k.t, k.job)
	}
	return nil
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

// save checkpoints at mark i, then forgets it and the marks before it.
func (p *pipeline) save(i int, c dump.Cursor) error {
	pm := p.marks[i]
	st, err := p.w.StateAt(p.k.ctx, pm.m)
	if err != nil {
		return storeErr(err)
	}
	p.progress(c)
	if err := p.persist(pm.cur, st, pm.m.Leftover); err != nil {
		return err
	}
	p.saved = pm.m.Part
	p.marks = p.marks[i+1:]
	return nil
}

// saveAll checkpoints at c after every part is stored: when the tick
// yields and when the dump is done.
func (p *pipeline) saveAll(c dump.Cursor) error {
	if err := p.fr.endFrame(); err != nil {
		return err
	}
	st, left, err := p.w.Checkpoint(p.k.ctx)
	if err != nil {
		return storeErr(err)
	}
	p.progress(c)
	if err := p.persist(c, st, left); err != nil {
		return err
	}
	p.saved, p.marked, p.marks = p.w.PartsCut(), p.w.PartsCut(), nil
	return nil
}

func (p *pipeline) persist(c dump.Cursor, st objstore.State, leftover []byte) error {
	k := p.k
	k.cur.Dump, k.cur.Instance = c, k.src.instance
	k.cp.Cursor, _ = json.Marshal(k.cur)
	k.cp.Upload, _ = json.Marshal(st)
	k.cp.Leftover = leftover
	if err := k.s.saveCheckpoint(k.ctx, k.t, k.job, k.cp); err != nil {
		return err
	}
	p.lastSave, p.lastSaveP = time.Now(), time.Now()
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
	return s.st.Update(ctx, func(tx *state.Tx) error {
		if err := s.fence(tx, t, job.ID); err != nil {
			return err
		}
		if err := tx.SaveCheckpoint(cp); err != nil {
			return err
		}
		job.UpdatedAt = now
		return tx.UpdateJob(job)
	})
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
