package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
)

// TestServeJobCap: through the real server, concurrent submits beyond
// limits.maxQueuedJobs get 429 with Retry-After instead of queueing
// without bound.
func TestServeJobCap(t *testing.T) {
	dir := t.TempDir()
	const token = "cap-admin-token"
	db := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	cfg := map[string]any{
		"dataDir":   filepath.Join(dir, "data"),
		"databases": map[string]string{"default": db},
		"tokens":    map[string]any{"admin": []string{token}},
		"limits":    map[string]any{"maxConcurrentJobs": 1, "maxQueuedJobs": 2},
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "sluice.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2EServer(t, dir, cfgPath, token)

	const n = 20
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := s.do("POST", "/export/dump", []byte(`{"format":"sql"}`), nil)
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %s", body)
			}
			if resp.StatusCode == http.StatusTooManyRequests && !json.Valid(body) {
				t.Errorf("429 body is not JSON: %s", body)
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusAccepted]+codes[http.StatusTooManyRequests] != n {
		t.Fatalf("answers %v: want only 202 and 429", codes)
	}
	// Jobs that finish while the burst lasts free slots, but most of
	// a burst of 20 against a cap of 2 must be refused.
	if codes[http.StatusTooManyRequests] < n/2 || codes[http.StatusAccepted] < 2 {
		t.Fatalf("answers %v: want at least 2 accepted and %d refused with 429", codes, n/2)
	}
}
