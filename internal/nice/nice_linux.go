package nice

import (
	"syscall"
	"unsafe"
)

// schedIdle is Linux's SCHED_IDLE scheduling policy: the thread runs only
// when no other thread of normal policy wants the CPU.
const schedIdle = 5

// setThreadNice sets the nice value of the calling thread. On Linux,
// setpriority(PRIO_PROCESS, tid) acts on one thread, not the process. At
// 19, the lowest priority, the thread is also put under SCHED_IDLE, so a
// waking query preempts it at once. A failure (a sandbox that forbids
// it) only leaves the priority alone.
func setThreadNice(nice int) {
	tid := syscall.Gettid()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
	if nice >= 19 {
		var param struct{ priority int32 }
		_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param)))
	}
}
