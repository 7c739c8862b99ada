// Package jobs runs sluice's durable export jobs. One scheduler (the
// durable "alarm") drives all deferred work from the state database's
// task table: job ticks, callback deliveries, scheduled exports and
// housekeeping. Workers claim due tasks with a lease in one transaction,
// so a task never runs twice at once, even with two sluice processes on
// one data dir.
//
// A job advances in ticks of at most Config.TickBudget. Each tick
// resumes from the job's last checkpoint (dump cursor, multipart upload
// state, leftover bytes) and checkpoints again, atomically, about once a
// second while parts upload in the background (pipeline.go), and when it
// yields; then the job's tick task goes to the back of the queue, so
// jobs share the workers round robin.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/verify"
)

// Source is an opened, read-only snapshot of a database being dumped.
// *dump.Source satisfies it (see package dump's contract).
type Source interface {
	Plan() dump.Plan
	Dump(ctx context.Context, w io.Writer, from dump.Cursor, checkpoint func(*dump.Boundary) error) (dump.Cursor, error)
	Close() error
}

// OpenFunc opens a database for dumping; cmd/sluice passes an adapter
// around dump.Open.
type OpenFunc func(ctx context.Context, path string, opts dump.Options, logger *slog.Logger) (Source, error)

// Config configures the job service. New fills zero fields with the
// defaults documented on each field.
type Config struct {
	// DataDir holds strict-consistency snapshot copies (snapshots/) and
	// the process liveness locks (owners/). Required.
	DataDir string
	// Databases maps database names to file paths. Required.
	Databases map[string]string
	// DefaultDatabase is the name used when a spec names none.
	DefaultDatabase string
	// Open opens a database for dumping; nil means DumpOpen (dump.Open).
	Open OpenFunc
	// KeyPrefix is prepended to default object keys. When set,
	// housekeeping also aborts stale incomplete uploads under it that no
	// live job owns; when empty, only uploads of keys that sluice's own
	// jobs used are touched.
	KeyPrefix string

	TickBudget  time.Duration // longest a tick runs before it yields; default 20s
	MaxRunning  int           // jobs running at once, across processes; default 4
	MaxQueued   int           // jobs queued or running at once; Submit refuses more (sluice.ErrBusy); default 100
	Workers     int           // tasks run at once in this process; default 4
	Lease       time.Duration // task lease, renewed while a task runs; default 30s
	Poll        time.Duration // idle poll of the task table; default 1s
	ChunkSize   int           // default rows per page when a spec gives none; default dump.DefaultChunkSize
	MaxAttempts int           // consecutive failed ticks before a job fails; default 5

	// UploadConcurrency is N, the window of parts a job has in flight
	// (default 4): cut but not yet covered by a saved checkpoint. The
	// dump waits for the store only when the window is full, and a crash
	// uploads at most these parts again (docs/jobs.md, "The pipeline").
	// A job holds at most N+1 part buffers.
	UploadConcurrency int
	// CheckpointInterval is the least time between two checkpoints of a
	// job while its window has room (default 1s); a tick also
	// checkpoints when it yields, finishes or the service stops.
	CheckpointInterval time.Duration
	// WALLimit: a snapshot-consistency job whose database's WAL has grown
	// past this many bytes releases its snapshot at its next checkpoint
	// and continues in a new one (the job is then "resumed"), so that a
	// long job does not pin the WAL without bound. Default 1 GiB;
	// negative disables it. Strict jobs read their own copy and are
	// not affected.
	WALLimit int64
	// UploadGo, if set, starts each part upload's goroutine
	// (objstore.WriterOptions.Go); the server runs uploads niced with it.
	UploadGo func(func())
	// Limits override the store's multipart limits (tests shrink them).
	Limits objstore.Limits

	// Metrics receives measurements (ticks, rows, bytes, parts, upload
	// retries); nil means none. api.Metrics implements it.
	Metrics Metrics

	// CallbackSecret signs callback bodies (X-Sluice-Signature).
	CallbackSecret string
	// CallbackAllow lists CIDRs or IPs that callbacks may reach even
	// though they are loopback, private or link-local.
	CallbackAllow []string
	// CallbackAttempts bounds deliveries per job; default 8.
	CallbackAttempts int
	// CallbackBackoff is the first retry delay, doubled each time up to
	// an hour; default 5s.
	CallbackBackoff time.Duration
	// CallbackTimeout bounds one delivery; default 10s.
	CallbackTimeout time.Duration

	// Schedules are the cron-scheduled exports.
	Schedules []Schedule

	// JobTTL is how long finished jobs and their objects are kept;
	// 0 keeps them forever. Jobs of a schedule follow its retention
	// instead.
	JobTTL time.Duration
	// Housekeeping is the interval between housekeeping runs; default 1h.
	Housekeeping time.Duration
	// OrphanGrace is the age an incomplete upload must reach before
	// housekeeping may abort it as an orphan; default 1h.
	OrphanGrace time.Duration

	// Restore loads a SQL dump into a new database file, for the
	// verification of jobs with JobSpec.Verify; cmd/sluice passes the
	// function `sluice restore` uses. Nil makes such verifications fail.
	Restore verify.Restorer
	// Version is sluice's version, written into manifests.
	Version string

	// Role is the share of the task table this process runs; default
	// RoleAll.
	Role Role
	// Notify, if set, receives the events (see Event) that the other
	// processes sharing the data directory should apply with
	// Service.Receive: a server passes them to its export worker and
	// back. It must not block.
	Notify func(Event)

	// Now is the clock; default time.Now.
	Now func() time.Time

	// afterCheckpoint, set by tests only, runs at every page boundary a
	// tick sees, after any checkpoint saved there; parts is the number of
	// parts the job's saved checkpoint covers. Its error stops the tick
	// like any other (a test crash wraps errLeaseLost). It is part of the
	// Config so that it is in place before New starts the service's
	// goroutines.
	afterCheckpoint func(jobID string, parts int) error
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.TickBudget, 20*time.Second)
	def(&c.Lease, 30*time.Second)
	def(&c.Poll, time.Second)
	def(&c.CallbackBackoff, 5*time.Second)
	def(&c.CallbackTimeout, 10*time.Second)
	def(&c.Housekeeping, time.Hour)
	def(&c.OrphanGrace, time.Hour)
	defInt(&c.MaxRunning, 4)
	defInt(&c.MaxQueued, 100)
	defInt(&c.Workers, 4)
	defInt(&c.ChunkSize, dump.DefaultChunkSize)
	defInt(&c.MaxAttempts, 5)
	defInt(&c.UploadConcurrency, 4)
	def(&c.CheckpointInterval, time.Second)
	if c.WALLimit == 0 {
		c.WALLimit = 1 << 30
	}
	defInt(&c.CallbackAttempts, 8)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Open == nil {
		c.Open = DumpOpen
	}
}

// DumpOpen opens a database with the dump engine (dump.Open).
func DumpOpen(ctx context.Context, path string, opts dump.Options, logger *slog.Logger) (Source, error) {
	src, err := dump.Open(ctx, path, opts, logger)
	if err != nil {
		return nil, err
	}
	return src, nil
}

// Service is the job service: submit, inspect, cancel and download jobs,
// and the scheduler that runs them.
type Service struct {
	cfg    Config
	st     *state.DB
	store  objstore.Store
	log    *slog.Logger
	owner  string // this process's lease owner id
	lock   *os.File
	guard  *urlGuard
	scheds map[string]*schedule

	stopCtx  context.Context // done when Close asks ticks to checkpoint and yield
	stop     context.CancelFunc
	hardCtx  context.Context // done when Close's deadline passes: abandon I/O
	hardStop context.CancelFunc
	wake     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	sources map[string]*openSource             // open snapshots kept across ticks, by job id
	running map[string]context.CancelCauseFunc // ticks running here, by job id
	ended   chan struct{}                      // closed and replaced when a job ends here
	closed  bool
}

// Metrics is what the job service reports to a metrics system. Its
// methods must be quick and safe for concurrent use.
type Metrics interface {
	ObserveTick(d time.Duration)
	AddRowsExported(n int64)
	AddBytesExported(n int64)
	AddPartUploaded()
	AddUploadRetry()
	// AddUploadRestart counts a job whose multipart upload vanished from
	// the store (objstore.ErrUploadGone) and was started again.
	AddUploadRestart()
}

// noMetrics discards measurements when Config.Metrics is nil.
type noMetrics struct{}

func (noMetrics) ObserveTick(time.Duration) {}
func (noMetrics) AddRowsExported(int64)     {}
func (noMetrics) AddBytesExported(int64)    {}
func (noMetrics) AddPartUploaded()          {}
func (noMetrics) AddUploadRetry()           {}
func (noMetrics) AddUploadRestart()         {}

// CountByState returns how many jobs are in each state, for metrics.
func (s *Service) CountByState(ctx context.Context) (map[sluice.State]int, error) {
	out := map[sluice.State]int{}
	err := s.st.View(ctx, func(tx *state.Tx) error {
		for _, st := range []sluice.State{sluice.StateQueued, sluice.StateRunning,
			sluice.StateCompleted, sluice.StateFailed, sluice.StateCancelled} {
			n, err := tx.CountJobs(st)
			if err != nil {
				return err
			}
			out[st] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: count by state: %w", err)
	}
	return out, nil
}

// New builds the job service on the state database st and the store that
// receives every export, then starts its scheduler. On start it releases
// the leases of dead sluice processes, so their running jobs resume from
// their last checkpoints, and brings the schedules' tasks up to date.
// Close stops it.
func New(ctx context.Context, cfg Config, st *state.DB, store objstore.Store, logger *slog.Logger) (*Service, error) {
	cfg.setDefaults()
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("jobs: no data dir")
	case st == nil || store == nil || logger == nil:
		return nil, errors.New("jobs: nil state, store or logger")
	}
	guard, err := newURLGuard(cfg.CallbackAllow)
	if err != nil {
		return nil, fmt.Errorf("jobs: callback allow-list: %w", err)
	}
	s := &Service{cfg: cfg, st: st, store: store, log: logger, guard: guard,
		wake: make(chan struct{}, 1), ended: make(chan struct{}), sources: map[string]*openSource{}, running: map[string]context.CancelCauseFunc{}}
	if s.scheds, err = parseSchedules(cfg.Schedules, cfg.Databases); err != nil {
		return nil, err
	}
	s.owner = newID()
	if s.lock, err = lockOwner(cfg.DataDir, s.owner); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.hardCtx, s.hardStop = context.WithCancel(context.Background())
	if err := s.reapDeadOwners(ctx); err != nil {
		s.unlockOwner()
		return nil, err
	}
	// A verification killed mid-way leaves its scratch database; the
	// next housekeeping may be an hour away.
	if err := s.removeVerifyScratch(); err != nil {
		s.log.Warn("jobs: sweep verification scratch", "err", err)
	}
	if cfg.Role != RoleExports {
		if err := s.startControl(ctx); err != nil {
			s.unlockOwner()
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// startControl brings the schedules' tasks up to date and makes sure the
// housekeeping task exists: the control role's share of starting up.
func (s *Service) startControl(ctx context.Context) error {
	if err := s.syncSchedules(ctx); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetDefaultDatabase(s.cfg.DefaultDatabase); err != nil {
			return err
		}
		t, err := tx.GetTask(housekeepingKey)
		if err != nil || t != nil {
			return err
		}
		return tx.PutTask(state.Task{Kind: kindHousekeeping, Key: housekeepingKey, DueAt: s.now()})
	})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// Close stops the scheduler: running ticks checkpoint and yield at their
// next page boundary, and Close waits for them. If ctx ends first, their
// I/O is cancelled; their tasks keep their leases and resume from the
// last checkpoint in the next process. Open snapshots are closed.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.hardStop()
		<-done
		err = fmt.Errorf("jobs: close: %w", ctx.Err())
	}
	s.hardStop()
	s.mu.Lock()
	for id, src := range s.sources {
		src.src.Close()
		delete(s.sources, id)
	}
	s.mu.Unlock()
	s.unlockOwner()
	return err
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Ended returns a channel that is closed the next time a job ends in
// this process (completed, failed or cancelled), or in another process
// that announces it through Receive, so that a status long poll answers
// at once instead of at its next re-read.
func (s *Service) Ended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// signalEnded wakes every Ended waiter, here and in the other processes.
func (s *Service) signalEnded() {
	s.wakeEnded()
	s.notify(Event{Kind: EventEnded})
}

// wakeEnded wakes this process's Ended waiters.
func (s *Service) wakeEnded() {
	s.mu.Lock()
	close(s.ended)
	s.ended = make(chan struct{})
	s.mu.Unlock()
}

// poke makes the scheduler loops, here and in the other processes, look
// for due work now.
func (s *Service) poke() {
	s.wakeLoop()
	s.notify(Event{Kind: EventWork})
}

// wakeLoop wakes this process's scheduler loop.
func (s *Service) wakeLoop() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stopRunning stops job id's tick if it runs in this process.
func (s *Service) stopRunning(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stop := s.running[id]; stop != nil {
		stop(errCancelled)
	}
}

// newID returns a job or owner id: 48 bits of milliseconds then 64
// random bits, in lower-case hex, so ids sort by creation time.
func newID() string {
	var b [14]byte
	ms := time.Now().UnixMilli()
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// openSource is a dump snapshot kept open across a job's ticks, so that
// within one process lifetime the job reads one snapshot.
type openSource struct {
	src       Source
	instance  string    // recorded in checkpoints to tell a resume from a continuation
	path      string    // the database file
	walAtOpen int64     // size of its WAL when the snapshot was opened
	lastUsed  time.Time // guarded by Service.mu
}

func (s *Service) dropSource(jobID string) {
	s.mu.Lock()
	src := s.sources[jobID]
	delete(s.sources, jobID)
	s.mu.Unlock()
	if src != nil {
		src.src.Close()
	}
}

func (s *Service) snapshotPath(jobID string) string {
	return filepath.Join(s.cfg.DataDir, "snapshots", jobID+".db")
}

var errStopped = errors.New("jobs: service stopping")
