// Command loadgen sends point reads (and optionally writes) to a local
// `sluice serve` through POST /query at a fixed rate and reports their
// latency percentiles. It only talks to loopback addresses, and it stops
// by itself after -duration or -max-requests, or on SIGINT/SIGTERM (the
// benchmark scripts stop it that way when a dump ends), printing its
// figures either way.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080 -duration 20s \
//	    -sql 'SELECT * FROM events WHERE id = ?' -max-id 6000000
//
// The last line of its output is machine-readable:
//
//	result reads=N read_errors=N p50_ms=F p90_ms=F p99_ms=F max_ms=F writes=N write_errors=N write_p99_ms=F seconds=F
//
// It is a benchmark tool, not part of the product or of `go test`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"
)

type options struct {
	base        string
	token       string
	sql         string
	maxID       int64
	rate        float64
	workers     int
	duration    time.Duration
	maxRequests int
	writeSQL    string
	writeEvery  time.Duration
	timeout     time.Duration
	consoles    int
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "http://127.0.0.1:8080", "sluice server base URL (loopback only)")
	flag.StringVar(&o.token, "token", "", "bearer token, if the server has tokens")
	flag.StringVar(&o.sql, "sql", "SELECT * FROM events WHERE id = ?", "point read; its one parameter is a random id in [1, -max-id]")
	flag.Int64Var(&o.maxID, "max-id", 1_000_000, "largest id to read")
	flag.Float64Var(&o.rate, "rate", 200, "reads per second (fixed rate, spread over -workers)")
	flag.IntVar(&o.workers, "workers", 8, "concurrent requests at most")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "stop after this long (at most 30m)")
	flag.IntVar(&o.maxRequests, "max-requests", 1_000_000, "stop after this many reads (at most 10,000,000)")
	flag.StringVar(&o.writeSQL, "write-sql", "", "a write to issue every -write-every; its one parameter is a sequence number")
	flag.DurationVar(&o.writeEvery, "write-every", 100*time.Millisecond, "interval between writes")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.IntVar(&o.consoles, "consoles", 0, "also play this many open web consoles (their polling; see consoles.go)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := checkLoopback(o.base); err != nil {
		return err
	}
	switch {
	case o.duration <= 0 || o.duration > 30*time.Minute:
		return errors.New("-duration must be within (0, 30m]")
	case o.maxRequests < 1 || o.maxRequests > 10_000_000:
		return errors.New("-max-requests must be within [1, 10000000]")
	case o.rate <= 0 || o.rate > 100_000:
		return errors.New("-rate must be within (0, 100000]")
	case o.workers < 1 || o.workers > 256:
		return errors.New("-workers must be within [1, 256]")
	case o.maxID < 1:
		return errors.New("-max-id must be positive")
	case o.consoles < 0 || o.consoles > 200:
		return errors.New("-consoles must be within [0, 200]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	client := &http.Client{
		Timeout:   o.timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: o.workers + 1, DisableCompression: true},
	}
	start := time.Now()

	var wg sync.WaitGroup
	var writes, consoles stats
	if o.consoles > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runConsoles(ctx, client, o, o.consoles, &consoles)
		}()
	}
	if o.writeSQL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.writeEvery)
			defer t.Stop()
			for seq := int64(1); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				d, err := query(ctx, client, o, o.writeSQL, seq)
				if ctx.Err() != nil {
					return
				}
				writes.add(d, err)
			}
		}()
	}

	// A fixed schedule of reads: a ticket every 1/rate seconds, taken by
	// the first idle worker. A ticket that waits for a worker shows up as
	// a slower rate, reported below, rather than being silently skipped.
	tickets := make(chan struct{})
	go func() {
		defer close(tickets)
		interval := time.Duration(float64(time.Second) / o.rate)
		next := time.Now()
		for i := 0; i < o.maxRequests; i++ {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			select {
			case <-ctx.Done():
				return
			case tickets <- struct{}{}:
			}
			next = next.Add(interval)
		}
	}()
	var reads stats
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 42))
			for range tickets {
				d, err := query(ctx, client, o, o.sql, 1+r.Int64N(o.maxID))
				if ctx.Err() != nil && err != nil {
					return // cut by the stop, not a failure
				}
				reads.add(d, err)
			}
		}(uint64(w) + 1)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()

	rp := reads.percentiles()
	wp := writes.percentiles()
	fmt.Printf("reads: %d ok, %d failed in %.1f s (%.0f/s); latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		len(reads.ok), reads.errs, secs, float64(len(reads.ok))/secs, rp[0], rp[1], rp[2], rp[3])
	if o.writeSQL != "" {
		fmt.Printf("writes: %d ok, %d failed; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", len(writes.ok), writes.errs, wp[0], wp[2], wp[3])
	}
	if o.consoles > 0 {
		cp := consoles.percentiles()
		fmt.Printf("consoles: %d, %d requests ok, %d failed; latency p50 %.2f ms, p99 %.2f ms\n", o.consoles, len(consoles.ok), consoles.errs, cp[0], cp[2])
	}
	for _, e := range append(append(reads.firstErrs, writes.firstErrs...), consoles.firstErrs...) {
		fmt.Println("error:", e)
	}
	fmt.Printf("result reads=%d read_errors=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f writes=%d write_errors=%d write_p99_ms=%.3f seconds=%.1f console_requests=%d console_errors=%d\n",
		len(reads.ok), reads.errs, rp[0], rp[1], rp[2], rp[3], len(writes.ok), writes.errs, wp[2], secs, len(consoles.ok), consoles.errs)
	return nil
}

// checkLoopback refuses any target but a loopback address.
func checkLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: want http://127.0.0.1:PORT", base)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: only loopback addresses are allowed", base)
	}
	return nil
}

// query runs one /query request and returns its latency; a non-200
// answer is an error carrying the body.
func query(ctx context.Context, c *http.Client, o options, sql string, param int64) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"sql": sql, "params": []any{param}})
	req, err := http.NewRequestWithContext(ctx, "POST", o.base+"/query", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return d, nil
}

// stats collects latencies of successful requests and counts failures.
type stats struct {
	mu        sync.Mutex
	ok        []time.Duration
	errs      int
	firstErrs []string
}

func (s *stats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		if len(s.firstErrs) < 5 {
			s.firstErrs = append(s.firstErrs, err.Error())
		}
		return
	}
	s.ok = append(s.ok, d)
}

// percentiles returns p50, p90, p99 and max in milliseconds (nearest
// rank).
func (s *stats) percentiles() [4]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [4]float64
	if len(s.ok) == 0 {
		return out
	}
	v := append([]time.Duration(nil), s.ok...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	for i, p := range []float64{0.50, 0.90, 0.99} {
		k := int(p*float64(len(v))+0.999999) - 1
		out[i] = ms(v[max(0, min(k, len(v)-1))])
	}
	out[3] = ms(v[len(v)-1])
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
