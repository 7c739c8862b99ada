package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/jobs"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/objstore/file"
	"github.com/sluice-dev/sluice/objstore/s3"
	"github.com/sluice-dev/sluice/state"
)

// serve wires the state database, the store, the job service and the
// HTTP API, runs until ctx ends (SIGTERM/SIGINT), then shuts down: the
// API stops taking requests, running job ticks checkpoint, and the state
// database is closed. The whole shutdown stays within ShutdownTimeout.
func serve(ctx context.Context, e *env, cfg Config, log *slog.Logger) error {
	st, err := state.Open(ctx, filepath.Join(cfg.DataDir, state.FileName), log)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer st.Close()

	// The API is built and bound first: the file store's signed URLs
	// point at its public URL, which may be the address it actually
	// listens on (:0); the job service is set on it once built.
	files := &api.Files{}
	// Every export (legacy route, table exports, jobs) shares one gate
	// that leaves a core for queries and runs at a lower priority: see
	// dump.Gate and docs/benchmarks.md.
	threads := exportThreads(cfg.Limits)
	gate := dump.NewGate(threads).WithNice(cfg.Limits.ExportNice)
	raiseProcsForExports(e.getenv, cfg.Limits.ExportNice, threads, log)
	engine := api.EngineDumper(log)
	dumper := api.DumperFunc(func(ctx context.Context, w io.Writer, path string, opts dump.Options) error {
		opts.Gate = gate
		return engine.Dump(ctx, w, path, opts)
	})
	srv, err := api.New(apiConfig(cfg), api.Deps{Dumper: dumper, Files: files}, log)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return err
	}
	store, err := buildStore(ctx, cfg, srv.PublicURL(), files, log)
	if err != nil {
		srv.Close()
		return err
	}
	jcfg := wireJobs(cfg, gate, log)
	jcfg.Metrics = srv.Metrics()
	var worker *exportWorker
	if cfg.Limits.ExportProcess {
		worker = newExportWorker(workerHello{Config: cfg, PublicURL: srv.PublicURL(), LogLevel: lowestLevel(ctx, log)},
			cfg.Limits.ExportNice, e.stderr, jcfg.Metrics, log)
		jcfg.Role, jcfg.Notify = jobs.RoleControl, worker.Notify
	}
	svc, err := jobs.New(ctx, jcfg, st, store, log)
	if err != nil {
		srv.Close()
		return err
	}
	if worker != nil {
		if err := worker.start(svc.Receive); err != nil {
			srv.Close()
			svc.Close(context.Background())
			return fmt.Errorf("%w (limits.exportProcess false runs exports in the server process)", err)
		}
	}
	srv.SetJobs(svc)
	if err := srv.Serve(); err != nil {
		srv.Close()
		closeJobs(context.Background(), svc, worker)
		return err
	}
	log.Info("sluice serving", "url", srv.PublicURL(), "listen", srv.URL(), "version", versionString(), "data_dir", absPath(cfg.DataDir),
		"databases", cfg.Databases, "exports", describeStore(cfg.Store))
	printBanner(e.stderr, cfg, srv.PublicURL())

	<-ctx.Done()
	log.Info("shutting down")
	// Jobs first: their ticks checkpoint at the next page boundary. Then
	// the API, whose own timeout is the rest of the budget (apiConfig).
	jctx, cancel := context.WithTimeout(context.Background(), jobsShutdown(cfg))
	defer cancel()
	jerr := closeJobs(jctx, svc, worker)
	aerr := srv.Close()
	if err := errors.Join(jerr, aerr); err != nil {
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// closeJobs stops the job service and the export worker (nil: none) at
// once, each checkpointing its running work within ctx.
func closeJobs(ctx context.Context, svc *jobs.Service, worker *exportWorker) error {
	werr := make(chan error, 1)
	go func() {
		if worker == nil {
			werr <- nil
			return
		}
		werr <- worker.Close(ctx)
	}()
	err := svc.Close(ctx)
	return errors.Join(err, <-werr)
}

// serveExports is the export worker's body (see worker.go): the job
// service in RoleExports on the server's data directory and store, with
// workerGate's bound on its exports and no per-thread nice (the worker
// process runs at limits.exportNice as a whole). It returns when ctx ends, after
// the running ticks checkpoint.
func serveExports(ctx context.Context, hello workerHello, log *slog.Logger, metrics jobs.Metrics,
	ready func(*jobs.Service), notify func(jobs.Event)) error {
	cfg := hello.Config
	st, err := state.Open(ctx, filepath.Join(cfg.DataDir, state.FileName), log)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer st.Close()
	store, err := buildStore(ctx, cfg, hello.PublicURL, &api.Files{}, log)
	if err != nil {
		return err
	}
	jcfg := wireJobs(cfg, workerGate(cfg.Limits), log)
	jcfg.Role, jcfg.Notify, jcfg.Metrics = jobs.RoleExports, notify, metrics
	svc, err := jobs.New(ctx, jcfg, st, store, log)
	if err != nil {
		return err
	}
	ready(svc)
	log.Debug("export worker running", "pid", os.Getpid())
	<-ctx.Done()
	jctx, cancel := context.WithTimeout(context.Background(), jobsShutdown(cfg))
	defer cancel()
	return svc.Close(jctx)
}

// wireJobs is the job service's configuration with the engine behind it:
// exports through gate, verification through sluice restore's loader.
func wireJobs(cfg Config, gate *dump.Gate, log *slog.Logger) jobs.Config {
	jcfg := jobsConfig(cfg)
	jcfg.UploadGo = gate.Go
	jcfg.Version = version
	jcfg.Restore = func(ctx context.Context, path string, r io.Reader) error {
		_, err := restoreInto(ctx, log, path, r, true)
		return err
	}
	jcfg.Open = func(ctx context.Context, path string, opts dump.Options, logger *slog.Logger) (jobs.Source, error) {
		opts.Gate = gate
		return jobs.DumpOpen(ctx, path, opts, logger)
	}
	return jcfg
}

// lowestLevel is the lowest level log writes, for a child process to log
// like its parent.
func lowestLevel(ctx context.Context, log *slog.Logger) slog.Level {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if log.Enabled(ctx, l) {
			return l
		}
	}
	return slog.LevelError
}

// jobsShutdown is the jobs' share of the shutdown budget, 3/5, for their
// ticks to checkpoint (in the server and in the export worker); the API
// gets the rest, so the whole stays within limits.shutdownTimeout.
func jobsShutdown(cfg Config) time.Duration {
	return time.Duration(cfg.Limits.ShutdownTimeout) * 3 / 5
}

// apiConfig maps the serve config onto the API's.
func apiConfig(cfg Config) api.Config {
	c := api.NewConfig()
	c.Listen = cfg.Listen
	c.Version = versionString()
	c.DefaultDB = cfg.DefaultDatabase
	names := make([]string, 0, len(cfg.Databases))
	for name := range cfg.Databases {
		names = append(names, name)
	}
	sort.Strings(names)
	c.Databases = append(c.Databases, api.Database{Name: cfg.DefaultDatabase, Path: cfg.Databases[cfg.DefaultDatabase]})
	for _, name := range names {
		if name != cfg.DefaultDatabase {
			c.Databases = append(c.Databases, api.Database{Name: name, Path: cfg.Databases[name]})
		}
	}
	c.AdminTokens = cfg.Tokens.Admin
	c.ClientTokens = cfg.Tokens.Client
	c.ClientExport = cfg.Tokens.ClientExport
	c.PublicURL = cfg.PublicURL
	c.CORSAllowOrigins = cfg.CORS.AllowOrigins
	c.MaxImportBytes = cfg.Limits.MaxBodyBytes
	c.MaxConnections = cfg.Limits.MaxConnections
	c.ReadHeaderTimeout = time.Duration(cfg.Limits.ReadHeaderTimeout)
	c.IdleTimeout = time.Duration(cfg.Limits.IdleTimeout)
	c.StallTimeout = time.Duration(cfg.Limits.StallTimeout)
	c.MinBodyRate = cfg.Limits.MinBodyRate
	c.MinResponseRate = cfg.Limits.MinResponseRate
	c.MaxResultBytes = cfg.Limits.MaxResultBytes
	c.MaxQueryMemory = cfg.Limits.MaxQueryMemory
	c.MaxImportStatementBytes = cfg.Limits.MaxImportStatementBytes
	c.JournalSizeLimit = cfg.Limits.JournalSizeLimit
	c.ShutdownTimeout = time.Duration(cfg.Limits.ShutdownTimeout) - jobsShutdown(cfg)
	return c
}

// jobsConfig maps the serve config onto the job service's.
func jobsConfig(cfg Config) jobs.Config {
	c := jobs.Config{
		DataDir:         cfg.DataDir,
		Databases:       cfg.Databases,
		DefaultDatabase: cfg.DefaultDatabase,
		TickBudget:      time.Duration(cfg.Limits.TickBudget),
		MaxRunning:      cfg.Limits.MaxConcurrentJobs,
		MaxQueued:       cfg.Limits.MaxQueuedJobs,

		UploadConcurrency:  cfg.Limits.UploadConcurrency,
		CheckpointInterval: time.Duration(cfg.Limits.CheckpointInterval),
		WALLimit:           cfg.Limits.WALLimit,
		CallbackSecret:     cfg.Callbacks.Secret,
		CallbackAllow:      cfg.Callbacks.Allow,
		JobTTL:             time.Duration(cfg.Limits.JobTTL),
	}
	for _, s := range cfg.Schedules {
		c.Schedules = append(c.Schedules, jobs.Schedule{
			Name: s.Name, Cron: s.Cron, Spec: s.Spec, KeepLast: s.KeepLast, MaxAge: time.Duration(s.MaxAge),
		})
	}
	return c
}

// buildStore makes the configured store. The file store's presigned URLs
// are served by the API at baseURL and signed with a key kept in the data
// dir, so they stay valid across restarts.
func buildStore(ctx context.Context, cfg Config, baseURL string, files *api.Files, log *slog.Logger) (objstore.Store, error) {
	switch cfg.Store.Type {
	case "file":
		key, err := signingKey(filepath.Join(cfg.DataDir, "presign.key"))
		if err != nil {
			return nil, err
		}
		fst, err := file.New(cfg.Store.Dir, file.Options{SigningKey: key, BaseURL: baseURL, MinFreeBytes: cfg.Limits.MinFreeBytes}, log)
		if err != nil {
			return nil, err
		}
		files.Store = fst
		files.Verify = fst.VerifyQuery
		files.Version = file.Version
		return fst, nil
	case "s3":
		sc := s3.ConfigFromEnv()
		o := cfg.Store.S3
		sc.Bucket, sc.Prefix = o.Bucket, o.Prefix
		for dst, v := range map[*string]string{&sc.Endpoint: o.Endpoint, &sc.Region: o.Region,
			&sc.AccessKeyID: o.AccessKeyID, &sc.SecretAccessKey: o.SecretAccessKey} {
			if v != "" {
				*dst = v
			}
		}
		if o.PathStyle {
			sc.Style = s3.StylePath
		}
		if o.Insecure {
			sc.DisableTLS = true
		}
		if o.Checksum != "" {
			sc.Checksum = s3.ChecksumAlgorithm(o.Checksum)
		}
		s, err := s3.New(ctx, sc, log)
		if err != nil {
			return nil, fmt.Errorf("s3 store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("store type %q", cfg.Store.Type)
}

// defaultProcs is the runtime's own GOMAXPROCS (CPUs, or the container's
// CPU limit), read before anything changes it.
var defaultProcs = runtime.GOMAXPROCS(0)

// exportThreads resolves limits.exportThreads: 0 is the default for the
// export nice value.
func exportThreads(l LimitsConfig) int {
	if l.ExportThreads > 0 {
		return l.ExportThreads
	}
	return dump.DefaultGateSize(l.ExportNice)
}

// workerGate is the export worker's gate. A niced worker, by default,
// has none: the kernel runs it only on CPU time nothing else wants, so,
// like the CLI, each dump reads, formats and hashes its digests on
// goroutines of its own and Go shares the cores between them. A gate
// stays where the operator sets limits.exportThreads, and at nice 0,
// where it keeps a core free for queries (dump.DefaultGateSize).
func workerGate(l LimitsConfig) *dump.Gate {
	if l.ExportThreads == 0 && l.ExportNice > 0 {
		return nil
	}
	return dump.NewGate(exportThreads(l))
}

// raiseProcsForExports adds the export threads to GOMAXPROCS when exports
// run niced and the user did not set GOMAXPROCS. A niced export thread
// holds one of Go's Ps while the kernel runs it last; with only as many Ps
// as CPUs, a query goroutine could wait for that P, up to Go's 10 ms
// preemption slice, behind an export the kernel is not even running.
// With a P to spare per export thread, queries always find a P on a
// normal-priority thread, and the kernel, which knows the priorities,
// shares the cores. The CPU-bound work stays bounded by the export gate.
func raiseProcsForExports(getenv func(string) string, nice, threads int, log *slog.Logger) {
	if nice == 0 || getenv("GOMAXPROCS") != "" {
		return
	}
	n := defaultProcs + threads
	runtime.GOMAXPROCS(n)
	log.Debug("GOMAXPROCS raised for niced export threads", "gomaxprocs", n)
}

// signingKey reads the hex key at path, creating a random one (mode
// 0600) the first time.
func signingKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 16 {
			return nil, fmt.Errorf("signing key %s is corrupt; delete it to make a new one (old download URLs stop working)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return key, nil
}

// The job service is the API's JobService, and it feeds GET /schedules.
var (
	_ api.JobService     = (*jobs.Service)(nil)
	_ api.ScheduleLister = (*jobs.Service)(nil)
)
