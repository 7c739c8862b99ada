// Package state is sluice's own SQLite database (<data-dir>/sluice.db):
// export jobs, their checkpoints, the durable task queue with its leases,
// callback attempts and the last run of each schedule. It is never a
// user's database; nothing in it appears in a dump.
//
// Every multi-row change runs in one transaction through DB.Update, so a
// checkpoint (dump cursor, upload state, leftover bytes, hash state) is
// either wholly written or not at all; the leftover bytes are in a file
// beside the database (leftover.go) that the row names with its SHA-256. Times are stored as Unix
// milliseconds and always come from the caller, so tests can inject a
// clock.
package state

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// FileName is the state database's file name inside the data dir.
const FileName = "sluice.db"

// BusyTimeout is how long a statement waits for another connection or
// process holding the write lock.
const BusyTimeout = 10 * time.Second

// DB is the state database. It is safe for concurrent use.
type DB struct {
	pool *sqlitex.Pool
	path string
	log  *slog.Logger
}

// Open opens (creating if needed) the state database at path, in WAL mode
// with a busy timeout, and applies pending migrations.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	pool, err := sqlitex.NewPool(path, sqlitex.PoolOptions{
		PoolSize: 8,
		PrepareConn: func(conn *sqlite.Conn) error {
			conn.SetBusyTimeout(BusyTimeout)
			// Each pragma alone: ExecuteScript would wrap them in a
			// savepoint, inside which the safety level cannot change.
			for _, p := range []string{"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"} {
				if err := sqlitex.ExecuteTransient(conn, p, nil); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	db := &DB{pool: pool, path: path, log: logger}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	// An hour: no process takes that long between writing a leftover
	// file and committing the checkpoint that names it.
	if n, err := db.SweepLeftovers(ctx, time.Hour); err != nil {
		logger.Warn("state: sweep of unreferenced leftover files failed", "err", err)
	} else if n > 0 {
		logger.Info("state: removed unreferenced leftover files", "files", n)
	}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes every connection.
func (db *DB) Close() error {
	if err := db.pool.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// Tx is an open transaction; its methods are the typed state API.
type Tx struct {
	conn *sqlite.Conn
	db   *DB
	// Files to remove once the transaction has committed, or has not.
	onCommit, onRollback []func()
}

// Update runs fn in an immediate (write) transaction, committed if fn
// returns nil and rolled back otherwise.
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	conn, err := db.pool.Take(ctx)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer db.pool.Put(conn)
	end, err := sqlitex.ImmediateTransaction(conn)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	tx := &Tx{conn: conn, db: db}
	err = runTx(tx, end, fn)
	hooks := tx.onCommit
	if err != nil {
		hooks = tx.onRollback
	}
	for _, h := range hooks {
		h()
	}
	return err
}

// runTx runs fn and ends the transaction, committing on success; a failed
// commit is returned like fn's error.
func runTx(tx *Tx, end func(*error), fn func(tx *Tx) error) (err error) {
	defer end(&err)
	return fn(tx)
}

// View runs fn in a read transaction.
func (db *DB) View(ctx context.Context, fn func(tx *Tx) error) (err error) {
	conn, err := db.pool.Take(ctx)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer db.pool.Put(conn)
	end := sqlitex.Transaction(conn)
	defer end(&err)
	return fn(&Tx{conn: conn, db: db})
}

// SchemaVersion returns the applied schema version.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.View(ctx, func(tx *Tx) error {
		return tx.exec(`SELECT version FROM schema_version`, func(s *sqlite.Stmt) error {
			v = s.ColumnInt(0)
			return nil
		})
	})
	return v, err
}

type migration struct {
	version int
	name    string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("state: bad migration file name %q", e.Name())
		}
		ms = append(ms, migration{version: v, name: e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("state: migrations not numbered 1..n at %q", m.name)
		}
	}
	return ms, nil
}

// migrate applies the embedded migrations newer than schema_version, each
// in the same immediate transaction as the version bump, so two processes
// opening one data dir at once cannot both apply one.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return db.Update(ctx, func(tx *Tx) error {
		if err := tx.exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`, nil); err != nil {
			return fmt.Errorf("state: migrate: %w", err)
		}
		cur := -1
		if err := tx.exec(`SELECT version FROM schema_version`, func(s *sqlite.Stmt) error {
			cur = s.ColumnInt(0)
			return nil
		}); err != nil {
			return fmt.Errorf("state: migrate: %w", err)
		}
		if cur < 0 {
			if err := tx.exec(`INSERT INTO schema_version (version) VALUES (0)`, nil); err != nil {
				return fmt.Errorf("state: migrate: %w", err)
			}
			cur = 0
		}
		if cur > len(ms) {
			return fmt.Errorf("state: database schema version %d is newer than this sluice (%d)", cur, len(ms))
		}
		for _, m := range ms[cur:] {
			script, err := fs.ReadFile(migrationFS, "migrations/"+m.name)
			if err != nil {
				return fmt.Errorf("state: migrate: %w", err)
			}
			if err := sqlitex.ExecuteScript(tx.conn, string(script), nil); err != nil {
				return fmt.Errorf("state: migration %s: %w", m.name, err)
			}
			if err := tx.exec(`UPDATE schema_version SET version = ?`, nil, m.version); err != nil {
				return fmt.Errorf("state: migrate: %w", err)
			}
			db.log.Info("state: applied migration", "name", m.name)
		}
		return nil
	})
}

func (tx *Tx) exec(query string, fn func(*sqlite.Stmt) error, args ...any) error {
	return sqlitex.Execute(tx.conn, query, &sqlitex.ExecOptions{Args: args, ResultFunc: fn})
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func optMS(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func columnOptTime(s *sqlite.Stmt, col int) *time.Time {
	if s.ColumnType(col) == sqlite.TypeNull {
		return nil
	}
	t := fromMS(s.ColumnInt64(col))
	return &t
}

func columnBytes(s *sqlite.Stmt, col int) []byte {
	if s.ColumnType(col) == sqlite.TypeNull {
		return nil
	}
	b := make([]byte, s.ColumnLen(col))
	s.ColumnBytes(col, b)
	return b
}
