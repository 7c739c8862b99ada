package dump

import (
	"bytes"
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"runtime"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice"
)

// threadNice is the calling thread's nice value (the raw syscall answers
// 20 - nice).
func threadNice(t *testing.T) int {
	t.Helper()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

// pinnedNice pins the test to its thread until it ends and returns that
// thread's nice value, skipping the test if it cannot be lowered further.
func pinnedNice(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	n := threadNice(t)
	if n >= 19 {
		t.Skipf("the test process already runs at nice %d", n)
	}
	return n
}

// TestGateNice checks that a Gate's WithNice runs the formatting (and
// the writes) on a thread at that nice value, gives the same bytes,
// runs the checkpoint callback on the caller's own thread, and leaves
// that thread alone.
func TestGateNice(t *testing.T) {
	before := pinnedNice(t)
	db := testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), t.TempDir())
	want := dumpAll(t, db, Options{Format: sluice.FormatSQL, ChunkSize: 50})

	src, err := Open(context.Background(), db, Options{Format: sluice.FormatSQL, ChunkSize: 50, Gate: NewGate(1).WithNice(19)}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	var seen, calls []int
	w := writerFunc(func(p []byte) (int, error) {
		seen = append(seen, threadNice(t))
		return out.Write(p)
	})
	cur, err := src.Dump(context.Background(), w, Cursor{}, func(*Boundary) error {
		calls = append(calls, threadNice(t))
		return nil
	})
	if err != nil || !cur.Done {
		t.Fatalf("dump: %v (done %v)", err, cur.Done)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("niced dump differs from the plain one (%d vs %d bytes)", out.Len(), len(want))
	}
	if len(seen) == 0 || len(calls) == 0 {
		t.Fatalf("%d writes, %d checkpoints offered", len(seen), len(calls))
	}
	for _, n := range seen {
		if n != 19 {
			t.Fatalf("formatting ran at nice %d, want 19 (all: %v)", n, seen)
		}
	}
	for _, n := range calls {
		if n != before {
			t.Fatalf("a checkpoint callback ran at nice %d, want the caller's %d", n, before)
		}
	}
	if got := threadNice(t); got != before {
		t.Errorf("the caller's thread is at nice %d after the dump, was %d", got, before)
	}
}

// TestGateGo checks that Gate.Go runs its function at the gate's nice
// value, and at the caller's own without one.
func TestGateGo(t *testing.T) {
	base := pinnedNice(t)
	for _, tc := range []struct {
		gate *Gate
		want int
	}{
		{NewGate(1).WithNice(19), 19},
		{NewGate(1), base},
		{nil, base},
	} {
		got := make(chan int, 1)
		tc.gate.Go(func() {
			runtime.LockOSThread() // read the nice value of the thread f runs on
			got <- threadNice(t)
		})
		if n := <-got; n != tc.want {
			t.Errorf("gate %+v: Go ran at nice %d, want %d", tc.gate, n, tc.want)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
