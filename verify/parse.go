package verify

// Parsers of the json, ndjson and csv formats (docs/formats-csv-json.md)
// into typed values, for digesting. They accept exactly what the dump
// engine writes: anything else is a parse error, which fails verification.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
)

func parseErr(format string, args ...any) error {
	return fmt.Errorf("verify: %w: %s", sluice.ErrInvalid, fmt.Sprintf(format, args...))
}

// jsonReader reads the token stream of a json or ndjson dump.
type jsonReader struct{ dec *json.Decoder }

func newJSONReader(r io.Reader) *jsonReader {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	dec.UseNumber()
	return &jsonReader{dec: dec}
}

func (j *jsonReader) token() (json.Token, error) {
	t, err := j.dec.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, parseErr("json: %v", err)
	}
	return t, nil
}

func (j *jsonReader) delim(want json.Delim) error {
	t, err := j.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return parseErr("json: got %v, want %q", t, want)
	}
	return nil
}

func (j *jsonReader) str() (string, error) {
	t, err := j.token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", parseErr("json: got %v, want a string", t)
	}
	return s, nil
}

// value reads one column value.
func (j *jsonReader) value() (dump.Value, error) {
	t, err := j.token()
	if err != nil {
		return dump.Value{}, err
	}
	switch v := t.(type) {
	case nil:
		return dump.Value{Type: dump.TypeNull}, nil
	case string:
		return dump.Value{Type: dump.TypeText, Bytes: []byte(v)}, nil
	case json.Number:
		return numberValue(string(v))
	case json.Delim:
		if v != '{' {
			break
		}
		k, err := j.str()
		if err != nil {
			return dump.Value{}, err
		}
		s, err := j.str()
		if err != nil {
			return dump.Value{}, err
		}
		if err := j.delim('}'); err != nil {
			return dump.Value{}, err
		}
		return taggedValue(k, s)
	}
	return dump.Value{}, parseErr("json: unexpected value %v", t)
}

// numberValue reads a JSON number: INTEGER without '.' or exponent, else
// REAL.
func numberValue(s string) (dump.Value, error) {
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return dump.Value{}, parseErr("integer %q: %v", s, err)
		}
		return dump.Value{Type: dump.TypeInteger, Int: i}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return dump.Value{}, parseErr("real %q: %v", s, err)
	}
	return dump.Value{Type: dump.TypeReal, Real: f}, nil
}

// taggedValue reads the one-key objects of the json formats.
func taggedValue(k, s string) (dump.Value, error) {
	switch k {
	case "$blob", "$text_base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return dump.Value{}, parseErr("%s: %v", k, err)
		}
		if k == "$blob" {
			return dump.Value{Type: dump.TypeBlob, Bytes: b}, nil
		}
		return dump.Value{Type: dump.TypeText, Bytes: b}, nil
	case "$real":
		switch s {
		case "Infinity":
			return dump.Value{Type: dump.TypeReal, Real: math.Inf(1)}, nil
		case "-Infinity":
			return dump.Value{Type: dump.TypeReal, Real: math.Inf(-1)}, nil
		case "NaN":
			return dump.Value{Type: dump.TypeReal, Real: math.NaN()}, nil
		}
	}
	return dump.Value{}, parseErr("unknown tagged value {%q:%q}", k, s)
}

// row reads one row object whose keys must be cols in order; with cols
// nil it records the keys (ndjson's first row of a table).
func (j *jsonReader) row(cols []string, vals []dump.Value) ([]string, []dump.Value, error) {
	if err := j.delim('{'); err != nil {
		return cols, vals, err
	}
	learn := cols == nil
	vals = vals[:0]
	for i := 0; ; i++ {
		t, err := j.token()
		if err != nil {
			return cols, vals, err
		}
		if d, ok := t.(json.Delim); ok && d == '}' {
			if i != len(cols) {
				return cols, vals, parseErr("row has %d values, the table %d columns", i, len(cols))
			}
			return cols, vals, nil
		}
		k, ok := t.(string)
		if !ok {
			return cols, vals, parseErr("json: got %v, want a column name", t)
		}
		if learn {
			cols = append(cols, k)
		} else if i >= len(cols) || cols[i] != k {
			return cols, vals, parseErr("row key %q where column %d is expected", k, i)
		}
		v, err := j.value()
		if err != nil {
			return cols, vals, err
		}
		vals = append(vals, v)
	}
}

// fromKeyedJSON digests a json dump: {"<table>":[{row},...],...}. The
// columns are the first row's keys; a table without rows is left out of
// the result (Compare takes it as empty with the expected columns).
func fromKeyedJSON(r io.Reader) (dump.Digests, error) {
	j := newJSONReader(r)
	var out dump.Digests
	h := dump.NewTableHasher()
	if err := j.delim('{'); err != nil {
		return out, err
	}
	seen := map[string]bool{}
	var vals []dump.Value
	for j.dec.More() {
		name, err := j.str()
		if err != nil {
			return out, err
		}
		if seen[name] {
			return out, parseErr("json: table %q twice", name)
		}
		seen[name] = true
		if err := j.delim('['); err != nil {
			return out, err
		}
		var cols []string
		for j.dec.More() {
			learn := cols == nil
			if cols, vals, err = j.row(cols, vals); err != nil {
				return out, fmt.Errorf("table %q: %w", name, err)
			}
			if learn {
				h.Begin(name, cols)
			}
			h.Row(vals)
		}
		if err := j.delim(']'); err != nil {
			return out, err
		}
		if cols != nil {
			out.Tables = append(out.Tables, h.End())
		}
	}
	if err := j.delim('}'); err != nil {
		return out, err
	}
	if _, err := j.dec.Token(); err != io.EOF {
		return out, parseErr("json: data after the document")
	}
	return out, nil
}

// fromJSON digests a json-typed dump: {"tables":[{"name","columns","rows"}...]}.
func fromJSON(r io.Reader) (dump.Digests, error) {
	j := newJSONReader(r)
	var out dump.Digests
	h := dump.NewTableHasher()
	if err := j.delim('{'); err != nil {
		return out, err
	}
	if k, err := j.str(); err != nil || k != "tables" {
		return out, parseErr("json: want the \"tables\" key")
	}
	if err := j.delim('['); err != nil {
		return out, err
	}
	var vals []dump.Value
	for j.dec.More() {
		if err := j.delim('{'); err != nil {
			return out, err
		}
		var name string
		var cols []string
		begun := false
		for j.dec.More() {
			k, err := j.str()
			if err != nil {
				return out, err
			}
			switch k {
			case "name":
				if name, err = j.str(); err != nil {
					return out, err
				}
			case "columns":
				if err := j.delim('['); err != nil {
					return out, err
				}
				cols = []string{}
				for j.dec.More() {
					c, err := j.str()
					if err != nil {
						return out, err
					}
					cols = append(cols, c)
				}
				if err := j.delim(']'); err != nil {
					return out, err
				}
			case "rows":
				if name == "" || cols == nil {
					return out, parseErr("json: rows before the table's name and columns")
				}
				h.Begin(name, cols)
				begun = true
				if err := j.delim('['); err != nil {
					return out, err
				}
				for j.dec.More() {
					if _, vals, err = j.row(cols, vals); err != nil {
						return out, fmt.Errorf("table %q: %w", name, err)
					}
					h.Row(vals)
				}
				if err := j.delim(']'); err != nil {
					return out, err
				}
			default:
				return out, parseErr("json: unknown table key %q", k)
			}
		}
		if err := j.delim('}'); err != nil {
			return out, err
		}
		if !begun {
			return out, parseErr("json: table %q has no rows array", name)
		}
		out.Tables = append(out.Tables, h.End())
	}
	if err := j.delim(']'); err != nil {
		return out, err
	}
	if err := j.delim('}'); err != nil {
		return out, err
	}
	if _, err := j.dec.Token(); err != io.EOF {
		return out, parseErr("json: data after the document")
	}
	return out, nil
}

// fromNDJSON digests an ndjson dump: {"table":name,"row":{...}} per line.
// A table without rows has no line; Compare accepts such a table as
// empty, with the expected column list.
func fromNDJSON(r io.Reader) (dump.Digests, error) {
	j := newJSONReader(r)
	var out dump.Digests
	h := dump.NewTableHasher()
	var cur string
	var cols []string
	var vals []dump.Value
	open := false
	seen := map[string]bool{}
	for {
		t, err := j.dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, parseErr("ndjson: %v", err)
		}
		if d, ok := t.(json.Delim); !ok || d != '{' {
			return out, parseErr("ndjson: got %v, want a line object", t)
		}
		if k, err := j.str(); err != nil || k != "table" {
			return out, parseErr("ndjson: want the \"table\" key first")
		}
		name, err := j.str()
		if err != nil {
			return out, err
		}
		if k, err := j.str(); err != nil || k != "row" {
			return out, parseErr("ndjson: want the \"row\" key second")
		}
		if !open || name != cur {
			if open {
				out.Tables = append(out.Tables, h.End())
			}
			if seen[name] {
				return out, parseErr("ndjson: rows of table %q are not contiguous", name)
			}
			seen[name] = true
			cur, cols, open = name, nil, true
			if cols, vals, err = j.row(nil, vals); err != nil {
				return out, fmt.Errorf("table %q: %w", name, err)
			}
			h.Begin(name, cols)
		} else if _, vals, err = j.row(cols, vals); err != nil {
			return out, fmt.Errorf("table %q: %w", name, err)
		}
		h.Row(vals)
		if err := j.delim('}'); err != nil {
			return out, err
		}
	}
	if open {
		out.Tables = append(out.Tables, h.End())
	}
	return out, nil
}

// fromCSV digests a csv dump (a zip of one CSV per table). The zip's
// directory is at its end, so the stream is spooled to a temporary file.
// Each value's storage class is read from its lexical form.
func fromCSV(ctx context.Context, in Input) (dump.Digests, error) {
	f, err := os.CreateTemp(in.TempDir, scratchPrefix+"*.zip")
	if err != nil {
		return dump.Digests{}, fmt.Errorf("verify: spool: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, in.R)
	if err != nil {
		return dump.Digests{}, fmt.Errorf("verify: spool: %w", err)
	}
	zr, err := zip.NewReader(f, n)
	if err != nil {
		return dump.Digests{}, parseErr("csv: zip: %v", err)
	}
	var out dump.Digests
	h := dump.NewTableHasher()
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		td, err := csvTable(zf, h)
		if err != nil {
			return out, fmt.Errorf("table %q: %w", zf.Comment, err)
		}
		out.Tables = append(out.Tables, td)
	}
	return out, nil
}

func csvTable(zf *zip.File, h *dump.TableHasher) (dump.TableDigest, error) {
	rc, err := zf.Open()
	if err != nil {
		return dump.TableDigest{}, parseErr("csv: %v", err)
	}
	defer rc.Close()
	// The zip reader checks the entry's CRC-32 at EOF.
	return csvDocument(rc, zf.Comment, h)
}

// csvDocument digests one table's CSV document.
func csvDocument(r io.Reader, table string, h *dump.TableHasher) (dump.TableDigest, error) {
	cr := &csvReader{r: bufio.NewReaderSize(r, 256<<10)}
	hdr, ok, err := cr.record(nil)
	if err != nil {
		return dump.TableDigest{}, err
	}
	if !ok {
		return dump.TableDigest{}, parseErr("csv: no header")
	}
	cols := make([]string, len(hdr))
	for i, v := range hdr {
		if v.Type != dump.TypeText {
			return dump.TableDigest{}, parseErr("csv: header field %d is not quoted", i)
		}
		cols[i] = string(v.Bytes)
	}
	h.Begin(table, cols)
	var vals []dump.Value
	for {
		vals, ok, err = cr.record(vals)
		if err != nil {
			return dump.TableDigest{}, err
		}
		if !ok {
			break
		}
		if len(vals) != len(cols) {
			return dump.TableDigest{}, parseErr("csv: record has %d fields, the header %d", len(vals), len(cols))
		}
		h.Row(vals)
	}
	return h.End(), nil
}

// csvReader reads the CSV the engine writes: fields separated by ',',
// records ended by CRLF, text always quoted.
type csvReader struct {
	r   *bufio.Reader
	buf []byte
}

// record reads one record into vals; ok is false at the end of the file.
func (c *csvReader) record(vals []dump.Value) ([]dump.Value, bool, error) {
	vals = vals[:0]
	if _, err := c.r.Peek(1); err == io.EOF {
		return vals, false, nil
	}
	for {
		v, last, err := c.field()
		if err != nil {
			return vals, false, err
		}
		vals = append(vals, v)
		if last {
			return vals, true, nil
		}
	}
}

// field reads one field and its terminator; last is true after CRLF.
func (c *csvReader) field() (v dump.Value, last bool, err error) {
	b, err := c.r.ReadByte()
	if err != nil {
		return v, false, parseErr("csv: unexpected end")
	}
	if b == '"' {
		var text []byte
		for {
			s, err := c.r.ReadSlice('"')
			text = append(text, s...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return v, false, parseErr("csv: unterminated quoted field")
			}
			if nb, _ := c.r.Peek(1); len(nb) == 1 && nb[0] == '"' {
				c.r.ReadByte()
				continue // a doubled quote: keep the one already in text
			}
			text = text[:len(text)-1]
			break
		}
		v = dump.Value{Type: dump.TypeText, Bytes: text}
		b, err = c.r.ReadByte()
		if err != nil {
			return v, false, parseErr("csv: unexpected end after a quoted field")
		}
	} else {
		c.buf = c.buf[:0]
		for b != ',' && b != '\r' {
			c.buf = append(c.buf, b)
			if b, err = c.r.ReadByte(); err != nil {
				return v, false, parseErr("csv: unexpected end in a field")
			}
		}
		if v, err = lexicalValue(c.buf); err != nil {
			return v, false, err
		}
	}
	switch b {
	case ',':
		return v, false, nil
	case '\r':
		if nb, err := c.r.ReadByte(); err != nil || nb != '\n' {
			return v, false, parseErr("csv: CR without LF")
		}
		return v, true, nil
	}
	return v, false, parseErr("csv: unexpected %q after a field", b)
}

// lexicalValue reads an unquoted field: empty is NULL, \x is a BLOB,
// digits an INTEGER, anything with '.' or an exponent (or NaN) a REAL.
func lexicalValue(s []byte) (dump.Value, error) {
	switch {
	case len(s) == 0:
		return dump.Value{Type: dump.TypeNull}, nil
	case bytes.HasPrefix(s, []byte(`\x`)):
		b, err := hex.DecodeString(string(s[2:]))
		if err != nil {
			return dump.Value{}, parseErr("csv: blob: %v", err)
		}
		return dump.Value{Type: dump.TypeBlob, Bytes: b}, nil
	case string(s) == "1e999":
		return dump.Value{Type: dump.TypeReal, Real: math.Inf(1)}, nil
	case string(s) == "-1e999":
		return dump.Value{Type: dump.TypeReal, Real: math.Inf(-1)}, nil
	case string(s) == "NaN":
		return dump.Value{Type: dump.TypeReal, Real: math.NaN()}, nil
	}
	v, err := numberValue(string(s))
	if err != nil && errors.Is(err, sluice.ErrInvalid) {
		return v, parseErr("csv: unquoted field %q is neither NULL, an integer, a real nor a blob", s)
	}
	return v, err
}
