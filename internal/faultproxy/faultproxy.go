// Package faultproxy is an HTTP reverse proxy for tests that injects
// faults between a client and a real server: dropped connections (before
// the server sees the request, or after it answered), 500 responses and
// stalls, each on a configurable fraction of the requests a Faults.Match
// function selects. Decisions come from a seeded generator, drawn in the
// order requests arrive, so a run is repeatable up to the interleaving of
// concurrent requests; Stats counts what was done.
//
// The proxy forwards requests unchanged, Host header included, so AWS
// SigV4 signatures computed for the proxy's address stay valid at a
// server (like versitygw) that does not insist on its own host name.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Faults is one rule: which requests may fail and how often. Rates are
// probabilities in [0, 1] whose sum must not exceed 1; a matched request
// draws one number and gets at most one fault.
type Faults struct {
	// Match selects the requests the rule applies to; nil matches every
	// one. It runs under the proxy's lock, in arrival order.
	Match func(*http.Request) bool
	// DropRate: close the client connection without forwarding.
	DropRate float64
	// DropResponseRate: forward, let the server act, then close the
	// client connection without an answer (the "lost response" case).
	DropResponseRate float64
	// ErrorRate: read the body, answer 500 InternalError, do not forward.
	ErrorRate float64
	// StallRate: hold the request unanswered until the client gives up
	// or the proxy closes.
	StallRate float64
}

func (f Faults) validate() error {
	for _, r := range []float64{f.DropRate, f.DropResponseRate, f.ErrorRate, f.StallRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("faultproxy: rate %v outside [0, 1]", r)
		}
	}
	if s := f.DropRate + f.DropResponseRate + f.ErrorRate + f.StallRate; s > 1 {
		return fmt.Errorf("faultproxy: rates sum to %v, more than 1", s)
	}
	return nil
}

// IsUploadPart matches S3 UploadPart requests (PUT with partNumber and
// uploadId, not a server-side part copy).
func IsUploadPart(r *http.Request) bool {
	q := r.URL.Query()
	return r.Method == http.MethodPut && q.Has("partNumber") && q.Has("uploadId") &&
		r.Header.Get("X-Amz-Copy-Source") == ""
}

// IsCompleteMultipart matches S3 CompleteMultipartUpload requests.
func IsCompleteMultipart(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

// Stats counts what the proxy did.
type Stats struct {
	Requests        int64 // every request received
	Matched         int64 // requests Faults.Match selected
	Forwarded       int64 // requests passed to the server
	Dropped         int64 // connections closed before forwarding
	DroppedResponse int64 // connections closed after the server answered
	Errors          int64 // 500s returned by the proxy
	Stalled         int64 // requests held unanswered
}

// Faulted is the number of requests that got any fault.
func (s Stats) Faulted() int64 { return s.Dropped + s.DroppedResponse + s.Errors + s.Stalled }

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	tr     *http.Transport
	log    *slog.Logger

	mu     sync.Mutex
	rng    *rand.Rand
	faults []Faults

	ctx    context.Context // cancelled by Close, releases stalls
	cancel context.CancelFunc

	requests, matched, forwarded, dropped, droppedResp, errs, stalled atomic.Int64
}

// New starts a proxy on 127.0.0.1:0 in front of target ("http://host:port")
// with no faults; set them with SetFaults.
func New(target string, seed uint64, logger *slog.Logger) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want http(s)://host:port", target)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: u,
		ln:     ln,
		log:    logger,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ctx:    ctx,
		cancel: cancel,
		tr: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 5 * time.Minute,
			DisableCompression:    true,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			// SetURL points Host at the target; SigV4 signed the
			// client's Host, so keep it.
			pr.Out.Host = pr.In.Host
		},
		Transport:     p.tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Debug("faultproxy: upstream error", "method", r.Method, "url", r.URL.String(), "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("faultproxy: serve", "err", err)
		}
	}()
	return p, nil
}

// URL is the proxy's base URL, "http://127.0.0.1:port".
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetFaults replaces the fault configuration with rules; the first rule
// whose Match selects a request decides its fate. No rules, no faults.
func (p *Proxy) SetFaults(rules ...Faults) error {
	for _, f := range rules {
		if err := f.validate(); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.faults = rules
	p.mu.Unlock()
	return nil
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests:        p.requests.Load(),
		Matched:         p.matched.Load(),
		Forwarded:       p.forwarded.Load(),
		Dropped:         p.dropped.Load(),
		DroppedResponse: p.droppedResp.Load(),
		Errors:          p.errs.Load(),
		Stalled:         p.stalled.Load(),
	}
}

// Close stops the proxy, releasing stalled requests.
func (p *Proxy) Close() error {
	p.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		err = p.srv.Close()
	}
	p.tr.CloseIdleConnections()
	return err
}

type action int

const (
	pass action = iota
	drop
	dropResponse
	fail500
	stall
)

// decide draws the fault for one request.
func (p *Proxy) decide(r *http.Request) action {
	p.mu.Lock()
	defer p.mu.Unlock()
	var f Faults
	found := false
	for _, rule := range p.faults {
		if rule.Match == nil || rule.Match(r) {
			f, found = rule, true
			break
		}
	}
	if !found {
		return pass
	}
	p.matched.Add(1)
	x := p.rng.Float64()
	for _, c := range []struct {
		rate float64
		a    action
	}{{f.DropRate, drop}, {f.DropResponseRate, dropResponse}, {f.ErrorRate, fail500}, {f.StallRate, stall}} {
		if x < c.rate {
			return c.a
		}
		x -= c.rate
	}
	return pass
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	a := p.decide(r)
	switch a {
	case drop:
		p.dropped.Add(1)
		p.log.Debug("faultproxy: drop", "method", r.Method, "url", r.URL.String())
		hangUp(w)
	case fail500:
		p.errs.Add(1)
		p.log.Debug("faultproxy: 500", "method", r.Method, "url", r.URL.String())
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<Error><Code>InternalError</Code><Message>faultproxy: injected failure</Message></Error>`)
	case stall:
		p.stalled.Add(1)
		p.log.Debug("faultproxy: stall", "method", r.Method, "url", r.URL.String())
		<-r.Context().Done() // the client hung up, or Close
	case dropResponse:
		p.forwarded.Add(1)
		p.droppedResp.Add(1)
		p.log.Debug("faultproxy: drop response", "method", r.Method, "url", r.URL.String())
		rec := &discardWriter{h: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		hangUp(w)
	default:
		p.forwarded.Add(1)
		p.rp.ServeHTTP(w, r)
	}
}

// hangUp closes the client connection without writing a response.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, like a crashed peer
	}
	_ = conn.Close()
}

// discardWriter swallows the server's answer for dropResponse.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
