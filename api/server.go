// Package api is the HTTP server of `sluice serve`: StarbaseDB-compatible
// query, import and export routes for the configured SQLite databases,
// the async export-job routes (through the JobService interface it
// declares), downloads, metrics and the OpenAPI document.
//
// The default database is served at the root; every other database has
// the same routes under /db/{name}/. See docs/api.md.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/objstore"
)

// JobService is what the API needs from the durable jobs service.
type JobService interface {
	// Submit validates and queues a job. A caller's mistake is
	// reported wrapping sluice.ErrInvalid or sluice.ErrNotFound.
	Submit(ctx context.Context, spec sluice.JobSpec) (*sluice.Job, error)
	// Get returns a job, or an error wrapping sluice.ErrNotFound.
	Get(ctx context.Context, id string) (*sluice.Job, error)
	// List returns jobs, newest first, and a cursor for the next page
	// ("" when there is none).
	List(ctx context.Context, q sluice.JobQuery) (jobs []*sluice.Job, next string, err error)
	// Cancel cancels a job. Cancelling a cancelled job is not an error;
	// cancelling a completed or failed one may be sluice.ErrConflict.
	Cancel(ctx context.Context, id string) (*sluice.Job, error)
	// Open returns the completed job's object from offset; length < 0
	// means to the end. It fails with sluice.ErrConflict while the job
	// is not completed.
	Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, objstore.ObjectInfo, error)
	// DownloadURL returns a URL that fetches the completed job's object
	// without credentials until expiry.
	DownloadURL(ctx context.Context, id string, expiry time.Duration) (string, error)
}

// JobCounter is optionally implemented by a JobService; the metrics
// collector then reports jobs by state at every scrape.
type JobCounter interface {
	CountByState(ctx context.Context) (map[sluice.State]int, error)
}

// Dumper streams a synchronous dump (the legacy GET /export/dump). It
// writes the uncompressed stream to w; an error returned before the
// first write is reported to the client as a JSON error.
type Dumper interface {
	Dump(ctx context.Context, w io.Writer, dbPath string, opts dump.Options) error
}

// DumperFunc adapts a function to Dumper.
type DumperFunc func(ctx context.Context, w io.Writer, dbPath string, opts dump.Options) error

// Dump calls f.
func (f DumperFunc) Dump(ctx context.Context, w io.Writer, dbPath string, opts dump.Options) error {
	return f(ctx, w, dbPath, opts)
}

// Files serves the file store's presigned URLs (GET /files/{key...}).
type Files struct {
	Store objstore.Store
	// Verify checks the presigned URL's query for key and returns the
	// version of the object it was signed for.
	Verify func(key string, query url.Values) (version string, err error)
	// Version names the version of a stored object, as Verify does; a
	// URL serves only the version it was signed for.
	Version func(objstore.ObjectInfo) string
}

// Deps are the services the server uses. Jobs and Files may be nil
// (their routes then answer 503 and 404); a nil Dumper means
// EngineDumper.
type Deps struct {
	Jobs    JobService
	Dumper  Dumper
	Files   *Files
	Metrics *Metrics // nil: New makes one
}

// Database names one SQLite database that the server hosts.
type Database struct {
	Name string
	Path string
}

// Config configures the server. NewConfig returns the defaults.
type Config struct {
	Listen       string     // host:port; must be loopback when no tokens are set
	Databases    []Database // the first is the default unless DefaultDB names another
	DefaultDB    string
	AdminTokens  []string // allow everything
	ClientTokens []string // allow /query* and table exports
	// PublicURL is the base of every generated URL (Location,
	// statusUrl, downloadUrl, signed file URLs); see baseURL for "".
	PublicURL string
	// ClientExport lets client tokens use the dump and job routes, as
	// StarbaseDB does; by default they need an admin token.
	ClientExport bool
	// CORSAllowOrigins is Access-Control-Allow-Origin's source when
	// tokens are configured: "*" or a list of origins.
	CORSAllowOrigins []string
	Version          string // sluice's version, shown by GET /

	MaxBodyBytes   int64         // JSON request bodies
	MaxImportBytes int64         // import bodies, after decompression
	MaxResultBytes int64         // a /query response, and the largest value SQLite may build for one
	MaxQueryMemory int64         // the response bytes of all /query requests in flight together
	QueryTimeout   time.Duration // per /query request
	// MaxImportStatementBytes bounds one statement of /import/dump and
	// one row of /import/csv and /import/json (413 above it), and the
	// largest value SQLite may build during an import.
	MaxImportStatementBytes int64
	// JournalSizeLimit is PRAGMA journal_size_limit on the served
	// databases: the WAL is truncated to this size after a checkpoint
	// resets it; -1 never truncates.
	JournalSizeLimit  int64
	PoolSize          int           // connections per database
	DownloadURLExpiry time.Duration // lifetime of a status downloadUrl
	ShutdownTimeout   time.Duration // how long Close waits for requests

	// Connection limits; docs/security.md explains them.
	MaxConnections    int           // client connections open at once; more wait in the backlog
	ReadHeaderTimeout time.Duration // to read a request's headers
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	StallTimeout      time.Duration // longest a body or response may run below its minimum rate
	MinBodyRate       int64         // bytes/s a request body must arrive at, over StallTimeout
	MinResponseRate   int64         // bytes/s a client must read a response at, over StallTimeout
}

// Defaults.
const (
	DefaultMaxBodyBytes   = 10 << 20
	DefaultMaxImportBytes = 1 << 30
	DefaultMaxResultBytes = 32 << 20
	DefaultMaxQueryMemory = 128 << 20
	// DefaultMaxImportStatementBytes allows a row holding a 32 MiB
	// BLOB, written as hex, in a dump.
	DefaultMaxImportStatementBytes = 64 << 20
	DefaultJournalSizeLimit        = 64 << 20

	DefaultMaxConnections  = 1024
	DefaultMinBodyRate     = 4 << 10
	DefaultMinResponseRate = 16 << 10
)

// NewConfig returns a Config with the defaults filled in.
func NewConfig() Config {
	return Config{
		Listen:                  "127.0.0.1:8080",
		MaxBodyBytes:            DefaultMaxBodyBytes,
		MaxImportBytes:          DefaultMaxImportBytes,
		MaxResultBytes:          DefaultMaxResultBytes,
		QueryTimeout:            30 * time.Second,
		MaxQueryMemory:          DefaultMaxQueryMemory,
		MaxImportStatementBytes: DefaultMaxImportStatementBytes,
		JournalSizeLimit:        DefaultJournalSizeLimit,
		PoolSize:                8,
		DownloadURLExpiry:       time.Hour,
		ShutdownTimeout:         5 * time.Second,
		MaxConnections:          DefaultMaxConnections,
		ReadHeaderTimeout:       10 * time.Second,
		IdleTimeout:             time.Minute,
		StallTimeout:            30 * time.Second,
		MinBodyRate:             DefaultMinBodyRate,
		MinResponseRate:         DefaultMinResponseRate,
		CORSAllowOrigins:        []string{"*"},
	}
}

// Server is the HTTP server. Use New, then Listen and Serve; Close
// stops it.
type Server struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	metrics *Metrics
	dbs     map[string]*db
	defDB   string
	auth    *authenticator
	handler http.Handler
	mux     *http.ServeMux
	openapi []byte
	console map[string]consoleFile // the web console's files, by path under /ui/
	// queryMem is the memory all /query responses in flight share.
	queryMem *memBudget
	public   *url.URL // Config.PublicURL, parsed; nil when not set
	// patterns are the mux patterns registered from the route table.
	patterns map[string]bool

	ctx    context.Context
	cancel context.CancelCauseFunc
	ln     net.Listener
	srv    *http.Server
	wg     sync.WaitGroup
}

// New builds a server and opens a connection pool (in WAL mode) for each
// database. It does not listen yet.
func New(cfg Config, deps Deps, logger *slog.Logger) (*Server, error) {
	def := NewConfig()
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = def.MaxImportBytes
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = def.MaxResultBytes
	}
	if cfg.MaxQueryMemory <= 0 {
		cfg.MaxQueryMemory = def.MaxQueryMemory
	}
	if cfg.MaxImportStatementBytes <= 0 {
		cfg.MaxImportStatementBytes = def.MaxImportStatementBytes
	}
	if cfg.JournalSizeLimit == 0 {
		cfg.JournalSizeLimit = def.JournalSizeLimit
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = def.QueryTimeout
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = def.PoolSize
	}
	if cfg.DownloadURLExpiry <= 0 {
		cfg.DownloadURLExpiry = def.DownloadURLExpiry
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = def.ShutdownTimeout
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = def.MaxConnections
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = def.ReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = def.StallTimeout
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = def.MinBodyRate
	}
	if cfg.MinResponseRate <= 0 {
		cfg.MinResponseRate = def.MinResponseRate
	}
	if len(cfg.Databases) == 0 {
		return nil, fmt.Errorf("api: no databases configured")
	}
	if logger == nil {
		return nil, fmt.Errorf("api: nil logger")
	}
	s := &Server{cfg: cfg, deps: deps, logger: logger, dbs: map[string]*db{}, queryMem: &memBudget{max: cfg.MaxQueryMemory}}
	var err error
	if s.public, err = parsePublicURL(cfg.PublicURL); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	if s.deps.Dumper == nil {
		s.deps.Dumper = EngineDumper(logger)
	}
	s.metrics = deps.Metrics
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if c, ok := deps.Jobs.(JobCounter); ok {
		s.metrics.countJobs(c)
	}
	s.defDB = cfg.DefaultDB
	if s.defDB == "" {
		s.defDB = cfg.Databases[0].Name
	}
	for _, d := range cfg.Databases {
		if !validDBName(d.Name) {
			s.closeDBs()
			return nil, fmt.Errorf("api: invalid database name %q (letters, digits, '-', '_')", d.Name)
		}
		if _, dup := s.dbs[d.Name]; dup {
			s.closeDBs()
			return nil, fmt.Errorf("api: database %q configured twice", d.Name)
		}
		h, err := openDB(d.Name, d.Path, dbOptions{poolSize: cfg.PoolSize, journalSizeLimit: cfg.JournalSizeLimit}, logger)
		if err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("api: %w", err)
		}
		s.dbs[d.Name] = h
	}
	if _, ok := s.dbs[s.defDB]; !ok {
		s.closeDBs()
		return nil, fmt.Errorf("api: default database %q is not configured", s.defDB)
	}
	s.auth = newAuthenticator(cfg.AdminTokens, cfg.ClientTokens)
	doc, err := buildOpenAPI()
	if err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("api: %w", err)
	}
	s.openapi = doc
	if s.console, err = loadConsole(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("api: %w", err)
	}
	s.mux = http.NewServeMux()
	s.patterns = map[string]bool{}
	for _, rt := range s.routes() {
		s.register(rt)
	}
	s.handler = s.wrap(s.mux)
	return s, nil
}

func validDBName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

// SetJobs sets the jobs service, for a caller that must build the server
// first (the file store's signed URLs need its bound address). Call it
// before Serve.
func (s *Server) SetJobs(js JobService) {
	s.deps.Jobs = js
	if c, ok := js.(JobCounter); ok {
		s.metrics.countJobs(c)
	}
}

// Handler returns the server's root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns the server's metrics, which other services feed.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Listen binds the configured address. Without tokens it refuses any
// address that is not loopback.
func (s *Server) Listen() error {
	if !s.auth.enabled() {
		if err := checkLoopback(s.cfg.Listen); err != nil {
			return err
		}
		s.logger.Warn("no API tokens configured: every request is allowed; listening on loopback only", "addr", s.cfg.Listen)
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listen: %w", err)
	}
	s.ln = newLimitListener(ln, s.cfg.MaxConnections)
	return nil
}

// checkLoopback refuses listen addresses that are reachable from other
// hosts.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("api: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("api: refusing to listen on %q without tokens: configure admin/client tokens or listen on 127.0.0.1", addr)
}

// URL returns the base URL of the listening server.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Serve serves HTTP on the listener in the background. Call Listen first.
func (s *Server) Serve() error {
	if s.ln == nil {
		return errors.New("api: serve before listen")
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// No overall read or write timeout: uploads and streamed dumps
		// may take as long as they need, as long as they keep the
		// minimum rates (see rateBudget).
		BaseContext: func(net.Listener) context.Context { return s.ctx },
		ErrorLog:    slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http serve", "err", err)
		}
	}()
	return nil
}

// Close stops accepting requests, waits up to ShutdownTimeout for those
// in flight, cancels the rest and closes the database pools.
func (s *Server) Close() error {
	var err error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		err = s.srv.Shutdown(ctx)
		cancel()
		s.cancel(errors.New("api: server closed"))
		if err != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
	} else if s.ln != nil {
		err = s.ln.Close()
	}
	s.cancel(errors.New("api: server closed"))
	if cerr := s.closeDBs(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (s *Server) closeDBs() error {
	var first error
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := s.dbs[n].close(); err != nil && first == nil {
			first = err
		}
	}
	s.dbs = map[string]*db{}
	return first
}

// database resolves the request's database: /db/{name}/... or the
// default one.
func (s *Server) database(r *http.Request) (*db, error) {
	name := r.PathValue("db")
	if name == "" {
		name = s.defDB
	}
	d, ok := s.dbs[name]
	if !ok {
		return nil, apiErr(http.StatusNotFound, "unknown_database", fmt.Sprintf("unknown database %q", name))
	}
	return d, nil
}

// dbPrefix is "" for the default database and "/db/{name}" otherwise.
func dbPrefix(r *http.Request) string {
	if n := r.PathValue("db"); n != "" {
		return "/db/" + n
	}
	return ""
}
