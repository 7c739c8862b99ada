package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/sqlload"
)

// Config is the configuration of `sluice serve`. Its defaults come from
// NewConfig; a JSON file (--config, strict: unknown keys are errors)
// overrides them, SLUICE_* environment variables override the file, and
// command-line flags override everything.
type Config struct {
	// Listen is the HTTP listen address.
	Listen string `json:"listen"`
	// PublicURL is the base of every URL the server generates (Location,
	// statusUrl, downloadUrl, signed file URLs), e.g. the address of a
	// proxy in front. Empty: see docs/api.md ("Generated URLs").
	PublicURL string `json:"publicURL"`
	// DataDir holds sluice's state database (sluice.db), the default
	// database and, with the file store, the exports.
	DataDir string `json:"dataDir"`
	// Databases maps names to SQLite files. The one named by
	// DefaultDatabase is served at the root; each is under /db/{name}/.
	// Relative paths are relative to DataDir.
	Databases map[string]string `json:"databases"`
	// DefaultDatabase names the database served at the root.
	DefaultDatabase string         `json:"defaultDatabase"`
	Store           StoreConfig    `json:"store"`
	Tokens          TokensConfig   `json:"tokens"`
	CORS            CORSConfig     `json:"cors"`
	Callbacks       CallbackConfig `json:"callbacks"`
	Schedules       []Schedule     `json:"schedules"`
	Limits          LimitsConfig   `json:"limits"`
}

// StoreConfig selects where exports go.
type StoreConfig struct {
	// Type is "file" (a local directory, the default) or "s3".
	Type string `json:"type"`
	// Dir is the file store's directory; relative to DataDir when not
	// absolute. Default "exports".
	Dir string        `json:"dir"`
	S3  S3StoreConfig `json:"s3"`
}

// S3StoreConfig configures an S3-compatible store. Empty credentials,
// region and endpoint fall back to the standard AWS_* variables.
type S3StoreConfig struct {
	Endpoint  string `json:"endpoint"`
	Region    string `json:"region"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix"`
	PathStyle bool   `json:"pathStyle"`
	Insecure  bool   `json:"insecure"`
	// Checksum is the per-part checksum: "crc32c" (default) or "md5".
	Checksum        string `json:"checksum"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// TokensConfig lists bearer tokens. Admin tokens allow everything; client
// tokens allow only queries and table exports. With none, the server
// binds only to loopback.
type TokensConfig struct {
	Admin  []string `json:"admin"`
	Client []string `json:"client"`
	// ClientExport lets client tokens run dumps and export jobs, as
	// StarbaseDB lets any token; by default they need an admin token.
	ClientExport bool `json:"clientExport"`
}

// CORSConfig is the CORS answer when tokens are configured (without
// tokens, no CORS headers are sent and other origins are refused).
type CORSConfig struct {
	// AllowOrigins is "*" (the default, as in StarbaseDB) or a list of
	// origins such as "https://app.example.com".
	AllowOrigins []string `json:"allowOrigins"`
}

// CallbackConfig configures job-completion callbacks.
type CallbackConfig struct {
	// Secret signs callback bodies (X-Sluice-Signature, HMAC-SHA256).
	Secret string `json:"secret"`
	// Allow lists hosts or CIDRs that may be called back even though they
	// are loopback, private or link-local addresses.
	Allow []string `json:"allow"`
}

// Schedule is a cron-scheduled export.
type Schedule struct {
	Name string `json:"name"`
	// Cron is a standard five-field cron expression.
	Cron string         `json:"cron"`
	Spec sluice.JobSpec `json:"spec"`
	// KeepLast keeps the newest N exports of this schedule (0: no limit).
	KeepLast int `json:"keepLast"`
	// MaxAge deletes exports older than this (0: no limit). The newest
	// successful export is always kept.
	MaxAge Duration `json:"maxAge"`
}

// LimitsConfig bounds the server's work.
type LimitsConfig struct {
	// MaxConcurrentJobs caps jobs running at once.
	MaxConcurrentJobs int `json:"maxConcurrentJobs"`
	// TickBudget is the longest a job runs before yielding.
	TickBudget Duration `json:"tickBudget"`
	// MaxBodyBytes caps request bodies (imports, queries).
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// JobTTL is how long finished jobs and their exports are kept.
	JobTTL Duration `json:"jobTTL"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout Duration `json:"shutdownTimeout"`
	// ExportThreads caps the CPU-bound dump goroutines of all exports
	// together (each dump uses two); 0, the default, picks
	// dump.DefaultGateSize(ExportNice): every CPU for niced exports, CPUs
	// − 1 (at least 1) at nice 0, keeping a core for queries.
	ExportThreads int `json:"exportThreads"`
	// MaxQueuedJobs caps jobs queued or running at once: more submits
	// get 429 with Retry-After.
	MaxQueuedJobs int `json:"maxQueuedJobs"`
	// MinFreeBytes is the file store's free-disk floor: a write that
	// would leave less free space fails the job instead of filling the
	// disk. 0 disables it.
	MinFreeBytes int64 `json:"minFreeBytes"`
	// MaxConnections caps open client connections; more wait in the
	// kernel's backlog until one closes.
	MaxConnections int `json:"maxConnections"`
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout Duration `json:"idleTimeout"`
	// StallTimeout is how long a request body or a streamed response
	// may stay below its minimum rate (or stop) before the connection is
	// cut off.
	StallTimeout Duration `json:"stallTimeout"`
	// MinBodyRate is the rate, in bytes/s, a request body must arrive at.
	MinBodyRate int64 `json:"minBodyRate"`
	// MinResponseRate is the rate, in bytes/s, a client must read a
	// response at, so that a slow reader cannot pin a snapshot (and the
	// WAL) for long.
	MinResponseRate int64 `json:"minResponseRate"`
	// MaxResultBytes caps one /query response, and so the largest
	// string or BLOB a query may build (SQLITE_LIMIT_LENGTH).
	MaxResultBytes int64 `json:"maxResultBytes"`
	// MaxQueryMemory caps the response bytes of all /query requests in
	// flight together; a query that finds it spent gets 503.
	MaxQueryMemory int64 `json:"maxQueryMemory"`
	// MaxImportStatementBytes caps one statement of /import/dump and one
	// row of /import/csv and /import/json (413 above it), and the
	// largest value SQLite may build during an import.
	MaxImportStatementBytes int64 `json:"maxImportStatementBytes"`
	// JournalSizeLimit is PRAGMA journal_size_limit on the served
	// databases: after a checkpoint resets the WAL, the file is
	// truncated to this many bytes. -1 never truncates.
	JournalSizeLimit int64 `json:"journalSizeLimit"`
	// ExportNice is the nice value (0–19) of the threads that run exports,
	// so that queries take a core from an export at once (Linux). The
	// default, 19, is the lowest priority; 0 leaves exports at the
	// server's priority.
	ExportNice int `json:"exportNice"`
	// ExportProcess runs the export jobs (their ticks and verifications)
	// in a worker process of their own, started at ExportNice, instead of
	// in the server process (default true). Its threads then all run at
	// that priority, and the exports share no locks, heap or garbage
	// collector with the HTTP queries. See docs/architecture.md.
	ExportProcess bool `json:"exportProcess"`
	// UploadConcurrency is the window of parts a job has in flight: cut
	// and not yet covered by a checkpoint (docs/jobs.md, "The pipeline").
	// A crash redoes at most these parts; a job holds at most N+1 part
	// buffers.
	UploadConcurrency int `json:"uploadConcurrency"`
	// CheckpointInterval is the least time between a job's checkpoints
	// while its window has room.
	CheckpointInterval Duration `json:"checkpointInterval"`
	// WALLimit: a snapshot job whose database's WAL grew by more than this
	// many bytes while the job held its snapshot continues in a new one;
	// -1 disables it.
	WALLimit int64 `json:"walLimit"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("20s", "168h").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "20s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"20s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// NewConfig returns the defaults: the embedded setup that serves
// ./data/default.db on 127.0.0.1:8080 and stores exports in ./data/exports.
func NewConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		DataDir:         "data",
		Databases:       map[string]string{"default": "default.db"},
		DefaultDatabase: "default",
		Store:           StoreConfig{Type: "file", Dir: "exports"},
		CORS:            CORSConfig{AllowOrigins: []string{"*"}},
		Limits: LimitsConfig{
			MaxConcurrentJobs:  4,
			TickBudget:         Duration(20 * time.Second),
			MaxBodyBytes:       1 << 30,
			JobTTL:             Duration(7 * 24 * time.Hour),
			ShutdownTimeout:    Duration(4 * time.Second),
			ExportNice:         dump.DefaultNice,
			ExportProcess:      true,
			MaxQueuedJobs:      100,
			MinFreeBytes:       512 << 20,
			MaxConnections:     api.DefaultMaxConnections,
			ReadHeaderTimeout:  Duration(10 * time.Second),
			IdleTimeout:        Duration(time.Minute),
			StallTimeout:       Duration(30 * time.Second),
			MinBodyRate:        api.DefaultMinBodyRate,
			MinResponseRate:    api.DefaultMinResponseRate,
			UploadConcurrency:  4,
			CheckpointInterval: Duration(time.Second),
			WALLimit:           1 << 30,

			MaxResultBytes:          api.DefaultMaxResultBytes,
			MaxQueryMemory:          api.DefaultMaxQueryMemory,
			MaxImportStatementBytes: api.DefaultMaxImportStatementBytes,
			JournalSizeLimit:        api.DefaultJournalSizeLimit,
		},
	}
}

// decodeConfig reads a JSON config over c, strictly: unknown keys and
// trailing data are errors.
func decodeConfig(r io.Reader, c *Config) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	// A file that sets "databases" replaces the default map rather than
	// merging into it.
	c.Databases = nil
	if err := dec.Decode(c); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// loadConfigFile applies the JSON file at path to c.
func loadConfigFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	def := c.Databases
	if err := decodeConfig(bytes.NewReader(b), c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if c.Databases == nil {
		c.Databases = def
	}
	return nil
}

// applyEnv overrides c from SLUICE_* variables; see envVars.
func applyEnv(c *Config, getenv func(string) string) error {
	for _, v := range envVars {
		if s := getenv(v.name); s != "" {
			if err := v.set(c, s); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}
	return nil
}

// envVars are the SLUICE_* variables serve reads, with what they set.
var envVars = []struct {
	name string
	help string
	set  func(c *Config, v string) error
}{
	{"SLUICE_LISTEN", "listen address", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"SLUICE_PUBLIC_URL", "base URL of generated links, e.g. https://sluice.example.com", func(c *Config, v string) error { c.PublicURL = v; return nil }},
	{"SLUICE_DATA_DIR", "data directory", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"SLUICE_DB", "path of the default database", func(c *Config, v string) error {
		if c.Databases == nil {
			c.Databases = map[string]string{}
		}
		if c.DefaultDatabase == "" {
			c.DefaultDatabase = "default"
		}
		c.Databases[c.DefaultDatabase] = v
		return nil
	}},
	{"SLUICE_ADMIN_TOKENS", "comma-separated admin tokens", func(c *Config, v string) error { c.Tokens.Admin = splitList(v); return nil }},
	{"SLUICE_CLIENT_TOKENS", "comma-separated client tokens", func(c *Config, v string) error { c.Tokens.Client = splitList(v); return nil }},
	{"SLUICE_CALLBACK_SECRET", "callback signing secret", func(c *Config, v string) error { c.Callbacks.Secret = v; return nil }},
	{"SLUICE_CALLBACK_ALLOW", "comma-separated hosts/CIDRs callbacks may reach", func(c *Config, v string) error { c.Callbacks.Allow = splitList(v); return nil }},
	{"SLUICE_STORE", "store type: file or s3", func(c *Config, v string) error { c.Store.Type = v; return nil }},
	{"SLUICE_STORE_DIR", "file store directory", func(c *Config, v string) error { c.Store.Dir = v; return nil }},
	{"SLUICE_S3_BUCKET", "S3 bucket", func(c *Config, v string) error { c.Store.S3.Bucket = v; return nil }},
	{"SLUICE_S3_PREFIX", "S3 key prefix", func(c *Config, v string) error { c.Store.S3.Prefix = v; return nil }},
	{"SLUICE_S3_ENDPOINT", "S3 endpoint", func(c *Config, v string) error { c.Store.S3.Endpoint = v; return nil }},
	{"SLUICE_S3_REGION", "S3 region", func(c *Config, v string) error { c.Store.S3.Region = v; return nil }},
	{"SLUICE_S3_PATH_STYLE", "true for path-style addressing", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Store.S3.PathStyle = b
		return err
	}},
	{"SLUICE_S3_INSECURE", "true for plain http", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Store.S3.Insecure = b
		return err
	}},
	{"SLUICE_S3_CHECKSUM", "per-part checksum: crc32c or md5", func(c *Config, v string) error { c.Store.S3.Checksum = v; return nil }},
	{"SLUICE_MAX_CONCURRENT_JOBS", "concurrent job limit", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Limits.MaxConcurrentJobs = n
		return err
	}},
	{"SLUICE_MAX_QUEUED_JOBS", "limit on queued plus running jobs", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Limits.MaxQueuedJobs = n
		return err
	}},
	{"SLUICE_TICK_BUDGET", "job tick budget, e.g. 20s", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		c.Limits.TickBudget = Duration(d)
		return err
	}},
	{"SLUICE_MAX_IMPORT_STATEMENT_BYTES", "largest statement or row of an import", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.Limits.MaxImportStatementBytes = n
		return err
	}},
}

// validate checks c and resolves relative paths against DataDir.
func (c *Config) validate() error {
	if c.Listen == "" {
		return errors.New("listen address is empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.DataDir == "" {
		return errors.New("dataDir is empty")
	}
	if len(c.Databases) == 0 {
		return errors.New("no databases configured")
	}
	if _, ok := c.Databases[c.DefaultDatabase]; !ok {
		return fmt.Errorf("defaultDatabase %q is not in databases", c.DefaultDatabase)
	}
	for name, p := range c.Databases {
		if name == "" || strings.ContainsAny(name, "/\\ \x00") {
			return fmt.Errorf("database name %q: use letters, digits, '-' or '_'", name)
		}
		if p == "" {
			return fmt.Errorf("database %q has no path", name)
		}
		c.Databases[name] = c.resolve(p)
	}
	switch c.Store.Type {
	case "file":
		if c.Store.Dir == "" {
			return errors.New("store.dir is empty")
		}
		c.Store.Dir = c.resolve(c.Store.Dir)
	case "s3":
		if c.Store.S3.Bucket == "" {
			return errors.New("store.s3.bucket is required for the s3 store")
		}
	default:
		return fmt.Errorf("store.type %q: want file or s3", c.Store.Type)
	}
	if c.Limits.MaxConcurrentJobs < 1 {
		return errors.New("limits.maxConcurrentJobs must be at least 1")
	}
	if c.Limits.ExportThreads < 0 {
		return errors.New("limits.exportThreads must be 0 (automatic) or more")
	}
	if c.Limits.ExportNice < 0 || c.Limits.ExportNice > 19 {
		return errors.New("limits.exportNice must be 0 to 19")
	}
	if c.Limits.TickBudget <= 0 {
		return errors.New("limits.tickBudget must be positive")
	}
	if c.Limits.UploadConcurrency < 1 || c.Limits.UploadConcurrency > 64 {
		return errors.New("limits.uploadConcurrency must be 1 to 64")
	}
	if c.Limits.CheckpointInterval <= 0 {
		return errors.New("limits.checkpointInterval must be positive")
	}
	if c.Limits.WALLimit == 0 || c.Limits.WALLimit < -1 {
		return errors.New("limits.walLimit must be a positive number of bytes, or -1 to disable")
	}
	if c.Limits.ShutdownTimeout <= 0 {
		return errors.New("limits.shutdownTimeout must be positive")
	}
	if c.Limits.MaxBodyBytes <= 0 {
		return errors.New("limits.maxBodyBytes must be positive")
	}
	if err := c.Limits.validateConnLimits(); err != nil {
		return err
	}
	if c.Limits.MaxResultBytes <= 0 || c.Limits.MaxQueryMemory < c.Limits.MaxResultBytes {
		return errors.New("limits.maxResultBytes must be positive and limits.maxQueryMemory at least as large")
	}
	if c.Limits.MaxImportStatementBytes <= 0 || c.Limits.MaxImportStatementBytes > sqlload.DefaultMaxStatementBytes {
		return fmt.Errorf("limits.maxImportStatementBytes must be 1 to %d (SQLite's own maximum)", sqlload.DefaultMaxStatementBytes)
	}
	if c.Limits.JournalSizeLimit < -1 || c.Limits.JournalSizeLimit == 0 {
		return errors.New("limits.journalSizeLimit must be positive, or -1 for no limit")
	}
	seen := map[string]bool{}
	for i, s := range c.Schedules {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("schedules[%d]: a unique name is required", i)
		}
		seen[s.Name] = true
		if s.Cron == "" {
			return fmt.Errorf("schedule %q: cron is required", s.Name)
		}
		if s.KeepLast < 0 || s.MaxAge < 0 {
			return fmt.Errorf("schedule %q: keepLast and maxAge must not be negative", s.Name)
		}
	}
	return nil
}

// validateConnLimits checks the job cap, the disk floor and the
// connection limits.
func (l LimitsConfig) validateConnLimits() error {
	switch {
	case l.MaxQueuedJobs < l.MaxConcurrentJobs:
		return errors.New("limits.maxQueuedJobs must be at least limits.maxConcurrentJobs")
	case l.MinFreeBytes < 0:
		return errors.New("limits.minFreeBytes must not be negative")
	case l.MaxConnections < 1:
		return errors.New("limits.maxConnections must be at least 1")
	case l.ReadHeaderTimeout <= 0 || l.IdleTimeout <= 0 || l.StallTimeout <= 0:
		return errors.New("limits.readHeaderTimeout, idleTimeout and stallTimeout must be positive")
	case l.MinBodyRate <= 0 || l.MinResponseRate <= 0:
		return errors.New("limits.minBodyRate and minResponseRate must be positive")
	}
	return nil
}

// resolve makes p relative to DataDir unless it is absolute.
func (c *Config) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.DataDir, p)
}

// loopbackOnly reports whether addr binds only to a loopback interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
