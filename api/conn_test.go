package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// fastLimits shrinks the connection limits so that tests see them act
// within a second or two.
func fastLimits(maxConns int) envOption {
	return func(c *Config, _ *Deps) {
		c.MaxConnections = maxConns
		c.StallTimeout = time.Second
		c.MinBodyRate = 1024
		c.MinResponseRate = 64 << 10
		c.ReadHeaderTimeout = 2 * time.Second
	}
}

// dialRaw opens a TCP connection to the server, with a receive buffer of
// rcvbuf bytes when rcvbuf > 0 (a client that reads little holds little).
func dialRaw(t *testing.T, e *testEnv, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d, reading
// (and discarding) whatever it sends meanwhile.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// slowPost starts a POST of a declared 1000-byte body and sends one byte
// of it every interval until stop is closed or the server hangs up.
func slowPost(t *testing.T, e *testEnv, token string, interval time.Duration, stop <-chan struct{}) net.Conn {
	t.Helper()
	c := dialRaw(t, e, 0)
	fmt.Fprintf(c, "POST /query HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
		strings.TrimPrefix(e.url, "http://"), token)
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	return c
}

// TestSlowBodyCutOff: a body sent far below the minimum rate (a byte at
// a time, slowloris) is cut off after the stall timeout, with 408.
func TestSlowBodyCutOff(t *testing.T) {
	e := newEnv(t, fastLimits(64))
	stop := make(chan struct{})
	defer close(stop)
	c := slowPost(t, e, adminToken, 300*time.Millisecond, stop)
	start := time.Now()
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a slow body within 5s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("slow body: status %d, want 408", resp.StatusCode)
	}
	if !closedWithin(c, 3*time.Second) {
		t.Error("connection still open after the slow body was refused")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("cut off after %s, want about the 1s stall timeout", took)
	}
}

// TestRefusedBodyNotDrained: 401 and 403 are answered at once, with
// Connection: close, without waiting for a body that never comes.
func TestRefusedBodyNotDrained(t *testing.T) {
	e := newEnv(t, fastLimits(64))
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"401 no token", "/query", "", http.StatusUnauthorized},
		{"401 bad token", "/query", "wrong", http.StatusUnauthorized},
		{"403 client on an admin route", "/import/dump", clientToken, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e, 0)
			auth := ""
			if tc.token != "" {
				auth = "Authorization: Bearer " + tc.token + "\r\n"
			}
			// A large declared body, none of it sent.
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", tc.path, auth)
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer within 500ms without the body: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || !resp.Close {
				t.Fatalf("status %d close=%v, want %d with Connection: close", resp.StatusCode, resp.Close, tc.want)
			}
			if !closedWithin(c, 500*time.Millisecond) {
				t.Fatal("connection still open after the refusal")
			}
		})
	}
}

// TestConnectionCap: connections beyond MaxConnections wait until one
// closes.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, fastLimits(3))
	var held []net.Conn
	for i := 0; i < 3; i++ {
		held = append(held, dialRaw(t, e, 0))
	}
	time.Sleep(100 * time.Millisecond) // let the server accept them
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(e.url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a fourth connection was served while three were open (cap 3)")
	}
	held[0].Close()
	client.Timeout = 2 * time.Second
	resp, err := client.Get(e.url + "/healthz")
	if err != nil {
		t.Fatalf("healthz after a slot freed: %v", err)
	}
	resp.Body.Close()
}

// TestHealthzUnderSlowClients: with a bounded number of slowloris
// clients (slow bodies, unauthenticated slow bodies and slow headers),
// /healthz keeps answering, and every slow connection is cut off.
func TestHealthzUnderSlowClients(t *testing.T) {
	e := newEnv(t, fastLimits(128))
	stop := make(chan struct{})
	defer close(stop)
	var conns []net.Conn
	for i := 0; i < 30; i++ {
		conns = append(conns, slowPost(t, e, adminToken, 400*time.Millisecond, stop))
		conns = append(conns, slowPost(t, e, "", 400*time.Millisecond, stop))
		c := dialRaw(t, e, 0)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // headers never end
		conns = append(conns, c)
	}
	client := &http.Client{Timeout: time.Second}
	for i := 0; i < 5; i++ {
		resp, err := client.Get(e.url + "/healthz")
		if err != nil {
			t.Fatalf("healthz under slow clients: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			if !closedWithin(c, 5*time.Second) {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d slow connections still open after 5s", open, len(conns))
	}
}

// TestSlowReaderCutOff: a client that stops reading a streamed response
// is cut off after the stall timeout, and the export's read snapshot is
// released, so the WAL can be checkpointed and truncated again.
func TestSlowReaderCutOff(t *testing.T) {
	// A stall timeout long enough for the test to see the snapshot
	// pinned first, even under the race detector.
	e := newEnv(t, fastLimits(64), func(c *Config, _ *Deps) { c.StallTimeout = 3 * time.Second })
	path := e.srv.dbs["main"].path
	// More than the socket buffers hold, so that a client that stops
	// reading blocks the server's writes.
	err := sqlitex.ExecuteScript(openTestDB(t, path), `CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 6000) INSERT INTO big SELECT i, zeroblob(2000) FROM n;
		CREATE TABLE w(x);`, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.jobs.Submit(context.Background(), sluice.JobSpec{Database: "main"})
	e.jobs.complete("job001", make([]byte, 16<<20), true)

	for _, tc := range []struct {
		name, path string
		snapshot   bool // the route reads the database
	}{
		{"csv export", "/export/csv/big", true},
		{"json export", "/export/json/big", true},
		{"legacy dump", "/export/dump", true},
		{"download", "/export/dump/download/job001", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e, 4096)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tc.path, adminToken)
			br := bufio.NewReaderSize(c, 4096)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
				t.Fatal(err)
			}
			// The client now stops reading.
			if tc.snapshot {
				conn := openTestDB(t, path)
				growWAL(t, conn)
				if busy, _ := checkpoint(t, conn); busy == 0 {
					t.Fatal("checkpoint(TRUNCATE) succeeded while the export held its snapshot: the test proves nothing")
				}
				deadline := time.Now().Add(15 * time.Second)
				for {
					busy, _ := checkpoint(t, conn)
					if busy == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the stalled reader still pins the WAL after 15s (stall timeout 3s)")
					}
					time.Sleep(100 * time.Millisecond)
				}
				if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
					t.Fatalf("WAL after the cut-off: %v, %v; want truncated", fi.Size(), err)
				}
			} else {
				time.Sleep(4500 * time.Millisecond) // past the stall timeout
			}
			if !closedWithin(c, 15*time.Second) {
				t.Fatal("the server kept a client that stopped reading for 15s (stall timeout 3s)")
			}
		})
	}
}

func openTestDB(t *testing.T, path string) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenWAL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetBusyTimeout(0) // a checkpoint must report busy, not wait
	return conn
}

// growWAL commits a write, so that a checkpoint has frames to copy.
func growWAL(t *testing.T, conn *sqlite.Conn) {
	t.Helper()
	err := sqlitex.ExecuteTransient(conn, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20) INSERT INTO w SELECT randomblob(8192) FROM n", nil)
	if err != nil {
		t.Fatal(err)
	}
}

// checkpoint runs wal_checkpoint(TRUNCATE) and returns its busy flag and
// the WAL's frame count.
func checkpoint(t *testing.T, conn *sqlite.Conn) (busy, frames int) {
	t.Helper()
	err := sqlitex.ExecuteTransient(conn, "PRAGMA wal_checkpoint(TRUNCATE)", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error {
			busy, frames = s.ColumnInt(0), s.ColumnInt(1)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return busy, frames
}

// TestRateBudget checks the token bucket on a fake clock: each case
// makes transfers of n bytes that block for d, and wants the deadline
// set before the last one.
func TestRateBudget(t *testing.T) {
	const stall = 10 * time.Second
	type op struct {
		n int
		d time.Duration
	}
	tests := []struct {
		name string
		ops  []op
		want time.Duration // last deadline, from the start of the last op
	}{
		{"fresh", []op{{0, 0}}, stall},
		{"slowloris drains the credit", []op{{1, 3 * time.Second}, {1, 3 * time.Second}, {1, 3 * time.Second}, {0, 0}}, stall - 9*time.Second + 3*time.Millisecond},
		{"a fast burst earns at most the stall", []op{{1 << 30, time.Millisecond}, {0, 0}}, stall},
		{"at the minimum rate the credit holds", []op{{1000, time.Second}, {1000, time.Second}, {0, 0}}, stall},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			var deadline time.Time
			b := newRateBudget(1000, stall, func(d time.Time) error { deadline = d; return nil })
			b.now = func() time.Time { return now }
			for _, o := range tc.ops {
				b.do(func() (int, error) { now = now.Add(o.d); return o.n, nil })
			}
			last := tc.ops[len(tc.ops)-1]
			if got := deadline.Sub(now.Add(-last.d)); got != tc.want {
				t.Fatalf("deadline %s after the last op's start, want %s", got, tc.want)
			}
		})
	}
}
