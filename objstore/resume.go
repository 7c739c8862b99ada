package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// ErrResume means a saved State does not match the upload in the store
// (the upload is gone, or a part's size or ETag differs). The caller
// should Discard the state and start over.
var ErrResume = errors.New("objstore: resume state does not match the upload")

// State is everything needed to continue a Writer's upload in another
// process. It describes exactly the bytes in Parts; the bytes written
// after them are returned beside it by Checkpoint and must be given back
// to Resume. It is JSON-serialisable; the jobs layer persists it.
type State struct {
	Key        string `json:"key"`
	UploadID   string `json:"uploadId,omitempty"` // empty while no part was cut
	WriterID   string `json:"writerId"`
	PartSize   int64  `json:"partSize"`
	Generation int    `json:"generation,omitempty"` // times the stream outgrew its part size
	Parts      []Part `json:"parts"`                // stored parts 1..n, each PartSize bytes (the last may be shorter if Sealed)
	Bytes      int64  `json:"bytes"`                // bytes in Parts
	Hash       []byte `json:"hash"`                 // SHA-256 state over those bytes (encoding.BinaryMarshaler)
	// Sealed: the stream ended and its last part was cut (Writer.Seal), so
	// Parts are the whole object and only Complete remains.
	Sealed bool `json:"sealed,omitempty"`
	// ContentMD5Parts: the upload was created with PutOptions.ContentMD5Parts,
	// so every part of it carries a Content-MD5 from the Writer.
	ContentMD5Parts bool `json:"contentMD5Parts,omitempty"`
}

// Checkpoint waits until every part cut so far is stored, then returns the
// upload's State and a copy of the leftover bytes written after the last
// part (fewer than or equal to PartSize; Buffered tells how many in
// advance). The Writer stays usable. Persist both together with the
// position in the source that corresponds to all bytes written so far;
// after a crash, Resume(state, leftover) and continue writing from that
// position. Parts cut after a Checkpoint are not in it: a crash uploads
// them again, so checkpoint whenever PartsCut has grown and Buffered is
// small (right after a part boundary) to re-upload least.
func (w *Writer) Checkpoint(ctx context.Context) (State, []byte, error) {
	if w.closed {
		return State{}, nil, ErrClosed
	}
	if err := w.drain(ctx); err != nil {
		return State{}, nil, err
	}
	if err := w.sync(ctx, w.uploadID, w.partSize); err != nil {
		return State{}, nil, err
	}
	if w.ctx.Err() != nil {
		// A stopped Writer cannot continue; resume from the last checkpoint.
		return State{}, nil, w.ctxErr()
	}
	st, err := w.state()
	if err != nil {
		return State{}, nil, err
	}
	return st, bytes.Clone(w.buf), nil
}

// Suspend is Checkpoint followed by releasing the Writer without
// completing or aborting the upload, which stays in the store for Resume.
// The Writer is released (its requests stopped, its buffers dropped) even
// when the Checkpoint fails; the error then says the State is unusable and
// the caller resumes from an earlier one.
func (w *Writer) Suspend(ctx context.Context) (State, []byte, error) {
	if w.closed {
		return State{}, nil, ErrClosed
	}
	st, left, err := w.Checkpoint(ctx)
	w.closed = true
	w.cancel(ErrClosed)
	w.wg.Wait()
	w.releaseBuffers()
	if err != nil {
		return State{}, nil, err
	}
	return st, left, nil
}

func (w *Writer) state() (State, error) {
	parts, err := w.parts()
	if err != nil {
		return State{}, err
	}
	hs, err := w.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return State{}, fmt.Errorf("objstore: writer %s: save hash: %w", w.key, err)
	}
	return State{Key: w.key, UploadID: w.uploadID, WriterID: w.writerID, PartSize: w.partSize,
		Generation: w.gen, Parts: parts, Bytes: w.hashed, Hash: hs, ContentMD5Parts: w.md5Parts(),
		Sealed: w.sealed}, nil
}

// isMD5 reports whether a part checksum is a base64 MD5 (16 bytes) rather
// than a CRC32C (4 bytes).
func isMD5(sum string) bool {
	b, err := base64.StdEncoding.DecodeString(sum)
	return err == nil && len(b) == md5.Size
}

// Resume builds a Writer that continues the upload saved in st, after
// checking every saved part against ListParts (same number, size and
// ETag), and writes pending (the leftover returned with st) into it. The
// next part cut is len(st.Parts)+1; parts the store holds beyond those in
// st (uploaded after the checkpoint) are overwritten. opts are the options
// of the original Writer (PartSize and ExpectedSize are ignored). A
// mismatch is reported as ErrResume.
func Resume(ctx context.Context, store Store, st State, pending []byte, opts WriterOptions, logger *slog.Logger) (*Writer, error) {
	w, err := newWriter(ctx, store, st.Key, opts, logger)
	if err != nil {
		return nil, err
	}
	if err := validateState(st, w.limits, len(pending)); err != nil {
		return nil, err
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return nil, fmt.Errorf("objstore: resume %s: hash state: %w: %w", st.Key, ErrResume, err)
	}
	w.writerID, w.partSize, w.gen, w.uploadID = st.WriterID, st.PartSize, st.Generation, st.UploadID
	w.sealed = st.Sealed
	// States saved before ContentMD5Parts existed say it through their
	// parts' checksums: an MD5 means the upload took Content-MD5s.
	w.forceMD5 = st.ContentMD5Parts || slices.ContainsFunc(st.Parts, func(p Part) bool { return isMD5(p.Checksum) })
	if st.UploadID != "" {
		if err := w.verifyParts(st.Parts); err != nil {
			return nil, err
		}
	}
	for _, p := range st.Parts {
		w.done[p.Number] = p
	}
	w.next = len(st.Parts) + 1
	w.hash, w.hashed = h, st.Bytes
	w.stored = len(st.Parts)
	w.cutHash[len(st.Parts)] = st.Hash
	w.start()
	if _, err := w.Write(pending); err != nil {
		return nil, err
	}
	return w, nil
}

func validateState(st State, l Limits, pending int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("objstore: resume %s: %w: %s", st.Key, ErrResume, fmt.Sprintf(format, args...))
	}
	if st.WriterID == "" {
		return bad("no writer id")
	}
	if err := checkPartSize(st.PartSize, l); err != nil {
		return bad("%v", err)
	}
	if st.UploadID == "" && len(st.Parts) > 0 {
		return bad("parts without an upload id")
	}
	// An open stream needs a part number left for what follows; a sealed
	// one may end on the last number allowed.
	if len(st.Parts) > l.MaxParts || len(st.Parts) == l.MaxParts && !st.Sealed {
		return bad("%d parts, limit %d", len(st.Parts), l.MaxParts)
	}
	if int64(pending) > st.PartSize {
		return bad("%d leftover bytes exceed the part size %d", pending, st.PartSize)
	}
	if st.Sealed && (pending > 0 || len(st.Parts) == 0) {
		return bad("sealed with %d parts and %d leftover bytes", len(st.Parts), pending)
	}
	var sum int64
	for i, p := range st.Parts {
		full := p.Size == st.PartSize || st.Sealed && i == len(st.Parts)-1 && p.Size > 0 && p.Size < st.PartSize
		if p.Number != i+1 || !full || p.ETag == "" {
			return bad("part %d (number %d, size %d) is not a full part in sequence", i+1, p.Number, p.Size)
		}
		sum += p.Size
	}
	if sum != st.Bytes {
		return bad("parts hold %d bytes, state says %d", sum, st.Bytes)
	}
	return nil
}

// verifyParts checks the saved parts against the store's ListParts.
func (w *Writer) verifyParts(saved []Part) error {
	var listed []Part
	err := w.retry(w.ctx, "list parts", w.attemptTimeout(), func(ctx context.Context) error {
		var err error
		listed, err = w.store.ListParts(ctx, w.key, w.uploadID)
		return err
	})
	if errors.Is(err, ErrNotExist) {
		return fmt.Errorf("objstore: resume %s: upload %s is gone: %w: %w", w.key, w.uploadID, ErrResume, err)
	}
	if err != nil {
		return err
	}
	byNum := make(map[int]Part, len(listed))
	for _, p := range listed {
		byNum[p.Number] = p
	}
	for _, p := range saved {
		got, ok := byNum[p.Number]
		switch {
		case !ok:
			return fmt.Errorf("objstore: resume %s: %w: part %d is not in the upload", w.key, ErrResume, p.Number)
		case got.Size != p.Size:
			return fmt.Errorf("objstore: resume %s: %w: part %d has %d bytes, saved %d", w.key, ErrResume, p.Number, got.Size, p.Size)
		case normETag(got.ETag) != normETag(p.ETag):
			return fmt.Errorf("objstore: resume %s: %w: part %d has ETag %s, saved %s", w.key, ErrResume, p.Number, got.ETag, p.ETag)
		}
	}
	return nil
}

func normETag(s string) string { return strings.ToLower(strings.Trim(s, `"`)) }
