package objstore

// Allocated returns how many part buffers the Writer has allocated.
func (w *Writer) Allocated() int { return w.alloc }

var GrowthFactor = growthFactor
var Backoff = backoff
