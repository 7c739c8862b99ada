package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// db is one hosted database: its path and a pool of read-write
// connections for queries and imports. Exports open their own read-only
// connection so that a long read transaction never holds a pool slot.
type db struct {
	name string
	path string
	pool *connPool
}

// dbOptions configure a hosted database's connections.
type dbOptions struct {
	poolSize int
	// journalSizeLimit is PRAGMA journal_size_limit on every pooled
	// connection: the size, in bytes, the WAL is truncated to after a
	// checkpoint resets it (-1: never truncated, SQLite's default).
	journalSizeLimit int64
}

func openDB(name, path string, opts dbOptions, logger *slog.Logger) (*db, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
	}
	// One connection first, to switch the file to WAL (a persistent
	// setting) before the pool opens the rest.
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		return nil, fmt.Errorf("database %s: open %s: %w", name, path, err)
	}
	mode, err := pragmaText(conn, "PRAGMA journal_mode=WAL")
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("database %s: set WAL: %w", name, err)
	}
	if !strings.EqualFold(mode, "wal") {
		logger.Warn("database is not in WAL mode: exports may block writers", "db", name, "journal_mode", mode)
	}
	open := func() (*sqlite.Conn, error) {
		conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		// Per connection: the connection whose commit runs the
		// automatic checkpoint is the one that truncates the WAL.
		if err := exec(conn, fmt.Sprintf("PRAGMA journal_size_limit=%d", opts.journalSizeLimit)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("set journal_size_limit: %w", err)
		}
		return conn, nil
	}
	// Fail at startup, not at the first request, when the file cannot
	// be opened read-write.
	conn, err = open()
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	conn.Close()
	return &db{name: name, path: path, pool: newConnPool(name, opts.poolSize, open)}, nil
}

func (d *db) close() error {
	if err := d.pool.close(); err != nil {
		return fmt.Errorf("database %s: close: %w", d.name, err)
	}
	return nil
}

// take returns a pooled connection for a request that uses it as use
// says; its statements are interrupted when ctx ends. Release it with
// put, which rolls back an open transaction and drops a connection the
// request left state on (see connPool).
func (d *db) take(ctx context.Context, use connUse) (*sqlite.Conn, error) {
	return d.pool.take(ctx, use)
}

// put returns a connection to the pool.
func (d *db) put(conn *sqlite.Conn) {
	d.pool.put(conn)
}

// openRead opens a dedicated read-only connection for a streaming export.
func (d *db) openRead() (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(d.path, sqlite.OpenReadOnly)
	if err != nil {
		return nil, fmt.Errorf("database %s: open read-only: %w", d.name, err)
	}
	return conn, nil
}

// tableKind returns "table" or "view" for an existing table or view, or a
// 404 error. Names are matched exactly, as SQLite stores them.
func tableKind(conn *sqlite.Conn, table string) (string, error) {
	var kind string
	err := sqlitex.Execute(conn, "SELECT type FROM sqlite_schema WHERE name = ? AND type IN ('table','view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", &sqlitex.ExecOptions{
		Args: []any{table},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			kind = stmt.ColumnText(0)
			return nil
		},
	})
	if err != nil {
		return "", err
	}
	if kind == "" {
		return "", apiErr(http.StatusNotFound, "unknown_table", fmt.Sprintf("Table '%s' does not exist.", table))
	}
	return kind, nil
}

// columns returns a table's column names, hidden and generated ones
// included, in order, with whether each can be written.
func columns(conn *sqlite.Conn, table string) (names []string, writable map[string]bool, err error) {
	writable = map[string]bool{}
	err = sqlitex.Execute(conn, "SELECT name, hidden FROM pragma_table_xinfo(?)", &sqlitex.ExecOptions{
		Args: []any{table},
		ResultFunc: func(stmt *sqlite.Stmt) error {
			n := stmt.ColumnText(0)
			names = append(names, n)
			// hidden: 0 normal, 1 hidden (virtual tables), 2/3 generated.
			writable[n] = stmt.ColumnInt(1) == 0
			return nil
		},
	})
	return names, writable, err
}

func exec(conn *sqlite.Conn, sql string) error {
	return sqlitex.ExecuteTransient(conn, sql, nil)
}

func pragmaText(conn *sqlite.Conn, sql string) (string, error) {
	var out string
	err := sqlitex.ExecuteTransient(conn, sql, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			out = stmt.ColumnText(0)
			return nil
		},
	})
	return out, err
}

// quoteIdent quotes an identifier for SQL text.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
