package sqlload

import (
	"encoding/hex"
	"strconv"

	"zombiezen.com/go/sqlite"

	"github.com/sluice-dev/sluice/internal/sqlreal"
)

// The INSERT fast path. A dump is almost all statements of the form
//
//	INSERT INTO <table>[(<columns>)] VALUES(<literal>,<literal>,...);
//
// Letting SQLite parse and compile each one costs more than the insert
// itself. inserter parses the literals in Go and binds them to one
// prepared statement per (prefix, arity), which SQLite compiles once.
// Only the literals dumps write take this path — integers, reals, 'text'
// with doubled quotes, X'hex' blobs and NULL, with no spaces between
// them; any other statement (an expression such as replace(...) or
// (m*2^k), a column default, an INSERT … SELECT) returns handled=false
// and runs through SQLite as written. Binding a value stores exactly what
// the same literal would: affinity applies to parameters as to literals,
// and REAL literals are parsed as the sqlite3 shell parses them
// (package sqlreal), so the result matches `sqlite3 new.db < dump.sql`.
type inserter struct {
	conn  *sqlite.Conn
	stmts map[string]*sqlite.Stmt // by prefix + arity
	vals  []literal
	reals sqlreal.Parser
	key   []byte
	sql   []byte
}

// maxCachedInserts bounds the prepared statements kept: one per table
// and column list, in practice.
const maxCachedInserts = 256

type literalKind uint8

const (
	litNull literalKind = iota
	litInt
	litReal
	litText
	litBlob
)

type literal struct {
	kind literalKind
	i    int64
	f    float64
	b    []byte // text or blob bytes, or the raw hex of a blob
}

func newInserter(conn *sqlite.Conn) *inserter {
	return &inserter{conn: conn, stmts: map[string]*sqlite.Stmt{}}
}

// close finalizes the cached statements.
func (in *inserter) close() {
	for k, st := range in.stmts {
		st.Finalize()
		delete(in.stmts, k)
	}
}

// exec runs stmt if it is a plain INSERT of literals; handled is false
// (and nothing ran) otherwise.
func (in *inserter) exec(stmt []byte) (handled bool, err error) {
	const head = "INSERT INTO "
	// The splitter leaves the whitespace before a statement on it.
	for len(stmt) > 0 && (stmt[0] == '\n' || stmt[0] == ' ' || stmt[0] == '\r' || stmt[0] == '\t') {
		stmt = stmt[1:]
	}
	if len(stmt) < len(head) || string(stmt[:len(head)]) != head {
		return false, nil
	}
	p := valuesStart(stmt, len(head))
	if p < 0 {
		return false, nil
	}
	prefix := stmt[:p] // through "VALUES("
	vals, ok := in.parseValues(stmt[p:])
	if !ok {
		return false, nil
	}
	in.vals = vals
	st, err := in.prepare(prefix, len(vals))
	if err != nil {
		return false, nil // let SQLite report it on the statement as written
	}
	for i := range vals {
		v := &vals[i]
		switch v.kind {
		case litInt:
			st.BindInt64(i+1, v.i)
		case litReal:
			st.BindFloat(i+1, v.f)
		case litText:
			st.BindText(i+1, string(v.b))
		case litBlob:
			st.BindBytes(i+1, v.b)
		default:
			st.BindNull(i + 1)
		}
	}
	_, err = st.Step()
	if rerr := st.Reset(); err == nil && rerr != nil {
		err = rerr
	}
	return true, err
}

// prepare returns the cached statement for prefix with n parameters.
func (in *inserter) prepare(prefix []byte, n int) (*sqlite.Stmt, error) {
	in.key = strconv.AppendInt(append(in.key[:0], prefix...), int64(n), 10)
	if st, ok := in.stmts[string(in.key)]; ok {
		return st, nil
	}
	sql := append(in.sql[:0], prefix...)
	for i := 0; i < n; i++ {
		if i > 0 {
			sql = append(sql, ',')
		}
		sql = append(sql, '?')
	}
	sql = append(sql, ')')
	in.sql = sql
	st, _, err := in.conn.PrepareTransient(string(sql))
	if err != nil {
		return nil, err
	}
	if st == nil || st.BindParamCount() != n {
		if st != nil {
			st.Finalize()
		}
		return nil, errNotPlain
	}
	if len(in.stmts) >= maxCachedInserts {
		in.close()
	}
	in.stmts[string(in.key)] = st
	return st, nil
}

type notPlainError struct{}

func (notPlainError) Error() string { return "not a plain INSERT" }

var errNotPlain error = notPlainError{}

// valuesStart returns the offset just after the "VALUES(" that ends an
// INSERT's prefix, skipping quoted identifiers, or -1.
func valuesStart(s []byte, i int) int {
	const kw = "VALUES("
	for i < len(s) && i < 8192 {
		switch c := s[i]; c {
		case '"', '`':
			i = skipQuoted(s, i, c)
		case '[':
			for i++; i < len(s) && s[i] != ']'; i++ {
			}
			i++
		case '\'', ';', '-', '/':
			return -1 // a string, comment or end where none belongs
		case 'V':
			if len(s)-i >= len(kw) && string(s[i:i+len(kw)]) == kw && i > 0 && (s[i-1] == ' ' || s[i-1] == ')') {
				return i + len(kw)
			}
			i++
		default:
			i++
		}
	}
	return -1
}

// skipQuoted returns the offset after the quoted token starting at s[i].
func skipQuoted(s []byte, i int, q byte) int {
	for i++; i < len(s); i++ {
		if s[i] == q {
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

// parseValues parses "lit,lit,...);" with nothing but whitespace after.
func (in *inserter) parseValues(s []byte) ([]literal, bool) {
	vals := in.vals[:0]
	i := 0
	for {
		var v literal
		var ok bool
		v, i, ok = in.parseLiteral(s, i)
		if !ok {
			return nil, false
		}
		vals = append(vals, v)
		if i >= len(s) {
			return nil, false
		}
		if s[i] == ',' {
			i++
			continue
		}
		if s[i] != ')' {
			return nil, false
		}
		i++
		break
	}
	if i >= len(s) || s[i] != ';' {
		return nil, false
	}
	for _, c := range s[i+1:] {
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return nil, false
		}
	}
	return vals, true
}

// parseLiteral parses one literal at s[i:].
func (in *inserter) parseLiteral(s []byte, i int) (literal, int, bool) {
	if i >= len(s) {
		return literal{}, i, false
	}
	switch c := s[i]; {
	case c == '\'':
		return parseText(s, i)
	case c == 'X' && i+1 < len(s) && s[i+1] == '\'':
		j := i + 2
		for j < len(s) && s[j] != '\'' {
			j++
		}
		if j >= len(s) || (j-i-2)%2 != 0 {
			return literal{}, i, false
		}
		b, err := hex.AppendDecode(nil, s[i+2:j])
		if err != nil {
			return literal{}, i, false
		}
		return literal{kind: litBlob, b: b}, j + 1, true
	case c == 'N':
		if len(s)-i >= 4 && string(s[i:i+4]) == "NULL" {
			return literal{kind: litNull}, i + 4, true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return in.parseNumber(s, i)
	}
	return literal{}, i, false
}

// parseText parses a quoted string with doubled quotes.
func parseText(s []byte, i int) (literal, int, bool) {
	var b []byte
	start := i + 1
	for j := start; j < len(s); j++ {
		if s[j] != '\'' {
			continue
		}
		if j+1 < len(s) && s[j+1] == '\'' {
			b = append(b, s[start:j+1]...)
			start = j + 2
			j++
			continue
		}
		if b == nil {
			b = s[start:j:j]
		} else {
			b = append(b, s[start:j]...)
		}
		return literal{kind: litText, b: b}, j + 1, true
	}
	return literal{}, i, false
}

// parseNumber parses an integer or real literal with an optional '-'.
func (in *inserter) parseNumber(s []byte, i int) (literal, int, bool) {
	j := i
	if s[j] == '-' {
		j++
	}
	digits := j
	real := false
	for ; j < len(s); j++ {
		c := s[j]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' || c == 'e' || c == 'E':
			real = true
		case (c == '+' || c == '-') && (s[j-1] == 'e' || s[j-1] == 'E'):
		default:
			goto end
		}
	}
end:
	if j == digits || s[digits] < '0' || s[digits] > '9' {
		return literal{}, i, false
	}
	lit := s[i:j]
	if real && !validReal(lit[digits-i:]) {
		return literal{}, i, false
	}
	if !real {
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			return literal{}, i, false // beyond int64: SQLite makes it a REAL
		}
		return literal{kind: litInt, i: n}, j, true
	}
	return literal{kind: litReal, f: in.reals.Parse(lit)}, j, true
}

// validReal reports whether s is digits[.digits][(e|E)[+|-]digits].
func validReal(s []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
