package jobs

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// receiver is a callback endpoint that checks signatures and can fail
// its first requests.
type receiver struct {
	t         *testing.T
	secret    string
	failFirst int64
	calls     atomic.Int64
	mu        sync.Mutex
	delivered []sluice.Job
	badSig    int
	srv       *httptest.Server
}

func newReceiver(t *testing.T, secret string, failFirst int64) *receiver {
	r := &receiver{t: t, secret: secret, failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve)) // 127.0.0.1:0
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	n := r.calls.Add(1)
	body, _ := io.ReadAll(req.Body)
	ts, err := strconv.ParseInt(req.Header.Get(HeaderTimestamp), 10, 64)
	want := Sign(r.secret, ts, body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || !hmac.Equal([]byte(req.Header.Get(HeaderSignature)), []byte(want)) ||
		time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		r.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if n <= r.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var j sluice.Job
	if err := json.Unmarshal(body, &j); err != nil {
		r.t.Errorf("callback body: %v", err)
	}
	if req.Header.Get(HeaderJobID) != j.ID {
		r.t.Errorf("job id header %q, body %q", req.Header.Get(HeaderJobID), j.ID)
	}
	r.delivered = append(r.delivered, j)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) wait(t *testing.T, n int) []sluice.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		got := append([]sluice.Job(nil), r.delivered...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries after 30s, want %d (%d calls)", len(got), n, r.calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCallbackDelivered(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), nil)
	rcv := newReceiver(t, e.cfg.CallbackSecret, 0)
	svc := e.start()
	ctx := context.Background()
	ok, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}, CallbackURL: rcv.srv.URL + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 1)
	if got[0].ID != ok.ID || got[0].State != sluice.StateCompleted || got[0].SHA256 == "" {
		t.Fatalf("delivered %+v", got[0])
	}
	time.Sleep(200 * time.Millisecond) // no second delivery follows
	if n := rcv.calls.Load(); n != 1 || rcv.badSig != 0 {
		t.Fatalf("%d calls, %d bad signatures; want exactly one good delivery", n, rcv.badSig)
	}
	as, err := svc.CallbackAttempts(ctx, ok.ID)
	if err != nil || len(as) != 1 || !as[0].Delivered || as[0].Status != http.StatusNoContent {
		t.Fatalf("attempts %+v %v", as, err)
	}
}

// TestCallbackRetriedAcrossRestart: the receiver fails three times; the
// service restarts after the second failure; the fourth attempt lands.
func TestCallbackRetriedAcrossRestart(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.CallbackBackoff = 150 * time.Millisecond })
	rcv := newReceiver(t, e.cfg.CallbackSecret, 3)
	svc := e.start()
	ctx := context.Background()
	job, err := svc.Submit(ctx, sluice.JobSpec{Tables: []string{"Genre"}, CallbackURL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for rcv.calls.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	e.stop()
	svc = e.start()
	got := rcv.wait(t, 1)
	if got[0].ID != job.ID {
		t.Fatalf("delivered job %s", got[0].ID)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rcv.calls.Load(); n != 4 {
		t.Errorf("%d calls, want 4 (3 failures then one success)", n)
	}
	as, err := svc.CallbackAttempts(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 4 || as[0].Status != 503 || as[2].Delivered || !as[3].Delivered {
		t.Fatalf("attempts %+v", as)
	}
	for i := 1; i < len(as); i++ {
		if as[i].At.Before(as[i-1].At) {
			t.Errorf("attempts out of order: %+v", as)
		}
	}
}

func TestCallbackGivesUp(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.CallbackAttempts = 3 })
	rcv := newReceiver(t, e.cfg.CallbackSecret, 1000)
	svc := e.start()
	job, err := svc.Submit(context.Background(), sluice.JobSpec{Tables: []string{"Genre"}, CallbackURL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for rcv.calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rcv.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	as, _ := svc.CallbackAttempts(context.Background(), job.ID)
	if len(as) != 3 {
		t.Fatalf("attempts %+v", as)
	}
}

func TestSSRFGuard(t *testing.T) {
	g, err := newURLGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://169.254.169.254/latest/meta-data/", false},
		{"http://10.0.0.1/hook", false},
		{"http://127.0.0.1:8080/", false},
		{"http://[::1]/", false},
		{"http://192.168.1.10/", false},
		{"http://172.16.0.1/", false},
		{"http://100.64.0.1/", false},
		{"http://0.0.0.0/", false},
		{"http://[fd00:ec2::254]/", false},
		{"http://[::ffff:10.0.0.1]/", false},
		{"http://localhost/", false},
		{"ftp://example.com/", false},
		{"http://user:pw@8.8.8.8/", false},
		{"http:///nohost", false},
		{"https://8.8.8.8/hook", true},
		{"http://[2001:4860:4860::8888]/", true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := g.checkURL(context.Background(), tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("checkURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
	// The allow-list admits exactly what it lists.
	g, _ = newURLGuard([]string{"127.0.0.1", "10.1.0.0/16"})
	for _, tc := range []struct {
		ip string
		ok bool
	}{{"127.0.0.1", true}, {"127.0.0.2", false}, {"10.1.2.3", true}, {"10.2.0.1", false}, {"169.254.169.254", false}} {
		if got := g.allowed(netip.MustParseAddr(tc.ip)); got != tc.ok {
			t.Errorf("allowed(%s) = %v, want %v", tc.ip, got, tc.ok)
		}
		// The connect-time hook agrees.
		if err := g.control("tcp4", tc.ip+":80", nil); (err == nil) != tc.ok {
			t.Errorf("control(%s) = %v, want ok=%v", tc.ip, err, tc.ok)
		}
	}
	if _, err := newURLGuard([]string{"not-an-ip"}); err == nil {
		t.Error("bad allow-list entry accepted")
	}
}

// TestSSRFRefusedAtSubmit: no job is created and nothing is sent.
func TestSSRFRefusedAtSubmit(t *testing.T) {
	e := newEnv(t, testsupport.Corpus(t, "chinook.sqlite"), func(c *Config) { c.CallbackAllow = nil })
	svc := e.start()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://127.0.0.1:9/x"} {
		_, err := svc.Submit(context.Background(), sluice.JobSpec{CallbackURL: u})
		if !errors.Is(err, sluice.ErrInvalid) {
			t.Errorf("submit with callback %s: %v, want ErrInvalid", u, err)
		}
	}
	jobs, _, _ := svc.List(context.Background(), sluice.JobQuery{})
	if len(jobs) != 0 {
		t.Fatalf("%d jobs created", len(jobs))
	}
}

// TestCallbackRefusedAtConnect: a URL allowed at submit whose address is
// refused when dialling (as after DNS rebinding) is never reached.
func TestCallbackRefusedAtConnect(t *testing.T) {
	rcv := newReceiver(t, "x", 0)
	g, _ := newURLGuard(nil)
	req, _ := http.NewRequest(http.MethodPost, rcv.srv.URL, nil)
	_, err := g.client(time.Second).Do(req)
	if err == nil || rcv.calls.Load() != 0 {
		t.Fatalf("dial to loopback: err %v, calls %d", err, rcv.calls.Load())
	}
}
