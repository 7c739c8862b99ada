package sqlload

import (
	"errors"
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/sluice-dev/sluice"
)

// ErrNotAllowed is reported (wrapped in *Error) for a statement that a
// dump never needs and that could reach past the database being loaded:
// ATTACH, DETACH, VACUUM (INTO), TEMP objects, any PRAGMA but
// foreign_keys, and writes into sqlite_schema other than sqlite3 .dump's
// virtual-table rows. It wraps sluice.ErrInvalid.
var ErrNotAllowed = fmt.Errorf("%w: not allowed in a dump", sluice.ErrInvalid)

// ErrTooLong is reported (wrapped in *Error) for a statement over
// Options.MaxStatementBytes. It wraps sluice.ErrTooLarge.
var ErrTooLong = fmt.Errorf("%w: statement too long", sluice.ErrTooLarge)

// guard is the authorizer a Load runs the script under. Untrusted dumps
// are its reason: a dump is a program, and SQLite would run whatever it
// says with the loading process's rights (ATTACH writes any file the
// process can, VACUUM INTO creates one). The policy is an allow-list of
// what sqlite3 .dump and sluice dump emit, which is plain DDL and DML on
// the main database.
type guard struct {
	// trusted is set while Load runs statements of its own.
	trusted bool
	// atomic refuses the script's own transaction control, which the
	// loader replaces with its transaction.
	atomic bool
	// denied is why the last refused action was refused.
	denied string
	// next is the connection's own authorizer, consulted after the
	// guard allows an action.
	next sqlite.Authorizer
}

func (g *guard) Authorize(a sqlite.Action) sqlite.AuthResult {
	if !g.trusted {
		if why := refuse(a, g.atomic); why != "" {
			g.denied = why
			return sqlite.AuthResultDeny
		}
	}
	if g.next != nil {
		return g.next.Authorize(a)
	}
	return sqlite.AuthResultOK
}

// refuse returns why a dump may not do a, or "".
func refuse(a sqlite.Action, atomic bool) string {
	switch a.Type() {
	case sqlite.OpAttach:
		// VACUUM and VACUUM INTO attach their target, so this
		// covers them too.
		return "ATTACH and VACUUM reach files other than the database"
	case sqlite.OpDetach:
		return "DETACH"
	case sqlite.OpPragma:
		if strings.EqualFold(a.Pragma(), "foreign_keys") {
			return ""
		}
		return "PRAGMA " + strings.ToLower(a.Pragma()) + " (a dump may only set foreign_keys, and writable_schema around sqlite3 .dump's virtual-table rows)"
	case sqlite.OpCreateTempIndex, sqlite.OpCreateTempTable, sqlite.OpCreateTempTrigger, sqlite.OpCreateTempView:
		return "TEMP objects"
	case sqlite.OpTransaction:
		if atomic {
			return "transaction control inside the loader's transaction"
		}
	case sqlite.OpRead, sqlite.OpSelect, sqlite.OpFunction:
		return ""
	}
	if a.Database() == "temp" {
		// A TEMP trigger on a main table is reported in main; its row
		// goes into the temp schema, which shows here.
		return "TEMP objects"
	}
	return ""
}

// refused wraps a statement's error with the guard's reason when the
// guard refused it.
func (g *guard) refused(err error) error {
	if g.denied == "" || sqlite.ErrCode(err) != sqlite.ResultAuth && !strings.Contains(err.Error(), "not authorized") {
		return err
	}
	return fmt.Errorf("%w: %s", ErrNotAllowed, g.denied)
}

// parseWritableSchema recognises "PRAGMA writable_schema=ON" and "=OFF"
// as dumps write them, returning the value.
func parseWritableSchema(stmt string) (on, ok bool) {
	t := newLexer(stmt)
	if !t.word("PRAGMA") {
		return false, false
	}
	if !t.word("writable_schema") {
		return false, false
	}
	open := t.next()
	if open != "=" && open != "(" {
		return false, false
	}
	v := strings.ToLower(t.next())
	if open == "(" && t.next() != ")" {
		return false, false
	}
	if !t.end() {
		return false, false
	}
	switch v {
	case "on", "1", "true", "yes":
		return true, true
	case "off", "0", "false", "no":
		return false, true
	}
	return false, false
}

// vtableRow is a row sqlite3 .dump writes into sqlite_schema for a
// virtual table.
type vtableRow struct{ name, sql string }

var errNotVTableRow = errors.New("not a virtual-table row")

// parseVTableRow recognises the statement sqlite3 .dump (and sluice
// dump) write for a virtual table:
//
//	INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table','t','t',0,'CREATE VIRTUAL TABLE t USING m(...)');
//
// (sqlite_master in older versions), and nothing else.
func parseVTableRow(stmt string) (vtableRow, error) {
	t := newLexer(stmt)
	if !t.word("INSERT") || !t.word("INTO") {
		return vtableRow{}, errNotVTableRow
	}
	if tbl := strings.ToLower(t.next()); tbl != "sqlite_schema" && tbl != "sqlite_master" {
		return vtableRow{}, errNotVTableRow
	}
	for _, want := range []string{"(", "type", ",", "name", ",", "tbl_name", ",", "rootpage", ",", "sql", ")", "VALUES", "("} {
		if !strings.EqualFold(t.next(), want) {
			return vtableRow{}, errNotVTableRow
		}
	}
	var vals []string
	for i := 0; i < 5; i++ {
		if i > 0 && t.next() != "," {
			return vtableRow{}, errNotVTableRow
		}
		v, isStr := t.value()
		if isStr != (i != 3) {
			return vtableRow{}, errNotVTableRow
		}
		vals = append(vals, v)
	}
	if t.next() != ")" || !t.end() {
		return vtableRow{}, errNotVTableRow
	}
	if vals[0] != "table" || vals[1] != vals[2] || vals[3] != "0" {
		return vtableRow{}, errNotVTableRow
	}
	if f := strings.Fields(vals[4]); len(f) < 4 || !strings.EqualFold(f[0], "CREATE") || !strings.EqualFold(f[1], "VIRTUAL") || !strings.EqualFold(f[2], "TABLE") {
		return vtableRow{}, errNotVTableRow
	}
	return vtableRow{name: vals[1], sql: vals[4]}, nil
}

// lexer splits a short statement into SQL tokens: words, numbers,
// string literals and single punctuation characters. Whitespace and
// comments are skipped. It is only used on statements that start like
// the two forms above, to tell them apart from anything else.
type lexer struct {
	s   string
	pos int
	// str is set when the last token was a string literal; tok is
	// then its unquoted value.
	str bool
}

func newLexer(s string) *lexer { return &lexer{s: s} }

func (l *lexer) skip() {
	for l.pos < len(l.s) {
		switch c := l.s[l.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			l.pos++
		case strings.HasPrefix(l.s[l.pos:], "--"):
			if i := strings.IndexByte(l.s[l.pos:], '\n'); i >= 0 {
				l.pos += i + 1
			} else {
				l.pos = len(l.s)
			}
		case strings.HasPrefix(l.s[l.pos:], "/*"):
			if i := strings.Index(l.s[l.pos+2:], "*/"); i >= 0 {
				l.pos += i + 4
			} else {
				l.pos = len(l.s)
			}
		default:
			return
		}
	}
}

// next returns the next token ("" at the end, or for a malformed
// string literal).
func (l *lexer) next() string {
	l.skip()
	l.str = false
	if l.pos >= len(l.s) {
		return ""
	}
	start := l.pos
	c := l.s[l.pos]
	switch {
	case c == '\'':
		var b strings.Builder
		for i := l.pos + 1; i < len(l.s); i++ {
			if l.s[i] != '\'' {
				b.WriteByte(l.s[i])
				continue
			}
			if i+1 < len(l.s) && l.s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			l.pos = i + 1
			l.str = true
			return b.String()
		}
		l.pos = len(l.s)
		return ""
	case isIdent(c):
		for l.pos < len(l.s) && isIdent(l.s[l.pos]) {
			l.pos++
		}
		return l.s[start:l.pos]
	}
	l.pos++
	return l.s[start:l.pos]
}

// value returns the next token and whether it was a string literal.
func (l *lexer) value() (string, bool) {
	v := l.next()
	return v, l.str
}

// word consumes the next token if it is kw (any case).
func (l *lexer) word(kw string) bool {
	save := l.pos
	if tok := l.next(); !l.str && strings.EqualFold(tok, kw) {
		return true
	}
	l.pos = save
	return false
}

// end reports whether only a ';' (or nothing) is left.
func (l *lexer) end() bool {
	for {
		switch l.next() {
		case "":
			return l.pos >= len(l.s)
		case ";":
			continue
		default:
			return false
		}
	}
}
