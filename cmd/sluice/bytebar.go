package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
)

// startByteBar shows the bytes read through counted out of size (-1:
// unknown) on stderr, for mode "auto" (a terminal), "always" or "never".
// The returned function stops and clears the bar.
func startByteBar(e *env, mode string, size int64, desc string, counted *countingReader) (stop func()) {
	if mode == "never" || (mode == "auto" && !e.stderrTTY) {
		return func() {}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(e.stderr), progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(150*time.Millisecond), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription(desc))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Set64(counted.n.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		bar.Exit()
		fmt.Fprintln(e.stderr)
	}
}
