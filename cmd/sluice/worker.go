package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/nice"
	"github.com/sluice-dev/sluice/jobs"
)

// The export worker. With limits.exportProcess (the default), `sluice
// serve` runs its export jobs' ticks and verifications in a child process,
// `sluice export-worker`, and keeps the HTTP API, callbacks, schedules and
// housekeeping. Both coordinate through the state database, as any two
// sluice processes on one data directory do (package jobs); the pipes
// between them only hasten that (jobs.Event) and carry the worker's
// metrics to the server's /metrics.
//
// The server starts the worker from a thread at limits.exportNice, so the
// worker and every thread it ever makes run at that priority: queries take
// a core from an export at once, without the dump engine locking each of
// its goroutines to a niced thread of its own, and the exports share no
// SQLite locks, heap or collector with the queries.
//
// The server writes one workerHello line to the worker's fd 3, then
// workerMsg lines; the worker writes workerMsg lines to its fd 4. When fd
// 3 ends (the server shuts down or dies), the worker checkpoints its jobs
// and exits. On Linux the kernel also kills it when the server dies.

const workerSynopsis = `

Runs a server's export jobs; sluice serve starts it (limits.exportProcess)
and it is not meant to be run by hand.`

// workerHello is the worker's configuration: the server's, resolved.
type workerHello struct {
	Config    Config     `json:"config"`
	PublicURL string     `json:"publicURL"`
	LogLevel  slog.Level `json:"logLevel"`
}

// workerMsg is one line between server and worker.
type workerMsg struct {
	Event  *jobs.Event   `json:"event,omitempty"`
	Metric *workerMetric `json:"metric,omitempty"`
}

// workerMetric is one jobs.Metrics call made in the worker.
type workerMetric struct {
	Name string `json:"name"`
	N    int64  `json:"n,omitempty"`
}

// The names of the forwarded jobs.Metrics calls.
const (
	metricTick    = "tick"
	metricRows    = "rows"
	metricBytes   = "bytes"
	metricPart    = "part"
	metricRetry   = "retry"
	metricRestart = "restart"
)

// metricsForwarder is the worker's jobs.Metrics: it sends each call to
// the server.
type metricsForwarder struct{ send func(workerMsg) }

func (f metricsForwarder) metric(name string, n int64) {
	f.send(workerMsg{Metric: &workerMetric{Name: name, N: n}})
}

func (f metricsForwarder) ObserveTick(d time.Duration) { f.metric(metricTick, int64(d)) }
func (f metricsForwarder) AddRowsExported(n int64)     { f.metric(metricRows, n) }
func (f metricsForwarder) AddBytesExported(n int64)    { f.metric(metricBytes, n) }
func (f metricsForwarder) AddPartUploaded()            { f.metric(metricPart, 0) }
func (f metricsForwarder) AddUploadRetry()             { f.metric(metricRetry, 0) }
func (f metricsForwarder) AddUploadRestart()           { f.metric(metricRestart, 0) }

// apply makes, on the server, the call metricsForwarder sent.
func (m workerMetric) apply(to jobs.Metrics) {
	switch m.Name {
	case metricTick:
		to.ObserveTick(time.Duration(m.N))
	case metricRows:
		to.AddRowsExported(m.N)
	case metricBytes:
		to.AddBytesExported(m.N)
	case metricPart:
		to.AddPartUploaded()
	case metricRetry:
		to.AddUploadRetry()
	case metricRestart:
		to.AddUploadRestart()
	}
}

// readMsgs decodes workerMsg lines from r until it ends, passing each to
// handle. A line that does not decode is logged and skipped.
func readMsgs(r io.Reader, log *slog.Logger, handle func(workerMsg)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			log.Warn("export worker: bad message", "err", err)
			continue
		}
		handle(m)
	}
}

// msgWriter writes workerMsg lines from one goroutine, buffered and
// flushed whenever no other message is waiting, so a burst costs few
// system calls. send blocks only while its queue is full.
type msgWriter struct {
	queue chan workerMsg
	done  chan struct{}
}

func newMsgWriter(w io.Writer, log *slog.Logger) *msgWriter {
	m := &msgWriter{queue: make(chan workerMsg, 1024), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		failed := false
		for msg := range m.queue {
			if failed {
				continue // the reader is gone; drain so senders never block
			}
			err := enc.Encode(msg)
			if err == nil && len(m.queue) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				log.Debug("export worker: pipe closed", "err", err)
				failed = true
			}
		}
	}()
	return m
}

func (m *msgWriter) send(msg workerMsg) { m.queue <- msg }

// close writes what is queued and stops; send must not be called after.
func (m *msgWriter) close() {
	close(m.queue)
	<-m.done
}

// exportWorker is the server's side: it starts the worker process,
// restarts it if it dies, and relays messages both ways.
type exportWorker struct {
	hello   workerHello
	nice    int
	stderr  io.Writer
	log     *slog.Logger
	metrics jobs.Metrics
	recv    func(jobs.Event)

	events chan jobs.Event // to the worker; Notify drops events when full
	stop   chan struct{}   // closed by Close
	done   chan struct{}   // closed when supervise returns

	mu   sync.Mutex
	proc *os.Process // the running worker, nil between runs
}

func newExportWorker(hello workerHello, nice int, stderr io.Writer, metrics jobs.Metrics, log *slog.Logger) *exportWorker {
	return &exportWorker{hello: hello, nice: nice, stderr: stderr, metrics: metrics,
		log: log.With("component", "export-worker"), events: make(chan jobs.Event, 256),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Notify queues an event for the worker (jobs.Config.Notify). It never
// blocks: events only hasten what the state database holds.
func (w *exportWorker) Notify(e jobs.Event) {
	select {
	case w.events <- e:
	default:
	}
}

// start starts the worker process, passing the events it sends to recv,
// and keeps it running until Close.
func (w *exportWorker) start(recv func(jobs.Event)) error {
	w.recv = recv
	started := make(chan error, 1)
	go w.supervise(started)
	return <-started
}

// supervise runs the worker, again after each unexpected exit (with a
// growing pause), until Close. It locks itself to one thread, niced: each
// worker process forks from that thread and inherits its priority, and
// the kernel's parent-death signal, tied to the forking thread, then
// fires only when the whole server dies.
func (w *exportWorker) supervise(started chan<- error) {
	defer close(w.done)
	runtime.LockOSThread()
	nice.LockThread(w.nice)
	pause := time.Second
	for first := true; ; first = false {
		cmd, to, from, err := w.spawn()
		if first {
			started <- err
		}
		if err != nil {
			if first {
				return
			}
			w.log.Error("export worker: start", "err", err)
		} else {
			t0 := time.Now()
			// The relay runs at the server's priority, not on this
			// niced thread.
			relayed := make(chan error, 1)
			go func() { relayed <- w.relay(cmd, to, from) }()
			err = <-relayed
			select {
			case <-w.stop:
				return
			default:
			}
			w.log.Error("export worker exited; restarting it", "err", err, "pause", pause)
			if time.Since(t0) > time.Minute {
				pause = time.Second
			}
		}
		select {
		case <-w.stop:
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// spawn starts one worker process and sends it the hello.
func (w *exportWorker) spawn() (*exec.Cmd, *os.File, *os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export worker: %w", err)
	}
	hello, err := json.Marshal(w.hello)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export worker: %w", err)
	}
	toR, toW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export worker: %w", err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		toR.Close()
		toW.Close()
		return nil, nil, nil, fmt.Errorf("export worker: %w", err)
	}
	cmd := exec.Command(exe, "export-worker")
	cmd.ExtraFiles = []*os.File{toR, fromW} // fds 3 and 4
	cmd.Stderr = w.stderr
	cmd.Env = workerEnv(os.Environ())
	cmd.SysProcAttr = workerProcAttr()
	err = cmd.Start()
	toR.Close()
	fromW.Close()
	if err != nil {
		toW.Close()
		fromR.Close()
		return nil, nil, nil, fmt.Errorf("export worker: start %s: %w", exe, err)
	}
	w.mu.Lock()
	w.proc = cmd.Process
	w.mu.Unlock()
	// The worker reads the hello first thing (a dead one fails the write).
	if _, err := toW.Write(append(hello, '\n')); err != nil {
		w.log.Warn("export worker: hello", "err", err)
	}
	return cmd, toW, fromR, nil
}

// workerEnvMark is set to 1 in the worker's environment: fds 3 and 4 are
// the server's pipes.
const workerEnvMark = "SLUICE_EXPORT_WORKER"

// workerGODEBUG turns off Go's asynchronous preemption in the worker,
// unless the operator's GODEBUG sets it. Go preempts a goroutine that
// has run for 10 ms, and stops every goroutine for each collection, with
// a signal to its thread; in a virtual machine a signal costs trips to
// the hypervisor, and the worker's exports are all CPU-bound goroutines
// that run for long stretches: signals took about 4% of a job's CPU
// (docs/benchmarks.md, session 8). The worker serves no request that
// waits on a preemption, and its loops call functions, where goroutines
// still yield. The server keeps asynchronous preemption: its queries do
// wait.
const workerGODEBUG = "asyncpreemptoff=1"

// workerEnv is the server's environment for the worker, marked, with a
// CPU profile (SLUICE_CPUPROFILE) written to a file of the worker's own,
// and workerGODEBUG added to GODEBUG.
func workerEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	out = append(out, workerEnvMark+"=1")
	debug := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SLUICE_CPUPROFILE="); ok && v != "" {
			kv += ".worker"
		}
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			kv, debug = "GODEBUG="+withWorkerGODEBUG(v), true
		}
		if strings.HasPrefix(kv, workerEnvMark+"=") {
			continue
		}
		out = append(out, kv)
	}
	if !debug {
		out = append(out, "GODEBUG="+workerGODEBUG)
	}
	return out
}

// withWorkerGODEBUG adds workerGODEBUG to the GODEBUG value v unless v
// already sets that setting.
func withWorkerGODEBUG(v string) string {
	name, _, _ := strings.Cut(workerGODEBUG, "=")
	for _, kv := range strings.Split(v, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(kv), "="); k == name {
			return v
		}
	}
	if v == "" {
		return workerGODEBUG
	}
	return v + "," + workerGODEBUG
}

// relay passes events to the worker and its messages to the server until
// the worker exits or Close ends it; it returns the exit's error.
func (w *exportWorker) relay(cmd *exec.Cmd, to, from *os.File) error {
	read := make(chan struct{})
	go func() {
		defer close(read)
		readMsgs(from, w.log, func(m workerMsg) {
			if m.Event != nil && w.recv != nil {
				w.recv(*m.Event)
			}
			if m.Metric != nil {
				m.Metric.apply(w.metrics)
			}
		})
	}()
	exited := make(chan error, 1)
	go func() {
		<-read // the worker's end closes when it exits
		exited <- cmd.Wait()
	}()
	defer func() {
		w.mu.Lock()
		w.proc = nil
		w.mu.Unlock()
		from.Close()
	}()
	out := newMsgWriter(to, w.log)
	// Ending fd 3 asks the worker to checkpoint and exit.
	end := sync.OnceFunc(func() {
		out.close()
		to.Close()
	})
	defer end()
	for {
		select {
		case e := <-w.events:
			out.send(workerMsg{Event: &e})
		case err := <-exited:
			return err
		case <-w.stop:
			end()
			return <-exited
		}
	}
}

// Close asks the worker to checkpoint its jobs and exit, and waits for
// it; when ctx ends first, it kills the worker (its jobs resume from
// their last checkpoints).
func (w *exportWorker) Close(ctx context.Context) error {
	close(w.stop)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	if w.proc != nil {
		w.proc.Kill()
	}
	w.mu.Unlock()
	<-w.done
	return fmt.Errorf("export worker: killed after %w", ctx.Err())
}

// workerGCPercent is the worker's GOGC. Its part buffers live outside the
// Go heap, so the heap holds pages, marks and output buffers that are
// mostly pointer-free and cheap to collect; at 25 the collector keeps it
// at 1.25× its live size instead of 2×. On one S3 job that is about 15
// MB less peak memory than the default, in no more CPU
// (docs/benchmarks.md, sessions 5 and 6).
const workerGCPercent = 25

// setWorkerGC applies workerGCPercent unless the operator set GOGC.
func setWorkerGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(workerGCPercent)
	}
}

// runExportWorker is `sluice export-worker`, the worker's side.
func runExportWorker(ctx context.Context, e *env, args []string) error {
	fl := newFlagSet(e, "export-worker", workerSynopsis)
	if err := parseFlags(e, fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("unexpected argument %q", fl.Arg(0))
	}
	// Without the server's mark, fds 3 and 4 are not its pipes (the Go
	// runtime itself may have opened them).
	if e.getenv(workerEnvMark) != "1" {
		return errors.New("export-worker: it is run by sluice serve, not by hand")
	}
	in, out := os.NewFile(3, "from-server"), os.NewFile(4, "to-server")
	defer in.Close()
	defer out.Close()
	lines := bufio.NewReader(in)
	first, err := lines.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("export-worker: read the server's hello (it is run by sluice serve): %w", err)
	}
	var hello workerHello
	if err := json.Unmarshal(first, &hello); err != nil {
		return fmt.Errorf("export-worker: bad hello: %w", err)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: hello.LogLevel})).With("process", "export-worker")
	setWorkerGC(e.getenv)
	msgs := newMsgWriter(out, log)
	defer msgs.close()

	// The server ends fd 3 to stop the worker; a signal (when the worker
	// is run where there are no process groups) stops it the same way.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	svcReady := make(chan *jobs.Service, 1)
	go func() {
		defer stop()
		svc := <-svcReady
		if svc == nil {
			return
		}
		readMsgs(lines, log, func(m workerMsg) {
			if m.Event != nil {
				svc.Receive(*m.Event)
			}
		})
	}()
	err = serveExports(ctx, hello, log, metricsForwarder{send: msgs.send}, func(svc *jobs.Service) { svcReady <- svc },
		func(ev jobs.Event) { msgs.send(workerMsg{Event: &ev}) })
	close(svcReady)
	return err
}
