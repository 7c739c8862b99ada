package storetest

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// Recorder wraps a Store, counting part uploads and checking every
// multipart upload completed through it against the R2 rule: all parts but
// the last have the same size and the last is no larger, with sizes taken
// from the backend's ListParts. Set the hooks before use to inject faults.
type Recorder struct {
	objstore.Store

	// BeforeUploadPart, if set, runs before each UploadPart; a non-nil
	// error is returned instead of calling the backend.
	BeforeUploadPart func(key string, number, call int) error
	// Delay, if set, is slept inside each UploadPart (to observe
	// parallelism).
	Delay time.Duration
	// AfterComplete and AfterPut, if set, see the backend's result of
	// each CompleteMultipart or Put (call counts from 1) and may replace
	// its error, for example to simulate an answer lost after the backend
	// succeeded.
	AfterComplete func(call int, err error) error
	AfterPut      func(call int, err error) error

	mu         sync.Mutex
	uploads    map[string]int // "uploadID/number" -> successful UploadPart calls
	calls      int            // UploadPart calls, including failed ones
	inFlight   int
	maxFlight  int
	violations []string
	completed  int
	completes  int
	puts       int
}

// NewRecorder wraps s.
func NewRecorder(s objstore.Store) *Recorder {
	return &Recorder{Store: s, uploads: map[string]int{}}
}

// Limits passes through the wrapped store's limits.
func (r *Recorder) Limits() objstore.Limits { return objstore.LimitsOf(r.Store) }

// UploadPart implements objstore.Store.
func (r *Recorder) UploadPart(ctx context.Context, key, uploadID string, number int, body io.Reader, size int64, contentMD5 string) (objstore.Part, error) {
	r.mu.Lock()
	r.calls++
	call := r.calls
	r.inFlight++
	r.maxFlight = max(r.maxFlight, r.inFlight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	if r.BeforeUploadPart != nil {
		if err := r.BeforeUploadPart(key, number, call); err != nil {
			return objstore.Part{}, err
		}
	}
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
		case <-ctx.Done():
			return objstore.Part{}, ctx.Err()
		}
	}
	p, err := r.Store.UploadPart(ctx, key, uploadID, number, body, size, contentMD5)
	if err == nil {
		r.mu.Lock()
		r.uploads[fmt.Sprintf("%s/%d", uploadID, number)]++
		r.mu.Unlock()
	}
	return p, err
}

// CompleteMultipart implements objstore.Store, checking the R2 rule first.
func (r *Recorder) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.Part, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if stored, err := r.Store.ListParts(ctx, key, uploadID); err == nil {
		size := map[int]int64{}
		for _, p := range stored {
			size[p.Number] = p.Size
		}
		var first int64 = -1
		for i, p := range parts {
			s := size[p.Number]
			if i == 0 {
				first = s
			}
			if (i < len(parts)-1 && s != first) || (i == len(parts)-1 && s > first) {
				r.mu.Lock()
				r.violations = append(r.violations, fmt.Sprintf("%s: part %d has %d bytes, part 1 has %d", key, p.Number, s, first))
				r.mu.Unlock()
			}
		}
	}
	info, err := r.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
	r.mu.Lock()
	r.completes++
	call := r.completes
	if err == nil {
		r.completed++
	}
	r.mu.Unlock()
	if r.AfterComplete != nil {
		err = r.AfterComplete(call, err)
	}
	return info, err
}

// Put implements objstore.Store.
func (r *Recorder) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	info, err := r.Store.Put(ctx, key, body, size, opts)
	r.mu.Lock()
	r.puts++
	call := r.puts
	r.mu.Unlock()
	if r.AfterPut != nil {
		err = r.AfterPut(call, err)
	}
	return info, err
}

// Uploads returns how many times each part number of uploadID was stored.
func (r *Recorder) Uploads(uploadID string, number int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploads[fmt.Sprintf("%s/%d", uploadID, number)]
}

// Calls returns the number of UploadPart calls, failed ones included.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// MaxInFlight returns the largest number of concurrent UploadPart calls.
func (r *Recorder) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxFlight
}

// Completed returns the number of successful CompleteMultipart calls.
func (r *Recorder) Completed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.completed
}

// Violations returns the R2-rule violations seen at Complete.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}
