package dump

import "runtime"

// Gate bounds how many of the engine's CPU-bound goroutines run at once,
// across every dump that shares it. Each dump reads on one goroutine and
// formats on another, so on a small machine one dump can take every core
// and stretch the tail latency of everything else in the process (the
// HTTP queries of sluice serve). A server shares one Gate, sized to leave
// a core free, between all its exports. A nil *Gate does not limit.
type Gate struct {
	slots chan struct{}
}

// NewGate returns a Gate admitting n goroutines at once (at least 1).
func NewGate(n int) *Gate {
	return &Gate{slots: make(chan struct{}, max(1, n))}
}

// DefaultGateSize leaves one core for the rest of the process: the number
// of CPUs minus one, at least one.
func DefaultGateSize() int { return max(1, runtime.NumCPU()-1) }

// enter waits for a slot; stop abandons the wait and reports false.
func (g *Gate) enter(stop <-chan struct{}) bool {
	if g == nil {
		return true
	}
	select {
	case g.slots <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

// leave gives the slot back.
func (g *Gate) leave() {
	if g != nil {
		<-g.slots
	}
}
