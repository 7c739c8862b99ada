package objstore

import (
	"bytes"
	"context"
	"encoding"
	"fmt"
)

// Mark is a position in the stream at which a caller may later resume:
// every byte written before it is in parts 1..Part, which were cut
// already, plus Leftover. Take one with Writer.Mark; once its parts are
// stored (Writer.Stored), Writer.StateAt gives the State to persist with
// Leftover and the caller's own position. This is what lets a caller
// checkpoint a prefix of the stream while later parts still upload: the
// pipelined checkpoints of package jobs.
type Mark struct {
	Part     int    // parts 1..Part hold the bytes before Leftover
	Leftover []byte // bytes written after part Part, a copy
	gen      int
}

// Mark returns the current end of the stream as a Mark. It copies the
// buffered bytes (Buffered tells how many), so take marks just after a
// part was cut, when few bytes are buffered.
func (w *Writer) Mark() Mark {
	return Mark{Part: w.next - 1, Leftover: bytes.Clone(w.buf), gen: w.gen}
}

// saveCutHash keeps the SHA-256 state after part num, so that a Mark at
// num can become a State once the parts up to it are stored.
func (w *Writer) saveCutHash(num int) {
	hs, err := w.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return // StateAt reports the mark unusable
	}
	w.mu.Lock()
	w.cutHash[num] = hs
	w.mu.Unlock()
}

// signal wakes every WaitStored.
func (w *Writer) signal() {
	w.mu.Lock()
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
}

// Stored reports whether every part up to m is stored; stale reports
// that m can never be (the stream outgrew its part size after it).
func (w *Writer) Stored(m Mark) (stored, stale bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m.gen != w.gen {
		return false, true
	}
	return m.Part <= w.stored, false
}

// WaitStored blocks until every part up to m is stored. It fails if the
// upload failed, m is stale, or ctx ends first.
func (w *Writer) WaitStored(ctx context.Context, m Mark) error {
	for {
		w.mu.Lock()
		stale, ok, err, ch := m.gen != w.gen, m.Part <= w.stored, w.err, w.progress
		w.mu.Unlock()
		switch {
		case stale:
			return fmt.Errorf("objstore: writer %s: mark at part %d is stale", w.key, m.Part)
		case ok:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("objstore: writer %s: wait for part %d: %w", w.key, m.Part, ctx.Err())
		case <-w.ctx.Done():
			return w.ctxErr()
		}
	}
}

// StateAt returns the State covering parts 1..m.Part, which must all be
// stored: persisted with m.Leftover, it resumes the stream at m. Hash
// states of marks before m are dropped, so take marks in order. The State
// comes as a PendingState: on a store that defers durability (Syncer) its
// parts may not survive a power loss until PendingState.Durable has run.
func (w *Writer) StateAt(m Mark) (PendingState, error) {
	if ok, _ := w.Stored(m); !ok {
		return PendingState{}, fmt.Errorf("objstore: writer %s: mark at part %d is not stored", w.key, m.Part)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	hs, ok := w.cutHash[m.Part]
	if !ok {
		return PendingState{}, fmt.Errorf("objstore: writer %s: no hash state at part %d", w.key, m.Part)
	}
	for k := range w.cutHash {
		if k < m.Part {
			delete(w.cutHash, k)
		}
	}
	parts := make([]Part, m.Part)
	for i := range parts {
		parts[i] = w.done[i+1]
	}
	return PendingState{w: w, st: State{Key: w.key, UploadID: w.uploadID, WriterID: w.writerID, PartSize: w.partSize,
		Generation: w.gen, Parts: parts, Bytes: int64(m.Part) * w.partSize, Hash: hs,
		ContentMD5Parts: w.md5Parts()}}, nil
}

// PendingState is a State whose parts are stored but perhaps not yet
// durable (see StateAt).
type PendingState struct {
	w  *Writer
	st State
}

// Durable makes the State's parts durable and returns the State, ready to
// persist. Unlike the Writer's other methods it may run on any goroutine,
// concurrently with Write: a caller persists one checkpoint while the
// stream goes on (the sync is an fdatasync of everything the file store
// wrote, which the stream should not wait for).
func (p PendingState) Durable(ctx context.Context) (State, error) {
	if err := p.w.sync(ctx, p.st.UploadID, p.st.PartSize); err != nil {
		return State{}, err
	}
	return p.st, nil
}
