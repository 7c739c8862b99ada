package api

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// A connection is a scarce resource that an unauthenticated client can
// hold. The rules here bound how long it may: a request body and a
// response must each move at a minimum rate (a token bucket of
// StallTimeout, refilled by every byte that moves), a refused request's
// body is never read, and the listener caps the connections open at once.

// rateBudget enforces a minimum transfer rate on one direction of a
// connection through its deadline. The client earns 1/minRate seconds
// per byte that moves, up to stall seconds of credit; time spent blocked
// in a read or write spends it. A deadline of now + credit before each
// operation cuts off a transfer that keeps below minRate for longer than
// stall, or stops altogether for stall, while a burst of fast transfer
// earns no more than stall of slack. Time between operations (the server
// working) is not charged.
type rateBudget struct {
	minRate float64 // bytes per second
	stall   time.Duration
	credit  time.Duration
	set     func(time.Time) error // the connection's read or write deadline
	now     func() time.Time
}

func newRateBudget(minRate int64, stall time.Duration, set func(time.Time) error) *rateBudget {
	return &rateBudget{minRate: float64(minRate), stall: stall, credit: stall, set: set, now: time.Now}
}

// arm sets the deadline for a transfer the server makes on its own (the
// response's final flush after the handler returns).
func (b *rateBudget) arm() { _ = b.set(b.now().Add(b.credit)) }

// do runs one transfer of up to len(p) bytes under the budget's deadline
// and charges it.
func (b *rateBudget) do(op func() (int, error)) (int, error) {
	start := b.now()
	// A writer that does not support deadlines (an embedding handler's
	// test recorder, say) transfers without them.
	_ = b.set(start.Add(b.credit))
	n, err := op()
	earned := time.Duration(float64(n) / b.minRate * float64(time.Second))
	b.credit = min(b.stall, b.credit-b.now().Sub(start)+earned)
	return n, err
}

// limitTransfer puts a request's body and its response under the
// minimum rates: it returns the response writer the handlers use and
// the request with its body wrapped.
func (s *Server) limitTransfer(w http.ResponseWriter, r *http.Request) (*statusWriter, *http.Request) {
	rc := http.NewResponseController(w)
	sw := &statusWriter{ResponseWriter: w, out: newRateBudget(s.cfg.MinResponseRate, s.cfg.StallTimeout, rc.SetWriteDeadline)}
	sw.out.arm() // a keep-alive connection keeps the last request's deadline
	if r.Body == nil || r.Body == http.NoBody {
		return sw, r
	}
	r2 := *r
	r2.Body = &slowBody{ReadCloser: r.Body, budget: newRateBudget(s.cfg.MinBodyRate, s.cfg.StallTimeout, rc.SetReadDeadline)}
	// Until the handler reads, the whole budget counts down: a body
	// nobody reads is drained after the response, and that drain must
	// end too.
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.StallTimeout))
	return sw, &r2
}

// slowBody reads a request body under a rateBudget. When the budget
// runs out the read fails with a 408, and the connection is closed after
// the response (its read timed out).
type slowBody struct {
	io.ReadCloser
	budget *rateBudget
}

func (b *slowBody) Read(p []byte) (int, error) {
	n, err := b.budget.do(func() (int, error) { return b.ReadCloser.Read(p) })
	switch {
	case errors.Is(err, io.EOF):
		// The server now watches the idle connection for the client
		// going away; that read must not inherit the body's deadline.
		_ = b.budget.set(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, apiErr(http.StatusRequestTimeout, "body_too_slow",
			"the request body arrived slower than the server's minimum rate")
	}
	return n, err
}

// refuseBody answers a request whose body the server will not read (401,
// 403): the connection closes after the response, and the unread body
// is not drained first, so a client cannot hold the connection by
// sending it slowly.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// limitListener accepts at most n connections at once; Accept waits for
// one to close, leaving further clients in the kernel's backlog.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
