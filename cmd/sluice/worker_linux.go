//go:build linux

package main

import "syscall"

// workerProcAttr puts the export worker in a process group of its own, so
// that a terminal's Ctrl-C reaches only the server, which then stops the
// worker after its checkpoints; and has the kernel kill the worker if the
// server dies, even by kill -9, so that no worker outlives its server and
// the jobs resume under the next one.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
