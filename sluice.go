// Package sluice holds the domain types shared by every part of sluice:
// formats, compression kinds, job states and the sentinel errors that the
// HTTP layer maps to status codes in one place. It imports only the
// standard library.
package sluice

import (
	"errors"
	"fmt"
	"strings"
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
