package jobs

import (
	"bytes"
	"context"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore/storetest"
	"github.com/sluice-dev/sluice/state"
)

// TestTwoSchedulersOneDataDir runs two services (as two processes would:
// separate state handles, owners and locks) on one data dir. Jobs hop
// between them tick by tick; no job ever runs in both at once, and every
// object equals an uninterrupted dump.
func TestTwoSchedulersOneDataDir(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) {
		c.TickBudget = 20 * time.Millisecond
		c.Workers = 2
	})
	var mu sync.Mutex
	inside := map[string]string{} // job id → service currently in its checkpoint hook
	hook := func(name string) func(string, int) error {
		return func(id string, _ int) error {
			mu.Lock()
			if other, busy := inside[id]; busy {
				mu.Unlock()
				return fmt.Errorf("job %s ticking in %s and %s at once", id, other, name)
			}
			inside[id] = name
			mu.Unlock()
			time.Sleep(3 * time.Millisecond)
			mu.Lock()
			delete(inside, id)
			mu.Unlock()
			return nil
		}
	}
	ctx := context.Background()
	var svcs []*Service
	for _, name := range []string{"a", "b"} {
		st, err := state.Open(ctx, filepath.Join(e.dataDir, state.FileName), e.log)
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cfg
		cfg.afterCheckpoint = hook(name)
		svc, err := New(ctx, cfg, st, e.store, e.log)
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, svc)
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			svc.Close(cctx)
			st.Close()
		})
	}
	specs := []sluice.JobSpec{
		{Tables: []string{"Track"}, ChunkSize: 200}, {Format: sluice.FormatJSON, Tables: []string{"Invoice", "InvoiceLine"}, ChunkSize: 300},
		{Format: sluice.FormatCSV, Tables: []string{"Album", "Artist", "Customer"}, ChunkSize: 50},
		{Format: sluice.FormatNDJSON, Compression: sluice.CompressGzip, Tables: []string{"PlaylistTrack"}, ChunkSize: 500},
	}
	var ids []string
	for i, spec := range specs {
		j, err := svcs[i%2].Submit(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	var keys []string
	for i, id := range ids {
		done := waitJob(t, svcs[(i+1)%2], id, 2*time.Minute, sluice.StateCompleted)
		want := referenceDump(t, e.dbPath, done.Spec)
		if got := decompress(t, done.Spec.Compression, storetest.ReadObject(t, e.store, done.Key)); !bytes.Equal(got, want) {
			t.Errorf("job %d: object differs from an uninterrupted dump", i)
		}
		keys = append(keys, done.Key)
	}
	assertClean(t, e.store, keys...)
}
