package dump

// The json and ndjson formats (see docs/formats-csv-json.md for the exact
// shape). A row is a JSON object keyed by column name. Plain JSON values
// carry NULL (null), INTEGER (a number without '.' or exponent, exact over
// the int64 range), REAL (a number that always has a '.' or an exponent)
// and valid UTF-8 TEXT (a string). Everything else is a one-key object:
//
//	{"$blob":"<base64>"}          BLOB
//	{"$text_base64":"<base64>"}   TEXT that is not valid UTF-8, bytes as stored
//	{"$real":"Infinity"}          also "-Infinity" and "NaN"
//
// json:       {\n"<name>":[\n{row},\n{row}\n],\n...\n}\n  (StarbaseDB's, tables in dump order)
// json-typed: {"tables":[\n{"name":..,"columns":[..],"rows":[\n{row},\n{row}\n]},\n...\n]}\n
// ndjson:     one line per row: {"table":"<name>","row":{row}}\n

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonLayout is one of the JSON formats' shapes.
type jsonLayout int

const (
	jsonKeyed jsonLayout = iota // json: an object keyed by table name
	jsonTyped                   // json-typed: {"tables": [{name, columns, rows}]}
	jsonLines                   // ndjson
)

// jsonFormatter writes the json, json-typed and ndjson formats.
type jsonFormatter struct {
	layout jsonLayout

	// Carried across a resume by state()/restore().
	begun   bool   // the document's opening is written
	tables  int64  // tables begun
	inTable bool   // between beginTable and endTable
	table   string // name of the open table
	rows    int64  // rows written in the open table

	// Derived from the table being written; rebuilt when it changes.
	keysFor *tableMeta
	keys    []byte // `"c0":` `,"c1":` ... concatenated
	keyEnd  []int  // end offset of each column's key in keys
	prefix  []byte // ndjson: `{"table":"<name>","row":{`
}

var _ formatter = (*jsonFormatter)(nil)

// newJSONFormatter returns the formatter of the json-typed format, or of
// the ndjson format when ndjson is true.
func newJSONFormatter(ndjson bool) formatter {
	if ndjson {
		return &jsonFormatter{layout: jsonLines}
	}
	return &jsonFormatter{layout: jsonTyped}
}

func (f *jsonFormatter) begin(b *[]byte) {
	if f.begun {
		return // resumed
	}
	f.begun = true
	switch f.layout {
	case jsonKeyed:
		*b = append(*b, '{')
	case jsonTyped:
		*b = append(*b, `{"tables":[`...)
	}
}

func (f *jsonFormatter) schema(b *[]byte, stmt string) {}

func (f *jsonFormatter) beginTable(b *[]byte, t *tableMeta) {
	f.prepare(t)
	if f.inTable && f.table == t.Name {
		return // resumed inside this table: its opening is written
	}
	if f.inTable {
		f.endTable(b, t)
	}
	f.inTable = true
	f.table = t.Name
	f.rows = 0
	f.tables++
	if f.layout == jsonLines {
		return
	}
	p := *b
	if f.tables > 1 {
		p = append(p, ',')
	}
	if f.layout == jsonKeyed {
		p = append(p, '\n')
		p = appendJSONName(p, t.Name)
		*b = append(p, ':', '[')
		return
	}
	p = append(p, "\n{\"name\":"...)
	p = appendJSONName(p, t.Name)
	p = append(p, `,"columns":[`...)
	for i, c := range t.Columns {
		if i > 0 {
			p = append(p, ',')
		}
		p = appendJSONName(p, c)
	}
	p = append(p, `],"rows":[`...)
	*b = p
}

// prepare builds the per-table key and prefix bytes, so that a row only
// copies them.
func (f *jsonFormatter) prepare(t *tableMeta) {
	f.keysFor = t
	f.keys = f.keys[:0]
	f.keyEnd = f.keyEnd[:0]
	for i, c := range t.Columns {
		if i > 0 {
			f.keys = append(f.keys, ',')
		}
		f.keys = appendJSONName(f.keys, c)
		f.keys = append(f.keys, ':')
		f.keyEnd = append(f.keyEnd, len(f.keys))
	}
	f.prefix = append(f.prefix[:0], `{"table":`...)
	f.prefix = appendJSONName(f.prefix, t.Name)
	f.prefix = append(f.prefix, `,"row":{`...)
}

func (f *jsonFormatter) row(b *[]byte, t *tableMeta, vals []Value) {
	if f.keysFor != t {
		f.prepare(t)
	}
	p := *b
	if f.layout == jsonLines {
		p = append(p, f.prefix...)
	} else {
		if f.rows > 0 {
			p = append(p, ',')
		}
		p = append(p, '\n', '{')
	}
	start := 0
	for i := range vals {
		if i < len(f.keyEnd) {
			p = append(p, f.keys[start:f.keyEnd[i]]...)
			start = f.keyEnd[i]
		}
		p = appendJSONValue(p, &vals[i])
	}
	if f.layout == jsonLines {
		p = append(p, '}', '}', '\n')
	} else {
		p = append(p, '}')
	}
	*b = p
	f.rows++
}

func (f *jsonFormatter) endTable(b *[]byte, t *tableMeta) {
	if !f.inTable {
		return
	}
	f.inTable = false
	f.table = ""
	f.rows = 0
	switch f.layout {
	case jsonKeyed:
		*b = append(*b, "\n]"...)
	case jsonTyped:
		*b = append(*b, "\n]}"...)
	}
}

func (f *jsonFormatter) end(b *[]byte) {
	if f.inTable {
		f.endTable(b, nil)
	}
	switch f.layout {
	case jsonKeyed:
		*b = append(*b, "\n}\n"...)
	case jsonTyped:
		*b = append(*b, "\n]}\n"...)
	}
}

// JSON formatter state, version 1, integers as unsigned varints:
//
//	version(=1) flags(bit0 begun, bit1 inTable) tables rows len(table) table
const jsonStateVersion = 1

func (f *jsonFormatter) state() []byte {
	var flags byte
	if f.begun {
		flags |= 1
	}
	if f.inTable {
		flags |= 2
	}
	p := []byte{jsonStateVersion, flags}
	p = binary.AppendUvarint(p, uint64(f.tables))
	p = binary.AppendUvarint(p, uint64(f.rows))
	p = binary.AppendUvarint(p, uint64(len(f.table)))
	return append(p, f.table...)
}

// restore takes back a state from state(); an empty state is the start of
// the output.
func (f *jsonFormatter) restore(state []byte) error {
	nf := jsonFormatter{layout: f.layout}
	if len(state) == 0 {
		*f = nf
		return nil
	}
	d := stateDecoder{p: state}
	if v := d.uvarint(); d.err == nil && v != jsonStateVersion {
		return errors.New("json: unknown formatter state version " + strconv.FormatUint(v, 10))
	}
	flags := d.byte()
	nf.begun = flags&1 != 0
	nf.inTable = flags&2 != 0
	nf.tables = d.int64()
	nf.rows = d.int64()
	nf.table = d.str()
	if d.err == nil && (flags&^3 != 0 || len(d.p) != 0 || (!nf.inTable && (nf.rows != 0 || nf.table != ""))) {
		d.fail()
	}
	if d.err != nil {
		return d.err
	}
	*f = nf
	return nil
}

// appendJSONValue appends one value; see the file comment for the shape.
func appendJSONValue(p []byte, v *Value) []byte {
	switch v.Type {
	case TypeInteger:
		return strconv.AppendInt(p, v.Int, 10)
	case TypeReal:
		switch {
		case math.IsInf(v.Real, 1):
			return append(p, `{"$real":"Infinity"}`...)
		case math.IsInf(v.Real, -1):
			return append(p, `{"$real":"-Infinity"}`...)
		case math.IsNaN(v.Real):
			return append(p, `{"$real":"NaN"}`...)
		}
		return appendFiniteReal(p, v.Real)
	case TypeText:
		if utf8.Valid(v.Bytes) {
			return appendJSONString(p, v.Bytes)
		}
		p = append(p, `{"$text_base64":"`...)
		p = base64.StdEncoding.AppendEncode(p, v.Bytes)
		return append(p, '"', '}')
	case TypeBlob:
		p = append(p, `{"$blob":"`...)
		p = base64.StdEncoding.AppendEncode(p, v.Bytes)
		return append(p, '"', '}')
	}
	return append(p, "null"...)
}

// appendJSONName appends a table or column name as a JSON string. Names
// are expected to be UTF-8; an invalid byte becomes U+FFFD.
func appendJSONName(p []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return appendJSONString(p, []byte(s))
}

// jsonSafe[c] is true for the bytes a JSON string holds unescaped.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends valid UTF-8 s as a JSON string. It escapes
// only what JSON requires: '"', '\\' and the control bytes below 0x20
// (NUL as \u0000).
func appendJSONString(p []byte, s []byte) []byte {
	const hexd = "0123456789abcdef"
	p = append(p, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if jsonSafe[c] {
			continue
		}
		p = append(p, s[start:i]...)
		switch c {
		case '"', '\\':
			p = append(p, '\\', c)
		case '\n':
			p = append(p, '\\', 'n')
		case '\r':
			p = append(p, '\\', 'r')
		case '\t':
			p = append(p, '\\', 't')
		default:
			p = append(p, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
		}
		start = i + 1
	}
	p = append(p, s[start:]...)
	return append(p, '"')
}
