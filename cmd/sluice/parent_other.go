//go:build !linux

package main

// stopWithGoRun has no portable equivalent of Linux's parent-death
// signal; elsewhere, stop `go run` with Ctrl-C, which reaches the whole
// process group.
func stopWithGoRun() {}
