//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// stopWithGoRun makes `go run ./cmd/sluice serve` stop cleanly when the
// go command is sent SIGTERM. The go command does not forward SIGTERM to
// the program it runs; it just exits, which would leave the server
// running with no parent. When our parent is the go command, ask the
// kernel to send us SIGTERM when it exits: serve then shuts down as for
// any SIGTERM (jobs checkpoint, exit 0).
//
// Only under go run: a server started from a shell with `&` or nohup must
// outlive that shell.
func stopWithGoRun() {
	ppid := os.Getppid()
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return
	}
	// The parent may have exited before the request took effect.
	if os.Getppid() != ppid {
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
