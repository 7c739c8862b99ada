// Package dump is sluice's streaming export engine. It reads one snapshot
// of a SQLite database (one read transaction) with keyset pagination and
// writes it to an io.Writer as SQL, CSV (a zip of one CSV per table), JSON
// or NDJSON, at constant memory. It can stop at any page boundary and
// report a Cursor from which a later call produces exactly the remaining
// bytes.
//
// CONTRACT (written before the implementation; the implementer may refine
// names but must keep the shape, because package jobs and cmd/sluice are
// written against it in parallel):
//
//	src, err := dump.Open(ctx, path, opts, logger) // read-only, one read tx
//	defer src.Close()
//	plan := src.Plan()                             // selected tables, estimate
//	cur, err := src.Dump(ctx, w, from, checkpoint)
//
// Dump writes the uncompressed stream to w, starting at cursor from (the
// zero Cursor is the start). After each page (at most ChunkSize rows, fewer
// when 512 KiB of text and blob bytes fill it first) and after each schema
// step it calls checkpoint(b) on the goroutine that called Dump (never on
// the lowered-priority writer thread of a niced Gate), after every byte up
// to b has been passed to w.Write, and while no w.Write is in progress.
// b.Progress() is the position for display, b.Cursor() the one to resume
// from (see Boundary). It is not called for the final position, which
// Dump returns with Done == true. If checkpoint returns ErrStop, Dump
// returns (b.Cursor(), nil) with Done == false; any other
// error aborts the dump and is returned wrapped. Resuming from a Done
// cursor writes nothing. A cursor that does not fit the plan (another
// schema) fails with sluice.ErrConflict. Compression and hashing are the
// caller's: they wrap w. The formats and the engine are described in
// docs/formats.md, docs/formats-csv-json.md and docs/architecture.md.
package dump

import (
	"errors"
	"time"

	"github.com/sluice-dev/sluice"
)

// DefaultChunkSize is the number of rows read per page when
// Options.ChunkSize is zero.
const DefaultChunkSize = 1000

// MaxChunkSize is the largest accepted Options.ChunkSize.
const MaxChunkSize = sluice.MaxChunkSize

// ErrStop is returned by a checkpoint callback to stop a dump cleanly at
// the current boundary.
var ErrStop = errors.New("dump: stop requested")

// Options selects what a dump contains and how it is read.
type Options struct {
	Format sluice.Format // sql (default), csv, json, json-typed, ndjson
	Tables []string      // only these tables (exact names); empty means all
	// PlainCSV writes a csv dump of one table as a plain CSV document
	// instead of a zip (see sluice.JobSpec.PlainCSV).
	PlainCSV       bool
	Exclude        []string      // tables to leave out
	SchemaOnly     bool          // schema, no rows
	DataOnly       bool          // rows, no schema
	PreserveRowids bool          // keep implicit rowids, as sqlite3 --preserve-rowids
	ChunkSize      int           // rows per page; 0 means DefaultChunkSize
	BusyTimeout    time.Duration // how long to wait for a locked database; 0 means 5s
	// DigestOnly computes the digests of Format's plan and writes no
	// bytes (verification); it is not part of the dump's content.
	DigestOnly bool `json:"-"`
	// NoDigests skips the per-table digests (docs/verify.md), for a dump
	// that writes no manifest: they cost a hash over every value, and
	// the cursor then carries none. It is not part of the dump's content.
	NoDigests bool `json:"-"`
	// Gate, if set, is shared by dumps that must not take every core
	// between them (see Gate). It is not part of the dump's content.
	Gate *Gate `json:"-"`
	// Readers is how many connections, all on the snapshot, read a rowid
	// table at once (split.go), 1 to MaxReaders; 0 means 2 on a machine
	// with more than one core, unless the Gate has one slot, else 1. It
	// is not part of the dump's content: the output is the same.
	Readers int `json:"-"`
}

// Cursor is a resumable position at a page boundary of the uncompressed
// output. It is JSON-serialisable; package jobs persists it.
type Cursor struct {
	Step       int    `json:"step"`            // index of the current step in the plan (schema, tables, trailer)
	Table      string `json:"table,omitempty"` // table being dumped at Step, to detect schema drift
	After      Key    `json:"after,omitempty"` // last key written in Table; nil means the table's start
	Bytes      int64  `json:"bytes"`           // uncompressed bytes written before this position
	Rows       int64  `json:"rows"`            // rows written before this position
	TableRows  int64  `json:"tableRows"`       // rows of Table written before this position
	TablesDone int    `json:"tablesDone"`      // tables finished before this position
	Done       bool   `json:"done"`            // the dump is complete
	State      []byte `json:"state,omitempty"` // format-specific state (for example the zip directory so far)
	// Digest is the per-table digest state (docs/verify.md). A cursor
	// past the start without it resumes without digests.
	Digest *DigestState `json:"digest,omitempty"`
}

// Key is a keyset-pagination key: the rowid, or the primary key values of
// a WITHOUT ROWID table, each with its storage class, so that it survives
// a JSON round trip exactly.
type Key []KeyValue

// KeyValue is one typed key component.
type KeyValue struct {
	Type string `json:"t"` // "integer", "real", "text", "text-base64" (text that is not valid UTF-8), "blob", "null"
	V    string `json:"v"` // integer in decimal, real as its IEEE-754 bits in hex, text as-is, blob and text-base64 as base64
}

// Plan describes what a dump of the opened snapshot will contain.
type Plan struct {
	Tables         []TableInfo // selected tables, in dump order
	EstimatedBytes int64       // estimate of the uncompressed output size
	PageSize       int64       // the database's page size
	PageCount      int64       // the database's page count in the snapshot
}

// TableInfo describes one selected table.
type TableInfo struct {
	Name          string
	WithoutRowid  bool
	Virtual       bool
	EstimatedRows int64
}
