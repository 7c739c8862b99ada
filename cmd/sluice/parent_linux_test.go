//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeStopsWithGoRun stands in for `go run ./cmd/sluice serve`: a
// parent named "go" starts serve, then dies without forwarding anything
// (as the go command does on SIGTERM). serve must shut down cleanly on
// its own instead of running on as an orphan.
func TestServeStopsWithGoRun(t *testing.T) {
	dir := t.TempDir()
	fakeGo := filepath.Join(dir, "go")
	if err := os.Symlink("/bin/sh", fakeGo); err != nil {
		t.Fatal(err)
	}
	// The trailing ':' keeps the shell alive as serve's parent.
	script := "'" + sluiceBin(t) + "' serve --listen 127.0.0.1:0 --data-dir '" + filepath.Join(dir, "data") + "' 2>&1; :"
	cmd := exec.Command(fakeGo, "-c", script)
	// A pipe of our own: cmd.StdoutPipe would be closed by cmd.Wait,
	// while serve, the grandchild, still writes to it.
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines) // every holder of the pipe, serve included, is gone
	}()
	deadline := time.After(30 * time.Second)
	for started := false; !started; {
		select {
		case l := <-lines:
			started = strings.HasPrefix(l, "sluice: listening on ")
		case <-deadline:
			t.Fatal("serve did not start")
		}
	}
	cmd.Process.Kill() // the "go" parent dies
	cmd.Wait()
	var log []string
	deadline = time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if !strings.Contains(strings.Join(log, "\n"), "msg=stopped") {
					t.Fatalf("serve exited without a clean shutdown:\n%s", strings.Join(log, "\n"))
				}
				return
			}
			log = append(log, l)
		case <-deadline:
			t.Fatalf("serve still running 15s after its go parent died:\n%s", strings.Join(log, "\n"))
		}
	}
}
