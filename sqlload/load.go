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
//
// A script is untrusted: it runs under an authorizer that refuses what a
// dump never needs (ATTACH, DETACH, VACUUM, TEMP objects, every PRAGMA
// but foreign_keys; see ErrNotAllowed). The one write into sqlite_schema
// that dumps make, sqlite3 .dump's row for a virtual table between
// "PRAGMA writable_schema=ON" and "=OFF", is recognised by its exact
// form and written by the loader itself; the schema is then re-read and
// each such row must define the virtual table it names, before the
// transaction commits.
package sqlload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unsafe"

	"zombiezen.com/go/sqlite"

	"github.com/sluice-dev/sluice"
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
	// means DefaultMaxStatementBytes. A longer statement fails the load
	// with ErrTooLong.
	MaxStatementBytes int
	// Check runs PRAGMA quick_check before an atomic load commits; a
	// database it does not call ok is rolled back.
	Check bool
	// Authorizer is the connection's own authorizer, if it has one. Load
	// consults it for every action its own policy allows, and installs
	// it again when it returns (otherwise the connection is left with
	// none).
	Authorizer sqlite.Authorizer

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
	g := &guard{atomic: opts.Atomic, next: opts.Authorizer}
	if err := conn.SetAuthorizer(g); err != nil {
		return st, fmt.Errorf("sqlload: set authorizer: %w", err)
	}
	defer conn.SetAuthorizer(opts.Authorizer)
	// The loader's own statements below (and in the deferred clean-up)
	// are trusted; only the script's are checked.
	g.trusted = true

	fk, err := pragmaInt(conn, "foreign_keys")
	if err != nil {
		return st, fmt.Errorf("sqlload: read foreign_keys: %w", err)
	}
	sp := newSplitter(r, max)
	inTx := false
	writable := false      // between the script's writable_schema=ON and =OFF
	schemaWritten := false // rows written into sqlite_schema
	defer func() {
		g.trusted = true
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
		if schemaWritten {
			// Rows written straight into sqlite_schema, or rolled
			// back, are not in this connection's schema cache.
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
		// The statement's bytes as a string without a copy: a
		// statement can be as large as MaxStatementBytes, and the driver
		// copies it to C memory to prepare it anyway. stmt stays
		// unchanged until the next sp.next, and nothing keeps text past
		// this iteration (error messages copy a preview).
		text := unsafe.String(unsafe.SliceData(stmt), len(stmt))
		if first == "PRAGMA" {
			if on, ok := parseWritableSchema(text); ok {
				// Not run: the loader writes the rows itself.
				writable = on
				st.Statements++
				continue
			}
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
		var err error
		var vt vtableRow
		perr := errNotVTableRow
		if writable && first == "INSERT" {
			vt, perr = parseVTableRow(text)
		}
		if perr == nil {
			err = insertVTableRow(conn, vt)
			schemaWritten = true
		} else {
			// The INSERT fast path prepares its statements under the
			// same authorizer as everything else the script runs.
			g.trusted, g.denied = false, ""
			handled := false
			if first == "INSERT" && !opts.literalSQL {
				handled, err = ins.exec(stmt)
			}
			if !handled {
				err = execScript(conn, text)
			}
			err = g.refused(err)
			g.trusted = true
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = fmt.Errorf("%w (%v)", ctxErr, err)
			}
			return st, &Error{Statement: n, SQL: preview(text), Err: err}
		}
		st.Statements++
	}
	if inTx && opts.Check {
		if err := quickCheck(conn); err != nil {
			return st, err
		}
	}
	if inTx {
		if err := execSimple(conn, "COMMIT"); err != nil {
			return st, fmt.Errorf("sqlload: commit: %w", err)
		}
		inTx = false
	}
	return st, nil
}

// insertVTableRow writes a virtual table's sqlite_schema row, as the
// script asked in the one form that dumps use, then re-reads the schema
// and checks that it loads and that the row defines the virtual table it
// names. It runs in a savepoint, so a row that fails the check is gone
// again, in a load with or without a transaction of its own: a dump
// cannot leave a schema SQLite cannot load.
func insertVTableRow(conn *sqlite.Conn, vt vtableRow) (err error) {
	if err := execSimple(conn, "SAVEPOINT sqlload_vtable"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = execSimple(conn, "ROLLBACK TO sqlload_vtable")
			_ = execSimple(conn, "PRAGMA writable_schema=RESET")
		}
		if rerr := execSimple(conn, "RELEASE sqlload_vtable"); err == nil {
			err = rerr
		}
	}()
	if err := execSimple(conn, "PRAGMA writable_schema=ON"); err != nil {
		return err
	}
	stmt, err := conn.Prepare("INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql) VALUES('table',?1,?1,0,?2)")
	if err == nil {
		stmt.BindText(1, vt.name)
		stmt.BindText(2, vt.sql)
		_, err = stmt.Step()
		stmt.Reset()
		stmt.ClearBindings()
	}
	if offErr := execSimple(conn, "PRAGMA writable_schema=OFF"); err == nil {
		err = offErr
	}
	if err != nil {
		return err
	}
	if err := execSimple(conn, "PRAGMA writable_schema=RESET"); err != nil {
		return fmt.Errorf("reload schema: %w", err)
	}
	kind := ""
	err = queryEach(conn, "SELECT type FROM pragma_table_list WHERE schema = 'main' AND name = ?1", vt.name, func(s *sqlite.Stmt) { kind = s.ColumnText(0) })
	if err != nil {
		return fmt.Errorf("%w: the row written into sqlite_schema makes a schema SQLite cannot load: %v", ErrNotAllowed, err)
	}
	if kind != "virtual" {
		return fmt.Errorf("%w: the sqlite_schema row for %q does not define that virtual table", ErrNotAllowed, vt.name)
	}
	return nil
}

// queryEach runs a one-parameter query, calling fn for each row.
func queryEach(conn *sqlite.Conn, sql, arg string, fn func(*sqlite.Stmt)) error {
	stmt, _, err := conn.PrepareTransient(sql)
	if err != nil {
		return err
	}
	defer stmt.Finalize()
	stmt.BindText(1, arg)
	for {
		row, err := stmt.Step()
		if err != nil || !row {
			return err
		}
		fn(stmt)
	}
}

// quickCheck runs PRAGMA quick_check and fails unless it says ok.
func quickCheck(conn *sqlite.Conn) error {
	stmt, _, err := conn.PrepareTransient("PRAGMA quick_check")
	if err != nil {
		return fmt.Errorf("sqlload: quick_check: %w", err)
	}
	defer stmt.Finalize()
	var result []string
	for {
		row, err := stmt.Step()
		if err != nil {
			return fmt.Errorf("sqlload: quick_check: %w", err)
		}
		if !row {
			break
		}
		if len(result) < 10 {
			result = append(result, stmt.ColumnText(0))
		}
	}
	if len(result) != 1 || result[0] != "ok" {
		return fmt.Errorf("%w: quick_check failed: %s", sluice.ErrInvalid, strings.Join(result, "; "))
	}
	return nil
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
	if len(s) > 400 {
		s = s[:400] // a statement can be very long
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
