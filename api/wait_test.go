package api

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStatusWait checks the long poll: ?wait= answers as soon as the job
// ends, answers with the current status when the wait runs out, and
// refuses a malformed wait.
func TestStatusWait(t *testing.T) {
	e := newEnv(t)
	submit := func() string {
		t.Helper()
		code, b, _ := e.call("POST", "/export/dump", adminToken, `{}`, "Content-Type", "application/json")
		if code != http.StatusAccepted {
			t.Fatalf("submit: %d %s", code, b)
		}
		return e.jobs.lastID()
	}

	t.Run("answers when the job ends", func(t *testing.T) {
		id := submit()
		go func() {
			time.Sleep(300 * time.Millisecond)
			e.jobs.complete(id, []byte("data"), true)
		}()
		start := time.Now()
		code, b, _ := e.call("GET", "/export/dump/status/"+id+"?wait=30s", adminToken, "")
		took := time.Since(start)
		if code != 200 || !strings.Contains(string(b), `"completed"`) {
			t.Fatalf("status: %d %s", code, b)
		}
		if took > 5*time.Second {
			t.Fatalf("took %s to see the job end", took)
		}
	})
	t.Run("answers when the wait runs out", func(t *testing.T) {
		id := submit()
		start := time.Now()
		code, b, _ := e.call("GET", "/export/dump/status/"+id+"?wait=1", adminToken, "")
		if took := time.Since(start); took < 900*time.Millisecond || took > 10*time.Second {
			t.Fatalf("took %s, want about 1s", took)
		}
		if code != 200 || !strings.Contains(string(b), `"queued"`) {
			t.Fatalf("status: %d %s", code, b)
		}
	})
	for _, bad := range []string{"soon", "-5s", "1e9"} {
		t.Run("refuses wait="+bad, func(t *testing.T) {
			id := submit()
			code, b, _ := e.call("GET", "/export/dump/status/"+id+"?wait="+bad, adminToken, "")
			if code != http.StatusBadRequest || !strings.Contains(string(b), "wait") {
				t.Fatalf("status: %d %s", code, b)
			}
		})
	}
}
