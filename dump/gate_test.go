package dump

import (
	"bytes"
	"context"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// TestGate checks that dumps sharing a one-slot Gate produce exactly the
// bytes of an ungated dump, in every format, even when several run at
// once, and that a dump waiting at a full gate honours cancellation.
func TestGate(t *testing.T) {
	db := testsupport.CopyFile(t, testsupport.Corpus(t, "chinook.sqlite"), t.TempDir())
	for _, f := range []sluice.Format{sluice.FormatSQL, sluice.FormatCSV, sluice.FormatJSON, sluice.FormatJSONTyped, sluice.FormatNDJSON} {
		t.Run(string(f), func(t *testing.T) {
			want := dumpAll(t, db, Options{Format: f, ChunkSize: 50})
			gate := NewGate(1)
			var wg sync.WaitGroup
			got := make([][]byte, 3)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = dumpAll(t, db, Options{Format: f, ChunkSize: 50, Gate: gate})
				}()
			}
			wg.Wait()
			for i, g := range got {
				if !bytes.Equal(g, want) {
					t.Errorf("gated dump %d differs from the ungated one (%d vs %d bytes)", i, len(g), len(want))
				}
			}
		})
	}

	t.Run("cancel while waiting", func(t *testing.T) {
		gate := NewGate(1)
		gate.slots <- struct{}{} // held elsewhere
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		src, err := Open(ctx, db, Options{Gate: gate}, testsupport.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var out bytes.Buffer
		_, err = src.Dump(ctx, &out, Cursor{}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dump at a full gate: got %v, want the context's deadline", err)
		}
	})
}
