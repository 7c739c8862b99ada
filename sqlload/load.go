// Package sqlload streams a SQL script, typically a dump written by
// sluice or by the sqlite3 shell's .dump, into a SQLite connection one
// statement at a time, holding only the current statement in memory.
//
// Statements are split the way sqlite3_complete splits them: at a
// semicolon outside quotes, identifiers and comments, except that a
// CREATE TRIGGER statement ends only at "END;".
//
// With Options.Atomic the whole script runs in one transaction, all or
// nothing. Dumps carry their own BEGIN TRANSACTION and COMMIT; in atomic
// mode those are skipped (the loader owns the transaction), leading
// PRAGMAs (such as the dump's "PRAGMA foreign_keys=OFF", which SQLite
// ignores inside a transaction) run before the transaction starts, and a
// ROLLBACK in the script fails the load, since .dump writes one only when
// it met errors. SAVEPOINT, RELEASE and ROLLBACK TO nest inside the
// transaction and run as written.
package sqlload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"zombiezen.com/go/sqlite"
)

// DefaultMaxStatementBytes is the largest single statement accepted when
// Options.MaxStatementBytes is zero. It equals SQLite's default
// SQLITE_MAX_SQL_LENGTH.
const DefaultMaxStatementBytes = 1_000_000_000

// Options control a Load.
type Options struct {
	// Atomic runs the whole script in one transaction: if any statement
	// fails, nothing is applied.
	Atomic bool
	// MaxStatementBytes bounds the memory one statement may take; 0
	// means DefaultMaxStatementBytes.
	MaxStatementBytes int

	// literalSQL (tests) sends every statement through SQLite, without
	// the INSERT fast path.
	literalSQL bool
}

// Stats reports what a Load did.
type Stats struct {
	Statements int64 `json:"statements"` // statements executed (skipped BEGIN/COMMIT not counted)
	Bytes      int64 `json:"bytes"`      // bytes read from the input
}

// Error is a failed statement. It carries the statement's 1-based
// number in the script and SQLite's message (or the splitter's).
type Error struct {
	Statement int64  // 1-based number of the statement in the script
	SQL       string // the start of the statement, for the message
	Err       error
}

func (e *Error) Error() string {
	if e.SQL == "" {
		return fmt.Sprintf("sqlload: statement %d: %v", e.Statement, e.Err)
	}
	return fmt.Sprintf("sqlload: statement %d (%s): %v", e.Statement, e.SQL, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrRollback is reported (wrapped in *Error) when an atomic load meets a
// ROLLBACK statement in the script.
var ErrRollback = errors.New("script rolls back its transaction (a dump written with errors?)")

// Load reads SQL statements from r and executes them on conn until r is
// exhausted, ctx is done or a statement fails. conn must not be inside a
// transaction when Atomic is set. The connection's foreign_keys setting
// is restored and writable_schema turned off before Load returns.
func Load(ctx context.Context, conn *sqlite.Conn, r io.Reader, opts Options) (st Stats, err error) {
	max := opts.MaxStatementBytes
	if max <= 0 {
		max = DefaultMaxStatementBytes
	}
	if opts.Atomic && !conn.AutocommitEnabled() {
		return st, fmt.Errorf("sqlload: atomic load inside an open transaction")
	}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("sqlload: %w", err)
	}
	old := conn.SetInterrupt(ctx.Done())
	defer conn.SetInterrupt(old)

	fk, err := pragmaInt(conn, "foreign_keys")
	if err != nil {
		return st, fmt.Errorf("sqlload: read foreign_keys: %w", err)
	}
	sp := newSplitter(r, max)
	inTx := false
	schemaWritten := false
	defer func() {
		st.Bytes = sp.n
		if inTx && !conn.AutocommitEnabled() {
			// Roll back on a context that is not cancelled, or SQLite
			// would refuse the rollback as interrupted.
			conn.SetInterrupt(nil)
			if rbErr := execSimple(conn, "ROLLBACK"); rbErr != nil && err == nil {
				err = fmt.Errorf("sqlload: rollback: %w", rbErr)
			}
		}
		conn.SetInterrupt(nil)
		_ = execSimple(conn, "PRAGMA writable_schema=OFF")
		if schemaWritten {
			// Rows written straight into sqlite_schema (virtual
			// tables) are not in this connection's schema cache yet.
			_ = execSimple(conn, "PRAGMA writable_schema=RESET")
		}
		if now, perr := pragmaInt(conn, "foreign_keys"); perr == nil && now != fk {
			_ = execSimple(conn, fmt.Sprintf("PRAGMA foreign_keys=%d", fk))
		}
	}()

	ins := newInserter(conn)
	defer ins.close() // before the deferred rollback above
	var n int64       // statement number in the script
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("sqlload: %w", err)
		}
		stmt, first, serr := sp.next()
		if serr == io.EOF {
			break
		}
		n++
		if serr != nil {
			return st, &Error{Statement: n, Err: serr}
		}
		// The fast path needs no string copy of the statement.
		var text string
		if first != "INSERT" || opts.literalSQL {
			text = string(stmt)
		}
		if opts.Atomic {
			switch first {
			case "BEGIN":
				continue
			case "COMMIT", "END":
				continue
			case "ROLLBACK":
				if !isRollbackTo(text) {
					return st, &Error{Statement: n, SQL: preview(text), Err: ErrRollback}
				}
			}
			if !inTx && first != "PRAGMA" {
				if err := execSimple(conn, "BEGIN IMMEDIATE"); err != nil {
					return st, fmt.Errorf("sqlload: begin: %w", err)
				}
				inTx = true
			}
		}
		if first == "PRAGMA" && strings.Contains(strings.ToLower(text), "writable_schema") {
			schemaWritten = true
		}
		var handled bool
		if first == "INSERT" && !opts.literalSQL {
			handled, err = ins.exec(stmt)
		}
		if !handled {
			if text == "" {
				text = string(stmt)
			}
			err = execScript(conn, text)
		}
		if err != nil {
			if text == "" {
				text = string(stmt)
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = fmt.Errorf("%w (%v)", ctxErr, err)
			}
			return st, &Error{Statement: n, SQL: preview(text), Err: err}
		}
		st.Statements++
	}
	if inTx {
		if err := execSimple(conn, "COMMIT"); err != nil {
			return st, fmt.Errorf("sqlload: commit: %w", err)
		}
		inTx = false
	}
	return st, nil
}

// execScript runs every statement in text (the splitter hands over one,
// plus perhaps trailing comments), stepping through any result rows.
func execScript(conn *sqlite.Conn, text string) error {
	for len(text) > 0 {
		stmt, trailing, err := conn.PrepareTransient(text)
		if err != nil {
			return err
		}
		text = text[len(text)-trailing:]
		if stmt == nil {
			continue // only whitespace or comments
		}
		for {
			row, err := stmt.Step()
			if err != nil {
				stmt.Finalize()
				return err
			}
			if !row {
				break
			}
		}
		if err := stmt.Finalize(); err != nil {
			return err
		}
	}
	return nil
}

func execSimple(conn *sqlite.Conn, sql string) error {
	return execScript(conn, sql)
}

func pragmaInt(conn *sqlite.Conn, name string) (int64, error) {
	stmt, _, err := conn.PrepareTransient("PRAGMA " + name)
	if err != nil {
		return 0, err
	}
	defer stmt.Finalize()
	row, err := stmt.Step()
	if err != nil {
		return 0, err
	}
	if !row {
		return 0, nil
	}
	return stmt.ColumnInt64(0), nil
}

// isRollbackTo reports whether a ROLLBACK statement names a savepoint.
func isRollbackTo(text string) bool {
	f := strings.Fields(strings.ToUpper(text))
	for _, w := range f[1:] {
		w = strings.TrimSuffix(w, ";")
		switch w {
		case "TRANSACTION", "":
			continue
		case "TO":
			return true
		}
		return false
	}
	return false
}

// preview shortens a statement for an error message.
func preview(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
