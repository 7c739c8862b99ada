//go:build !linux

package main

import "syscall"

// workerProcAttr: without Linux's parent-death signal the worker stops
// when the end of its pipe from the server tells it the server is gone.
func workerProcAttr() *syscall.SysProcAttr { return nil }
