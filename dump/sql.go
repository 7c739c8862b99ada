package dump

import (
	"bytes"
	"fmt"
	"strconv"
)

// sqlFormatter writes the sql format: sqlite3 .dump's text, byte for
// byte, except where .dump loses data (see docs/formats.md).
type sqlFormatter struct {
	dataOnly bool
	prefix   []byte // "INSERT INTO t VALUES(" for the current table
	reals    realWriter
}

var _ formatter = (*sqlFormatter)(nil)

func (f *sqlFormatter) begin(b *[]byte) {
	if !f.dataOnly {
		*b = append(*b, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"...)
	}
}

func (f *sqlFormatter) schema(b *[]byte, stmt string) {
	*b = append(*b, stmt...)
	*b = append(*b, ";\n"...)
}

func (f *sqlFormatter) beginTable(b *[]byte, t *tableMeta) {
	p := append(f.prefix[:0], "INSERT INTO "...)
	p = appendIdent(p, t.Name)
	if t.ExplicitColumns {
		p = append(p, '(')
		for i, c := range t.Columns {
			if i > 0 {
				p = append(p, ',')
			}
			p = appendIdent(p, c)
		}
		p = append(p, ')')
	}
	f.prefix = append(p, " VALUES("...)
}

func (f *sqlFormatter) row(b *[]byte, t *tableMeta, vals []Value) {
	out := append(*b, f.prefix...)
	for i := range vals {
		if i > 0 {
			out = append(out, ',')
		}
		v := &vals[i]
		switch v.Type {
		case TypeInteger:
			out = strconv.AppendInt(out, v.Int, 10)
		case TypeReal:
			out = f.reals.appendReal(out, v.Real)
		case TypeText:
			out = appendSQLText(out, v.Bytes)
		case TypeBlob:
			out = appendBlob(out, v.Bytes)
		default:
			out = append(out, "NULL"...)
		}
	}
	*b = append(out, ");\n"...)
}

func (f *sqlFormatter) endTable(b *[]byte, t *tableMeta) {}

func (f *sqlFormatter) end(b *[]byte) {
	if !f.dataOnly {
		*b = append(*b, "COMMIT;\n"...)
	}
}

// The sql format keeps no state across a resume: every statement is
// complete on its own line and the prefix is rebuilt by beginTable.
func (f *sqlFormatter) state() []byte { return nil }

func (f *sqlFormatter) restore(state []byte) error {
	if len(state) != 0 {
		return fmt.Errorf("dump: sql: unexpected formatter state (%d bytes)", len(state))
	}
	return nil
}

// appendBlob appends X'..' with lower-case hex, as .dump does.
func appendBlob(b []byte, v []byte) []byte {
	b = append(b, "X'"...)
	b = appendHex(b, v)
	return append(b, '\'')
}

// textSpecial marks the bytes that take text off the fast path.
var textSpecial = [256]bool{'\'': true, '\n': true, '\r': true, 0: true}

// appendSQLText appends a TEXT value. Text without quotes, newlines or
// NULs is written as '...', as .dump does. Quotes are doubled; newlines
// and carriage returns are written as .dump writes them, through
// replace(...,'\n',char(10)) with a marker that does not occur in the
// text. Text holding a NUL byte, which .dump truncates, is written as
// CAST(X'..' AS TEXT), which keeps every byte.
func appendSQLText(b []byte, v []byte) []byte {
	special := false
	for _, c := range v {
		if textSpecial[c] {
			special = true
			break
		}
	}
	if !special {
		b = append(b, '\'')
		b = append(b, v...)
		return append(b, '\'')
	}
	if bytes.IndexByte(v, 0) >= 0 {
		b = append(b, "CAST("...)
		b = appendBlob(b, v)
		return append(b, " AS TEXT)"...)
	}
	nNL := bytes.IndexByte(v, '\n') >= 0
	nCR := bytes.IndexByte(v, '\r') >= 0
	var zNL, zCR string
	if nNL {
		b = append(b, "replace("...)
		zNL = unusedMarker(v, `\n`, `\012`)
	}
	if nCR {
		b = append(b, "replace("...)
		zCR = unusedMarker(v, `\r`, `\015`)
	}
	b = append(b, '\'')
	for _, c := range v {
		switch c {
		case '\'':
			b = append(b, '\'', '\'')
		case '\n':
			b = append(b, zNL...)
		case '\r':
			b = append(b, zCR...)
		default:
			b = append(b, c)
		}
	}
	b = append(b, '\'')
	if nCR {
		b = append(b, ",'"...)
		b = append(b, zCR...)
		b = append(b, "',char(13))"...)
	}
	if nNL {
		b = append(b, ",'"...)
		b = append(b, zNL...)
		b = append(b, "',char(10))"...)
	}
	return b
}

// unusedMarker returns a or b if it does not occur in v, else the first
// "(a0)", "(a1)", ... that does not (shell.c unused_string).
func unusedMarker(v []byte, a, b string) string {
	if !bytes.Contains(v, []byte(a)) {
		return a
	}
	if !bytes.Contains(v, []byte(b)) {
		return b
	}
	for i := 0; ; i++ {
		m := "(" + a + strconv.Itoa(i) + ")"
		if !bytes.Contains(v, []byte(m)) {
			return m
		}
	}
}
