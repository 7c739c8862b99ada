package objstore

import (
	"context"
	"encoding"
	"fmt"
)

// grow handles a stream that outgrows MaxParts parts of PartSize (see
// docs/storage.md, "Outgrowing the part size"). It is called when the
// buffer is full, would be part MaxParts, and more bytes follow:
//
//  1. upload that buffer as part MaxParts and complete the upload, so the
//     key holds a partial object of MaxParts×PartSize bytes, marked as
//     this Writer's (MetaWriter) and without MetaSHA256; at generation 0
//     this Complete uses NoOverwrite, which claims the key early;
//  2. create a new upload for the same key with part size m×PartSize,
//     where m divides MaxParts (growthFactor), and fill its first
//     MaxParts/m parts by server-side copies of the partial object;
//  3. continue streaming from part MaxParts/m+1 with new, larger buffers.
//
// Every part of the new upload but the last is m×PartSize bytes, so the
// R2 rule still holds, and the room left is (MaxParts−MaxParts/m) parts
// of the larger size. The final Complete replaces the partial object after
// checking it is still this Writer's.
func (w *Writer) grow() error {
	m := growthFactor(w.limits.MaxParts, w.partSize, w.limits.MaxPartSize)
	if m == 0 {
		err := fmt.Errorf("objstore: writer %s: stream exceeds the largest object the limits allow (%d parts of %d bytes)",
			w.key, w.limits.MaxParts, w.partSize)
		w.record(Part{}, err)
		return err
	}
	if err := w.send(); err != nil {
		return err
	}
	if err := w.drain(w.ctx); err != nil {
		return err
	}
	if _, err := w.complete(w.metadata("")); err != nil {
		return fmt.Errorf("objstore: writer %s: outgrow: %w", w.key, err)
	}
	oldSize := w.partSize
	copies := w.limits.MaxParts / m
	hs, err := w.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("objstore: writer %s: save hash: %w", w.key, err)
	}
	w.mu.Lock()
	w.partSize = oldSize * int64(m)
	w.gen++
	w.uploadID = ""
	w.done = map[int]Part{}
	w.stored = 0
	w.cutHash = map[int][]byte{copies: hs} // the copies hold every byte so far
	w.mu.Unlock()
	if err := w.create(); err != nil {
		return err
	}
	w.log.Info("stream outgrew its part size; continuing with larger parts",
		"old_part_size", oldSize, "new_part_size", w.partSize, "copied_parts", copies, "generation", w.gen)
	for i := 1; i <= copies; i++ {
		select {
		case w.sem <- struct{}{}:
		case <-w.ctx.Done():
			return w.ctxErr()
		}
		if err := w.failed(); err != nil {
			<-w.sem
			return err
		}
		w.wg.Add(1)
		w.spawn(func() {
			defer w.wg.Done()
			defer func() { <-w.sem }()
			w.record(w.copyPart(i))
		})
	}
	if err := w.drain(w.ctx); err != nil {
		return err
	}
	w.next = copies + 1
	w.start()
	return nil
}

func (w *Writer) copyPart(num int) (Part, error) {
	var part Part
	off := int64(num-1) * w.partSize
	err := w.retry(w.ctx, fmt.Sprintf("copy part %d", num), w.longTimeout(), func(ctx context.Context) error {
		p, err := w.store.UploadPartCopy(ctx, w.key, w.uploadID, num, w.key, off, w.partSize)
		part = p
		return err
	})
	if err != nil {
		return Part{}, err
	}
	part.Number, part.Size = num, w.partSize
	return part, nil
}
