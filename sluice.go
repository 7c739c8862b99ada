// Package sluice holds the domain types shared by every part of sluice:
// formats, compression kinds, job states and the sentinel errors that the
// HTTP layer maps to status codes in one place. It imports only the
// standard library.
package sluice

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Format is the output format of a dump.
type Format string

// The dump formats.
const (
	FormatSQL    Format = "sql"
	FormatCSV    Format = "csv"
	FormatJSON   Format = "json"
	FormatNDJSON Format = "ndjson"
	// FormatJSONTyped is the typed JSON document: {"tables": [{"name",
	// "columns", "rows"}, …]}, which keeps the column list of empty
	// tables. FormatJSON is StarbaseDB's {"<table>": [rows…], …}.
	FormatJSONTyped Format = "json-typed"
)

// ParseFormat parses a format name; the empty string means FormatSQL.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return FormatSQL, nil
	case FormatSQL, FormatCSV, FormatJSON, FormatNDJSON, FormatJSONTyped:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want sql, csv, json, json-typed or ndjson)", ErrInvalid, s)
}

// Compression is the compression applied to a dump's bytes.
type Compression string

// The compression kinds.
const (
	CompressNone Compression = "none"
	CompressGzip Compression = "gzip"
	CompressZstd Compression = "zstd"
)

// ParseCompression parses a compression name; the empty string means
// none. "true" and "false" (a boolean compress option) mean gzip and none.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case "true":
		return CompressGzip, nil
	case "", CompressNone, "false":
		return CompressNone, nil
	case CompressGzip, CompressZstd:
		return c, nil
	case "gz":
		return CompressGzip, nil
	case "zst":
		return CompressZstd, nil
	}
	return "", fmt.Errorf("%w: unknown compression %q (want none, gzip or zstd)", ErrInvalid, s)
}

// Ext returns the file-name suffix for the compression, with its dot, or "".
func (c Compression) Ext() string {
	switch c {
	case CompressGzip:
		return ".gz"
	case CompressZstd:
		return ".zst"
	}
	return ""
}

// ContentType is the media type of a dump in format f compressed with c.
func ContentType(f Format, c Compression) string {
	switch c {
	case CompressGzip:
		return "application/gzip"
	case CompressZstd:
		return "application/zstd"
	}
	switch f {
	case FormatCSV:
		return "application/zip" // one CSV per table
	case FormatJSON, FormatJSONTyped:
		return "application/json"
	case FormatNDJSON:
		return "application/x-ndjson"
	}
	return "application/sql"
}

// PlainCSV reports whether the spec's csv dump is one plain RFC 4180
// document (exactly one table selected by name) rather than a zip with
// one CSV per table.
func (s JobSpec) PlainCSV() bool { return s.Format == FormatCSV && len(s.Tables) == 1 }

// ContentType is the media type of the spec's dump.
func (s JobSpec) ContentType() string {
	if s.PlainCSV() && (s.Compression == "" || s.Compression == CompressNone) {
		return "text/csv"
	}
	return ContentType(s.Format, s.Compression)
}

// Ext is the file-name suffix of the spec's dump, compression included.
func (s JobSpec) Ext() string {
	ext := ".sql"
	switch {
	case s.PlainCSV():
		ext = ".csv"
	case s.Format == FormatCSV:
		ext = ".zip" // one CSV document per table
	case s.Format == FormatJSON, s.Format == FormatJSONTyped:
		ext = ".json"
	case s.Format == FormatNDJSON:
		ext = ".ndjson"
	}
	return ext + s.Compression.Ext()
}

// State is the lifecycle state of an export job.
type State string

// Job states: queued → running → completed | failed | cancelled.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Terminal reports whether no further transition can happen from s.
func (s State) Terminal() bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled
}

// Sentinel errors. Packages wrap them with %w; the HTTP layer maps them to
// status codes in one place and the CLI to exit messages.
var (
	// ErrInvalid marks a caller's mistake: bad format, bad option, bad key.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound marks a missing job, table, database or object.
	ErrNotFound = errors.New("not found")
	// ErrConflict marks a request that does not fit the current state,
	// such as downloading a job that has not completed.
	ErrConflict = errors.New("conflict")
	// ErrExists marks a refusal to overwrite something that exists.
	ErrExists = errors.New("already exists")
	// ErrUnauthorized marks a missing or invalid credential.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden marks a credential that lacks the needed role.
	ErrForbidden = errors.New("forbidden")
	// ErrTooLarge marks a request body or value over a configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrBusy marks a request refused because a capacity limit is
	// reached (too many jobs); it may succeed later.
	ErrBusy = errors.New("busy")
)

// Consistency says how a job's snapshot guarantee is kept across restarts.
type Consistency string

// Consistency modes; see docs/consistency.md.
const (
	// ConsistencySnapshot reads one snapshot per process lifetime; a job
	// resumed after a restart continues in a new snapshot.
	ConsistencySnapshot Consistency = "snapshot"
	// ConsistencyStrict first copies an online snapshot of the database
	// into the data dir and dumps the copy, so even a resumed job is one
	// point in time.
	ConsistencyStrict Consistency = "strict"
	// ConsistencyResumed is reported (never requested) for a snapshot job
	// that has been resumed after a restart.
	ConsistencyResumed Consistency = "resumed"
)

// JobSpec is what a caller asks for when submitting an export job.
type JobSpec struct {
	Database    string      `json:"database"`              // configured database name ("" is the default one)
	Format      Format      `json:"format"`                // sql, csv, json, json-typed, ndjson
	Compression Compression `json:"compression,omitempty"` // none, gzip, zstd
	Tables      []string    `json:"tables,omitempty"`      // only these tables
	Exclude     []string    `json:"exclude,omitempty"`     // leave these out
	ChunkSize   int         `json:"chunkSize,omitempty"`   // rows per page; 0 means the default
	// PreserveRowids keeps implicit rowids in a SQL dump, as sqlite3's
	// .dump --preserve-rowids does (off by default, like .dump).
	PreserveRowids bool        `json:"preserveRowids,omitempty"`
	Key            string      `json:"key,omitempty"`         // destination object key; "" means a default name
	CallbackURL    string      `json:"callbackUrl,omitempty"` // POSTed the job's status when it ends
	Consistency    Consistency `json:"consistency,omitempty"` // snapshot (default) or strict
	ScheduleID     string      `json:"scheduleId,omitempty"`  // set on jobs started by a schedule
	// Verify reads the object back after it is stored and checks it
	// against its manifest (docs/verify.md); the callback waits for it.
	Verify bool `json:"verify,omitempty"`
}

// Verification states of a job with JobSpec.Verify.
const (
	VerifyPending = "pending"
	VerifyRunning = "running"
	VerifyPassed  = "passed"
	VerifyFailed  = "failed"
)

// Verification is the outcome of reading a completed job's object back
// and comparing its digests with its manifest.
type Verification struct {
	Status  string  `json:"status"` // pending, running, passed, failed
	Tables  int     `json:"tables"`
	Rows    int64   `json:"rows"`
	Seconds float64 `json:"seconds"`
	// Mismatch is the first difference found, or why verification could
	// not run (then Table is empty).
	Mismatch *VerifyMismatch `json:"mismatch,omitempty"`
}

// VerifyMismatch names where a verification failed.
type VerifyMismatch struct {
	Table  string `json:"table,omitempty"`
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason"`
}

// Progress is a job's persisted progress, readable at any time. Tables is
// filled at submit, so a queued job already lists what it will dump.
type Progress struct {
	Tables         []string `json:"tables,omitempty"` // selected tables, in dump order
	TablesDone     int      `json:"tablesDone"`
	TablesTotal    int      `json:"tablesTotal"`
	CurrentTable   string   `json:"currentTable,omitempty"`
	RowOffset      int64    `json:"rowOffset,omitempty"` // rows of CurrentTable done
	Rows           int64    `json:"rows"`
	Bytes          int64    `json:"bytes"` // bytes written to the store so far (after compression)
	PartsUploaded  int      `json:"partsUploaded"`
	PartsTotal     int      `json:"partsTotal,omitempty"` // estimate until the job completes
	EstimatedBytes int64    `json:"estimatedBytes,omitempty"`
}

// Job is an export job's full, JSON-visible status.
type Job struct {
	ID          string      `json:"jobId"`
	State       State       `json:"status"`
	Spec        JobSpec     `json:"spec"`
	Progress    Progress    `json:"progress"`
	Consistency Consistency `json:"consistency"`
	Resumed     int         `json:"resumed"` // times resumed after a restart
	Error       string      `json:"error,omitempty"`
	Key         string      `json:"key"`              // object key in the store
	Size        int64       `json:"size,omitempty"`   // final object size
	SHA256      string      `json:"sha256,omitempty"` // hex SHA-256 of the final object
	CreatedAt   time.Time   `json:"createdAt"`
	StartedAt   *time.Time  `json:"startedAt,omitempty"`
	UpdatedAt   time.Time   `json:"updatedAt"`
	FinishedAt  *time.Time  `json:"finishedAt,omitempty"`
	// Verification is set on completed jobs whose spec asked for it.
	Verification *Verification `json:"verification,omitempty"`
}

// JobQuery selects and pages jobs, newest first.
type JobQuery struct {
	Database string  // only jobs of this database; "" means every database
	States   []State // any of these; empty means every state
	After    string  // page token: the last id of the previous page
	Limit    int     // page size; 0 means DefaultPageSize
}

// Job listing page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// MaxChunkSize is the largest number of rows a dump reads per page.
const MaxChunkSize = 100_000

// Normalize checks everything a spec says on its own, without the
// database or the store, and fills in the defaults: the format (sql),
// compression (none) and consistency (snapshot). It is the one place
// for these rules; the HTTP layer only turns a request into a spec, and
// the job service checks only what needs the database or the store (the
// database, its tables, the key against the store's rules, the callback
// URL's addresses). Errors wrap ErrInvalid.
func (s JobSpec) Normalize() (JobSpec, error) {
	var err error
	if s.Format, err = ParseFormat(string(s.Format)); err != nil {
		return s, err
	}
	if s.Compression, err = ParseCompression(string(s.Compression)); err != nil {
		return s, err
	}
	switch c := Consistency(strings.ToLower(string(s.Consistency))); c {
	case "", ConsistencySnapshot:
		s.Consistency = ConsistencySnapshot
	case ConsistencyStrict:
		s.Consistency = c
	default:
		return s, fmt.Errorf("%w: unknown consistency %q (want snapshot or strict)", ErrInvalid, s.Consistency)
	}
	if s.ChunkSize < 0 || s.ChunkSize > MaxChunkSize {
		return s, fmt.Errorf("%w: chunkSize must be an integer from 1 to %d", ErrInvalid, MaxChunkSize)
	}
	for _, list := range [][]string{s.Tables, s.Exclude} {
		for _, t := range list {
			if t == "" || strings.ContainsRune(t, 0) {
				return s, fmt.Errorf("%w: table name %q is empty or holds a NUL", ErrInvalid, t)
			}
		}
	}
	if cb := s.CallbackURL; cb != "" {
		u, err := url.Parse(cb)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, fmt.Errorf("%w: callbackUrl %q is not an http(s) URL", ErrInvalid, cb)
		}
	}
	return s, nil
}
