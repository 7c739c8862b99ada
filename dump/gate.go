package dump

import (
	"runtime"

	"github.com/sluice-dev/sluice/internal/nice"
)

// Gate bounds how many of the engine's CPU-bound goroutines run at once,
// across every dump that shares it, and can lower their CPU priority.
// Each dump reads on one goroutine and formats on another, so on a small
// machine one dump can take every core and stretch the tail latency of
// everything else in the process (the HTTP queries of sluice serve). A
// server shares one Gate, sized to leave a core free, between all its
// exports. A nil *Gate does not limit.
type Gate struct {
	slots chan struct{}
	nice  int
}

// NewGate returns a Gate admitting n goroutines at once (at least 1).
func NewGate(n int) *Gate {
	return &Gate{slots: make(chan struct{}, max(1, n))}
}

// WithNice makes the dump goroutines behind g run on operating-system
// threads of their own at the given nice value (1 to 19; Linux only,
// ignored elsewhere and for 0; at 19 the threads also get the SCHED_IDLE
// policy), so the kernel runs anything else the process does first: a query that wakes up takes the core from a dump
// at once instead of waiting for its time slice. Each such thread ends
// with its goroutine; no other goroutine ever runs on it. It returns g.
func (g *Gate) WithNice(nice int) *Gate {
	g.nice = min(max(nice, 0), 19)
	return g
}

// DefaultGateSize is the gate size for exports at the given nice value.
// Niced exports (Linux: nice 19 is also SCHED_IDLE) get every CPU: the
// kernel runs a query's thread the moment it wakes, and the server keeps
// a Go P spare for each export thread (GOMAXPROCS), so an export only
// takes CPU nothing else wants. Exports at nice 0 compete with queries
// as equals, so they leave one core free: CPUs − 1, at least 1.
func DefaultGateSize(nice int) int {
	if nice > 0 {
		return runtime.NumCPU()
	}
	return max(1, runtime.NumCPU()-1)
}

// DefaultNice is the nice value of a server's export threads: the lowest
// priority, since exports are throughput work and queries wait on a user.
const DefaultNice = 19

// lowerPriority, called first thing by a goroutine the engine started and
// that exits when its work ends, pins it to its thread and lowers that
// thread's priority to the gate's nice value. The goroutine must not call
// runtime.UnlockOSThread: the thread, still niced, then ends with it.
func (g *Gate) lowerPriority() {
	if g != nil {
		nice.LockThread(g.nice)
	}
}

// Go runs f on a new goroutine at the gate's priority (see WithNice),
// without taking a slot: for work that serves exports but is not the
// engine's, such as uploading their parts. With no nice value, or a nil
// Gate, it is a plain go statement.
func (g *Gate) Go(f func()) {
	go func() {
		g.lowerPriority()
		f()
	}()
}

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
