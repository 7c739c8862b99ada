package objstore

import "testing"

// Allocated returns how many part buffers the Writer holds (handed out or
// free).
func (w *Writer) Allocated() int {
	n, _ := w.bufs.live()
	return n
}

var GrowthFactor = growthFactor
var Backoff = backoff

// Buffers returns how many part buffers the Writer holds (handed out or
// free) and how many of them are mapped outside the heap.
func (w *Writer) Buffers() (n, mapped int) { return w.bufs.live() }

// FailMmap makes part buffer mapping fail for the rest of the test.
func FailMmap(t *testing.T) { failMmap(t) }
