package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
	"zombiezen.com/go/sqlite"
)

// DefaultBusyTimeout is how long Open waits for a locked database when
// Options.BusyTimeout is zero.
const DefaultBusyTimeout = 5 * time.Second

// Source is one opened database snapshot. It holds a read transaction
// from Open to Close, so every Dump on it reads the same snapshot. A
// Source is not safe for concurrent Dumps; Dump serialises them.
type Source struct {
	log  *slog.Logger
	path string // as given, for messages
	abs  string // absolute, for further connections
	opts Options
	conn *sqlite.Conn
	// extra are split reading's further connections on the snapshot
	// (split.go).
	extra []*sqlite.Conn
	steps []step
	plan  Plan
	utf16 bool

	largeReads atomic.Int64 // values read with blob I/O (by the readers; read after Dump)

	mu     sync.Mutex // held by Dump and Close
	closed bool
}

// Open opens the database at path read-only, starts one read transaction
// (pinning the snapshot with a first read) and plans the dump. The file is
// never created or modified.
func Open(ctx context.Context, path string, opts Options, logger *slog.Logger) (*Source, error) {
	if logger == nil {
		return nil, fmt.Errorf("dump: open: %w: nil logger", sluice.ErrInvalid)
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dump: open %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dump: open %s: %w", path, err)
	}
	if err := checkFile(abs); err != nil {
		return nil, fmt.Errorf("dump: open %s: %w", path, err)
	}
	conn, err := openReadOnly(abs)
	if err != nil {
		return nil, fmt.Errorf("dump: open %s: %w", path, explain(err))
	}
	s := &Source{log: logger, path: path, abs: abs, opts: opts, conn: conn}
	if err := s.begin(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dump: open %s: %w", path, err)
	}
	if err := s.buildPlan(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dump: open %s: %w", path, err)
	}
	s.openHelpers()
	logger.Debug("dump: opened snapshot", "path", path, "tables", len(s.plan.Tables), "estimated_bytes", s.plan.EstimatedBytes)
	return s, nil
}

// normalize validates opts and fills in defaults.
func (o *Options) normalize() error {
	f, err := sluice.ParseFormat(string(o.Format))
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	o.Format = f
	switch {
	case o.ChunkSize == 0:
		o.ChunkSize = DefaultChunkSize
	case o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize:
		return fmt.Errorf("dump: %w: chunk size %d out of range 1..%d", sluice.ErrInvalid, o.ChunkSize, MaxChunkSize)
	}
	if o.Readers < 0 || o.Readers > MaxReaders {
		return fmt.Errorf("dump: %w: readers %d out of range 1..%d", sluice.ErrInvalid, o.Readers, MaxReaders)
	}
	if o.SchemaOnly && o.DataOnly {
		return fmt.Errorf("dump: %w: schema-only and data-only exclude each other", sluice.ErrInvalid)
	}
	if o.BusyTimeout < 0 {
		return fmt.Errorf("dump: %w: negative busy timeout", sluice.ErrInvalid)
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	return nil
}

// checkFile gives clear errors for the common bad inputs before SQLite
// gives vaguer ones: a missing file, a directory, a file that is not
// SQLite (or is encrypted, which looks the same).
func checkFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no such file: %w", sluice.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: is a directory, not a SQLite database", sluice.ErrInvalid)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 16)
	n, err := io.ReadFull(f, hdr)
	if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
		return nil // an empty file is an empty database to SQLite
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return err
	}
	if !bytes.Equal(hdr[:n], []byte("SQLite format 3\x00")[:n]) || n < 16 {
		return fmt.Errorf("%w: not a SQLite database (bad header; encrypted or not SQLite)", sluice.ErrInvalid)
	}
	return nil
}

// explain turns SQLite result codes into messages an operator can act on.
func explain(err error) error {
	switch sqlite.ErrCode(err).ToPrimary() {
	case sqlite.ResultBusy, sqlite.ResultLocked:
		return fmt.Errorf("database is locked (busy timeout expired): %w", err)
	case sqlite.ResultNotADB:
		return fmt.Errorf("%w: not a SQLite database or encrypted: %v", sluice.ErrInvalid, err)
	case sqlite.ResultCorrupt:
		return fmt.Errorf("database file is corrupt: %w", err)
	case sqlite.ResultCantOpen:
		return fmt.Errorf("cannot open database file: %w", err)
	}
	return err
}

// openReadOnly opens the database file at the absolute path abs
// read-only, never creating it.
func openReadOnly(abs string) (*sqlite.Conn, error) {
	u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro"}
	return sqlite.OpenConn(u.String(), sqlite.OpenReadOnly|sqlite.OpenURI)
}

// begin starts the read transaction and pins its snapshot.
func (s *Source) begin(ctx context.Context) error {
	s.conn.SetInterrupt(ctx.Done())
	defer s.conn.SetInterrupt(nil)
	if err := startRead(s.conn, s.opts.BusyTimeout, nil); err != nil {
		return explain(err)
	}
	enc, err := s.queryText("PRAGMA encoding")
	if err != nil {
		return explain(err)
	}
	s.utf16 = enc != "UTF-8"
	return nil
}

// startRead starts c's read transaction and pins its snapshot: a
// deferred BEGIN takes no lock until the first read, so read the schema
// now. at, if not nil, runs between the BEGIN and that read.
func startRead(c *sqlite.Conn, busyTimeout time.Duration, at func() error) error {
	c.SetBusyTimeout(busyTimeout)
	// A dump reads each page once, in key order; SQLite's default cache
	// (2 MB) only holds pages that are never read again. The b-tree
	// cursors' paths are pinned whatever the size, so 64 pages keep the
	// interior pages the per-page queries descend through and save about
	// 3.5 MB per dump (more than a tenth of a job's memory besides its
	// part buffers) at no cost in CPU.
	if err := execOn(c, "PRAGMA cache_size = 64"); err != nil {
		return err
	}
	if err := execOn(c, "BEGIN"); err != nil {
		return err
	}
	if at != nil {
		if err := at(); err != nil {
			return err
		}
	}
	st, err := c.Prepare("SELECT count(*) FROM sqlite_schema")
	if err != nil {
		return err
	}
	if _, err := st.Step(); err != nil {
		return err
	}
	return st.Reset()
}

// execOn runs on c one statement that returns no rows we need.
func execOn(c *sqlite.Conn, sql string) error {
	st, _, err := c.PrepareTransient(sql)
	if err != nil {
		return err
	}
	defer st.Finalize()
	for {
		ok, err := st.Step()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
	}
}

// queryText returns the first column of the first row of sql as text.
func (s *Source) queryText(sql string, args ...string) (string, error) {
	st, _, err := s.conn.PrepareTransient(sql)
	if err != nil {
		return "", err
	}
	defer st.Finalize()
	for i, a := range args {
		st.BindText(i+1, a)
	}
	ok, err := st.Step()
	if err != nil || !ok {
		return "", err
	}
	return st.ColumnText(0), nil
}

// Plan returns what the dump of this snapshot contains.
func (s *Source) Plan() Plan {
	p := s.plan
	p.Tables = append([]TableInfo(nil), s.plan.Tables...)
	return p
}

// Close ends the read transaction and closes the database. It waits for
// a running Dump to return.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, c := range append([]*sqlite.Conn{s.conn}, s.extra...) {
		_ = execOn(c, "COMMIT") // a read transaction: nothing to commit, ends the snapshot
		errs = append(errs, c.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dump: close %s: %w", s.path, err)
	}
	return nil
}
