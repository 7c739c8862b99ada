package faultproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backend echoes what it received: Host, a header and the body.
func backend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Sig", r.Header.Get("X-Amz-Content-Sha256"))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func newProxy(t *testing.T, target string, seed uint64, f Faults) *Proxy {
	t.Helper()
	p, err := New(target, seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	return p
}

func client() *http.Client {
	// No keep-alive reuse after a dropped connection muddles nothing, but
	// a fresh transport per test keeps tests independent.
	return &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
}

func TestPassThroughKeepsHostHeadersAndBody(t *testing.T) {
	srv, hits := backend(t)
	p := newProxy(t, srv.URL, 1, Faults{})
	req, _ := http.NewRequest(http.MethodPut, p.URL()+"/bucket/key?partNumber=1&uploadId=x", strings.NewReader("hello"))
	req.Header.Set("X-Amz-Content-Sha256", "abc")
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	proxyHost := strings.TrimPrefix(p.URL(), "http://")
	if got := resp.Header.Get("X-Seen-Host"); got != proxyHost {
		t.Errorf("server saw Host %q, want the proxy's %q (SigV4 signs it)", got, proxyHost)
	}
	if got := resp.Header.Get("X-Seen-Sig"); got != "abc" {
		t.Errorf("signed header altered: %q", got)
	}
	if string(body) != "hello" {
		t.Errorf("body %q", body)
	}
	if hits.Load() != 1 || p.Stats().Forwarded != 1 || p.Stats().Faulted() != 0 {
		t.Errorf("hits %d, stats %+v", hits.Load(), p.Stats())
	}
}

// outcome runs n sequential requests and records which failed, and how.
func outcomes(t *testing.T, p *Proxy, n int) string {
	t.Helper()
	c := client()
	var b strings.Builder
	for i := 0; i < n; i++ {
		resp, err := c.Post(p.URL()+"/x", "text/plain", strings.NewReader("body"))
		switch {
		case err != nil:
			b.WriteByte('D')
		case resp.StatusCode == http.StatusInternalServerError:
			b.WriteByte('E')
		default:
			b.WriteByte('.')
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return b.String()
}

func TestRatesAreSeededAndCounted(t *testing.T) {
	srv, hits := backend(t)
	f := Faults{DropRate: 0.1, ErrorRate: 0.2}
	const n = 300
	a := outcomes(t, newProxy(t, srv.URL, 42, f), n)
	p := newProxy(t, srv.URL, 42, f)
	b := outcomes(t, p, n)
	if a != b {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	c := outcomes(t, newProxy(t, srv.URL, 43, f), n)
	if c == a {
		t.Errorf("different seeds gave identical fault sequences")
	}
	st := p.Stats()
	drops, errs := int64(strings.Count(b, "D")), int64(strings.Count(b, "E"))
	if st.Dropped != drops || st.Errors != errs || st.Requests != n || st.Matched != n {
		t.Errorf("stats %+v, client saw %d drops and %d errors", st, drops, errs)
	}
	// 10% and 20% of 300, with generous bounds (the draw is fixed by
	// the seed, so this cannot flake).
	if drops < 10 || drops > 55 || errs < 30 || errs > 95 {
		t.Errorf("drops %d, errors %d: far from 30 and 60", drops, errs)
	}
	if st.Forwarded != n-drops-errs {
		t.Errorf("forwarded %d, want %d", st.Forwarded, n-drops-errs)
	}
	_ = hits
}

func TestMatchLimitsFaults(t *testing.T) {
	srv, _ := backend(t)
	p := newProxy(t, srv.URL, 7, Faults{Match: IsUploadPart, ErrorRate: 1})
	c := client()
	resp, err := c.Get(p.URL() + "/bucket/key")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET not matched should pass: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPut, p.URL()+"/bucket/key?partNumber=3&uploadId=u", strings.NewReader("part"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("UploadPart got %d, want 500", resp.StatusCode)
	}
	if st := p.Stats(); st.Matched != 1 || st.Errors != 1 || st.Forwarded != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFirstMatchingRuleDecides(t *testing.T) {
	srv, _ := backend(t)
	isGet := func(r *http.Request) bool { return r.Method == http.MethodGet }
	p := newProxy(t, srv.URL, 3, Faults{})
	if err := p.SetFaults(Faults{Match: isGet, ErrorRate: 1}, Faults{ErrorRate: 0}); err != nil {
		t.Fatal(err)
	}
	c := client()
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodGet} {
		req, _ := http.NewRequest(m, p.URL()+"/x", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if m == http.MethodGet {
			want = http.StatusInternalServerError
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", m, resp.StatusCode, want)
		}
	}
	if st := p.Stats(); st.Matched != 3 || st.Errors != 2 {
		t.Errorf("stats %+v", st)
	}
	if err := p.SetFaults(Faults{}, Faults{DropRate: 2}); err == nil {
		t.Error("an invalid second rule was accepted")
	}
}

func TestDropResponseReachesServer(t *testing.T) {
	srv, hits := backend(t)
	p := newProxy(t, srv.URL, 1, Faults{DropResponseRate: 1})
	resp, err := client().Post(p.URL()+"/x", "text/plain", strings.NewReader("body"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got a response (%d), want a broken connection", resp.StatusCode)
	}
	if hits.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", hits.Load())
	}
	if st := p.Stats(); st.DroppedResponse != 1 || st.Forwarded != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStallHoldsUntilClientGivesUp(t *testing.T) {
	srv, hits := backend(t)
	p := newProxy(t, srv.URL, 1, Faults{StallRate: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/x", nil)
	start := time.Now()
	_, err := client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	if hits.Load() != 0 || p.Stats().Stalled != 1 {
		t.Errorf("hits %d, stats %+v", hits.Load(), p.Stats())
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
	}{
		{"negative", Faults{DropRate: -0.1}},
		{"above one", Faults{ErrorRate: 1.5}},
		{"sum above one", Faults{DropRate: 0.6, ErrorRate: 0.6}},
	}
	p := newProxy(t, "http://127.0.0.1:1", 1, Faults{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.SetFaults(tc.f); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := New("127.0.0.1:1", 1, nil); err == nil {
		t.Error("target without scheme accepted")
	}
}
