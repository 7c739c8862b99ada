// Package nice lowers the CPU priority of the calling goroutine's
// operating-system thread, for work that should only use CPU nothing
// else wants: the dump engine's goroutines in a server, and the thread
// that starts the export worker process, whose every thread inherits
// the priority.
package nice

import "runtime"

// LockThread pins the calling goroutine to its thread and sets that
// thread's nice value (1 to 19; 0 or less does nothing and leaves the
// goroutine unpinned). At 19 the thread also gets Linux's SCHED_IDLE
// policy. The goroutine must not call runtime.UnlockOSThread: the
// thread, still niced, then ends with it, and no other goroutine ever
// runs on it. Only Linux sets priorities per thread; elsewhere the
// goroutine is pinned and nothing else changes.
func LockThread(n int) {
	if n <= 0 {
		return
	}
	runtime.LockOSThread()
	setThreadNice(min(n, 19))
}
