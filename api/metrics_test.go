package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// httpSeries counts the request-latency series in /metrics.
func httpSeries(t *testing.T, e *testEnv) int {
	t.Helper()
	code, b, _ := e.call("GET", "/metrics", adminToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, b)
	}
	return strings.Count(string(b), "sluice_http_request_duration_seconds_count{")
}

// TestMetricLabelsBounded sends requests with made-up methods and paths:
// the latency metric must not grow a series for each.
func TestMetricLabelsBounded(t *testing.T) {
	e := newEnv(t)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			for _, path := range []string{"/healthz", fmt.Sprintf("/nope/%d", i), fmt.Sprintf("/db/x%d/query", i)} {
				resp := e.do(fmt.Sprintf("MADEUP%d", i), path, "", nil)
				resp.Body.Close()
			}
		}
	}
	send(0, 3)
	httpSeries(t, e) // the scrape itself is a series
	before := httpSeries(t, e)
	send(3, 200)
	if after := httpSeries(t, e); after != before {
		t.Fatalf("made-up methods and paths grew /metrics from %d to %d latency series", before, after)
	}
	code, b, _ := e.call("GET", "/metrics", adminToken, "")
	if code != http.StatusOK || !strings.Contains(string(b), `method="other"`) || strings.Contains(string(b), "MADEUP") {
		t.Fatalf("made-up methods are not labelled other:\n%s", b)
	}
}
