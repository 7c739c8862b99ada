package dump

import "syscall"

// setThreadNice sets the nice value of the calling thread. On Linux,
// setpriority(PRIO_PROCESS, tid) acts on one thread, not the process. A
// failure (a sandbox that forbids it) only leaves the priority alone.
func setThreadNice(nice int) {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
