package dump

// The csv format: a ZIP stream with one RFC 4180 CSV document per table
// (see docs/formats-csv-json.md for the exact rules). In short, each
// value's storage class can be read back from its lexical form:
//
//	NULL     empty, unquoted
//	TEXT     always quoted ("" is the empty string), bytes as stored
//	INTEGER  unquoted decimal digits
//	REAL     unquoted, always with '.' or an exponent; ±Inf as ±1e999
//	BLOB     unquoted \x followed by lower-case hex

import (
	"bytes"
	"errors"
	"math"
	"strconv"
)

// csvFormatter writes tables as CSV entries of a zip archive, or, when
// plain, the one selected table as a plain CSV document.
type csvFormatter struct {
	z      zipWriter
	plain  bool
	header bool // plain: the header row is written (carried across a resume)
}

var _ formatter = (*csvFormatter)(nil)

// newCSVFormatter returns the formatter of the csv format (a zip).
func newCSVFormatter() formatter { return &csvFormatter{} }

func (f *csvFormatter) begin(b *[]byte)               {}
func (f *csvFormatter) schema(b *[]byte, stmt string) {}

func (f *csvFormatter) beginTable(b *[]byte, t *tableMeta) {
	if f.plain {
		if f.header {
			return // resumed: the header is written
		}
		f.header = true
	} else {
		if f.z.open && f.z.cur.table == t.Name {
			// Resumed inside this table: its entry and header are written.
			return
		}
		f.z.beginEntry(b, t.Name)
	}
	start := len(*b)
	p := *b
	for i, c := range t.Columns {
		if i > 0 {
			p = append(p, ',')
		}
		p = appendCSVQuoted(p, []byte(c))
	}
	p = append(p, '\r', '\n')
	*b = p
	if !f.plain {
		f.z.data((*b)[start:])
	}
}

func (f *csvFormatter) row(b *[]byte, t *tableMeta, vals []Value) {
	start := len(*b)
	p := *b
	for i := range vals {
		if i > 0 {
			p = append(p, ',')
		}
		v := &vals[i]
		switch v.Type {
		case TypeInteger:
			p = strconv.AppendInt(p, v.Int, 10)
		case TypeReal:
			p = appendCSVReal(p, v.Real)
		case TypeText:
			p = appendCSVQuoted(p, v.Bytes)
		case TypeBlob:
			p = append(p, '\\', 'x')
			p = appendHex(p, v.Bytes)
		default: // NULL: an empty unquoted field
		}
	}
	p = append(p, '\r', '\n')
	*b = p
	if !f.plain {
		f.z.data((*b)[start:])
	}
}

func (f *csvFormatter) endTable(b *[]byte, t *tableMeta) {
	if !f.plain {
		f.z.endEntry(b)
	}
}

func (f *csvFormatter) end(b *[]byte) {
	if !f.plain {
		f.z.finish(b)
	}
}

func (f *csvFormatter) state() []byte {
	if f.plain {
		if f.header {
			return []byte{1}
		}
		return nil
	}
	return f.z.appendState(nil)
}

// restore takes back a state from state(); an empty state is the start of
// the output.
func (f *csvFormatter) restore(state []byte) error {
	if f.plain {
		if len(state) > 1 || (len(state) == 1 && state[0] != 1) {
			return errors.New("csv: bad plain formatter state")
		}
		f.header = len(state) == 1
		return nil
	}
	if len(state) == 0 {
		f.z = zipWriter{}
		return nil
	}
	rest, err := f.z.restore(state)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("csv: trailing bytes in formatter state")
	}
	return nil
}

// appendCSVQuoted appends s as a quoted CSV field, doubling its quotes.
// Every other byte (NUL, CR, LF, invalid UTF-8) is written as stored.
func appendCSVQuoted(p []byte, s []byte) []byte {
	p = append(p, '"')
	for {
		i := bytes.IndexByte(s, '"')
		if i < 0 {
			break
		}
		p = append(p, s[:i+1]...)
		p = append(p, '"')
		s = s[i+1:]
	}
	p = append(p, s...)
	return append(p, '"')
}

// appendCSVReal writes a REAL so that it reparses to the same bits and
// reads as a real: SQLite's spelling 1e999 for the infinities (which
// SQLite reads back as ±Inf), NaN (SQLite never stores one) as NaN.
func appendCSVReal(p []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(p, "1e999"...)
	case math.IsInf(f, -1):
		return append(p, "-1e999"...)
	case math.IsNaN(f):
		return append(p, "NaN"...)
	}
	return appendFiniteReal(p, f)
}

// appendFiniteReal appends the shortest decimal that parses back to f,
// in plain notation for 1e-6 <= |f| < 1e21 and exponent notation
// otherwise, and always with a '.' or an exponent so that it reads as a
// real: 1.0, -0.0, 1e+21, 5e-324.
func appendFiniteReal(p []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	start := len(p)
	p = strconv.AppendFloat(p, f, format, -1, 64)
	if format == 'e' || bytes.IndexByte(p[start:], '.') >= 0 {
		return p
	}
	return append(p, '.', '0')
}
