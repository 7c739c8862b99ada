// Package sluice holds the domain types shared by every part of sluice:
// formats, compression kinds, job states and the sentinel errors that the
// HTTP layer maps to status codes in one place. It imports only the
// standard library.
package sluice

import (
	"errors"
	"fmt"
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
)

// ParseFormat parses a format name; the empty string means FormatSQL.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return FormatSQL, nil
	case FormatSQL, FormatCSV, FormatJSON, FormatNDJSON:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want sql, csv, json or ndjson)", ErrInvalid, s)
}

// Compression is the compression applied to a dump's bytes.
type Compression string

// The compression kinds.
const (
	CompressNone Compression = "none"
	CompressGzip Compression = "gzip"
	CompressZstd Compression = "zstd"
)

// ParseCompression parses a compression name; the empty string means none.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case "", CompressNone:
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
	case FormatJSON:
		return "application/json"
	case FormatNDJSON:
		return "application/x-ndjson"
	}
	return "application/sql"
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
	Format      Format      `json:"format"`                // sql, csv, json, ndjson
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

// Progress is a job's persisted progress, readable at any time.
type Progress struct {
	TablesDone     int    `json:"tablesDone"`
	TablesTotal    int    `json:"tablesTotal"`
	CurrentTable   string `json:"currentTable,omitempty"`
	Rows           int64  `json:"rows"`
	Bytes          int64  `json:"bytes"` // bytes written to the store so far (after compression)
	PartsUploaded  int    `json:"partsUploaded"`
	PartsTotal     int    `json:"partsTotal,omitempty"` // estimate until the job completes
	EstimatedBytes int64  `json:"estimatedBytes,omitempty"`
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
	DownloadURL string      `json:"downloadUrl,omitempty"` // filled in by the HTTP layer once completed
	// Verification is set on completed jobs whose spec asked for it.
	Verification *Verification `json:"verification,omitempty"`
}
