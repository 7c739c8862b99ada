package dump

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// jsonTypedValue reads one value back by the documented rules; dec must
// have UseNumber set.
func jsonTypedValue(dec *json.Decoder) (Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return Value{}, err
	}
	switch x := tok.(type) {
	case nil:
		return tvNull(), nil
	case string:
		return tvText(x), nil
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			f, err := strconv.ParseFloat(string(x), 64)
			return tvReal(f), err
		}
		i, err := strconv.ParseInt(string(x), 10, 64)
		return tvInt(i), err
	case json.Delim:
		if x != '{' {
			return Value{}, fmt.Errorf("unexpected %v", x)
		}
		var tag, s string
		if err := decodeStrings(dec, &tag, &s); err != nil {
			return Value{}, err
		}
		if end, err := dec.Token(); err != nil || end != json.Delim('}') {
			return Value{}, fmt.Errorf("tagged value %s: want one key (%v)", tag, err)
		}
		switch tag {
		case "$blob", "$text_base64":
			b, err := base64.StdEncoding.Strict().DecodeString(s)
			if err != nil {
				return Value{}, err
			}
			if tag == "$blob" {
				return tvBlob(b...), nil
			}
			return Value{Type: TypeText, Bytes: b}, nil
		case "$real":
			switch s {
			case "Infinity":
				return tvReal(math.Inf(1)), nil
			case "-Infinity":
				return tvReal(math.Inf(-1)), nil
			case "NaN":
				return tvReal(math.NaN()), nil
			}
		}
		return Value{}, fmt.Errorf("unknown tagged value %s:%q", tag, s)
	}
	return Value{}, fmt.Errorf("unexpected token %v", tok)
}

func decodeStrings(dec *json.Decoder, dst ...*string) error {
	for _, d := range dst {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("want a string, got %v", tok)
		}
		*d = s
	}
	return nil
}

// jsonRow decodes one row object, checking that its keys are the columns
// in order.
func jsonRow(raw []byte, columns []string) ([]Value, error) {
	keys, row, err := jsonRowKeys(raw)
	if err != nil {
		return nil, err
	}
	if strings.Join(keys, "\x00") != strings.Join(columns, "\x00") {
		return nil, fmt.Errorf("row keys %q, want the column names %q in order", keys, columns)
	}
	return row, nil
}

// jsonRowKeys decodes one row object into its keys and values, in order.
func jsonRowKeys(raw []byte) (keys []string, row []Value, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("row: want an object (%v)", err)
	}
	for dec.More() {
		var key string
		if err := decodeStrings(dec, &key); err != nil {
			return nil, nil, err
		}
		v, err := jsonTypedValue(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("column %q: %w", key, err)
		}
		keys = append(keys, key)
		row = append(row, v)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, fmt.Errorf("row: unterminated object (%v)", err)
	}
	return keys, row, nil
}

// jsonValidNames is what a JSON reader sees for names: invalid UTF-8 bytes
// become U+FFFD.
func jsonValidNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToValidUTF8(n, "\uFFFD")
	}
	return out
}

type jsonDoc struct {
	Tables []struct {
		Name    string            `json:"name"`
		Columns []string          `json:"columns"`
		Rows    []json.RawMessage `json:"rows"`
	} `json:"tables"`
}

func TestJSONValuesRoundTrip(t *testing.T) {
	tabs := formatFixtures()
	out := renderFixture(t, func() formatter { return newJSONFormatter(false) }, tabs)
	if !json.Valid(out) {
		t.Fatal("output is not valid JSON")
	}
	var doc jsonDoc
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tables) != len(tabs) {
		t.Fatalf("%d tables, want %d", len(doc.Tables), len(tabs))
	}
	for i, tab := range tabs {
		got := doc.Tables[i]
		cols := jsonValidNames(tab.meta.Columns)
		if got.Name != strings.ToValidUTF8(tab.meta.Name, "\uFFFD") || strings.Join(got.Columns, "\x00") != strings.Join(cols, "\x00") {
			t.Errorf("table %d: name %q columns %q, want %q %q", i, got.Name, got.Columns, tab.meta.Name, cols)
		}
		var rows [][]Value
		for _, raw := range got.Rows {
			row, err := jsonRow(raw, cols)
			if err != nil {
				t.Fatalf("table %q: %v", got.Name, err)
			}
			rows = append(rows, row)
		}
		compareTypedRows(t, "table "+got.Name, rows, tab.rows)
	}
}

func TestNDJSONValuesRoundTrip(t *testing.T) {
	tabs := formatFixtures()
	out := renderFixture(t, func() formatter { return newJSONFormatter(true) }, tabs)
	if len(out) == 0 || out[len(out)-1] != '\n' {
		t.Fatal("output does not end with a newline")
	}
	lines := bytes.Split(out[:len(out)-1], []byte("\n"))
	n := 0
	for _, tab := range tabs {
		cols := jsonValidNames(tab.meta.Columns)
		var rows [][]Value
		for range tab.rows {
			line := lines[n]
			n++
			if !json.Valid(line) {
				t.Fatalf("line %d is not valid JSON: %s", n, line)
			}
			var rec struct {
				Table string          `json:"table"`
				Row   json.RawMessage `json:"row"`
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rec); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			if rec.Table != strings.ToValidUTF8(tab.meta.Name, "\uFFFD") {
				t.Errorf("line %d: table %q, want %q", n, rec.Table, tab.meta.Name)
			}
			row, err := jsonRow(rec.Row, cols)
			if err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			rows = append(rows, row)
		}
		compareTypedRows(t, "table "+tab.meta.Name, rows, tab.rows)
	}
	if n != len(lines) {
		t.Errorf("%d lines, want one per row (%d)", len(lines), n)
	}
}

func TestJSONParsesWithJQ(t *testing.T) {
	jq := requireTool(t, "jq")
	tabs := formatFixtures()
	total := 0
	var perTable []string
	for _, tab := range tabs {
		total += len(tab.rows)
		perTable = append(perTable, strconv.Itoa(len(tab.rows)))
	}
	tests := []struct {
		name   string
		ndjson bool
		args   []string
		want   string
	}{
		{"json", false, []string{"-c", "[.tables[] | .rows | length]"}, "[" + strings.Join(perTable, ",") + "]"},
		{"json-values", false, []string{"-c", `.tables[0].rows[] | .v | type`}, ""},
		// -R with fromjson parses every line on its own, so a value that
		// spans lines or two values on one line fail.
		{"ndjson", true, []string{"-R", "-c", "fromjson | .table"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := renderFixture(t, func() formatter { return newJSONFormatter(tt.ndjson) }, tabs)
			cmd := exec.Command(jq, tt.args...)
			cmd.Stdin = bytes.NewReader(out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("jq %q: %v\n%s", tt.args, err, stderr.Bytes())
			}
			lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
			switch tt.name {
			case "json":
				if strings.TrimSpace(string(got)) != tt.want {
					t.Errorf("jq read row counts %s, want %s", got, tt.want)
				}
			case "json-values":
				if len(lines) != len(tabs[0].rows) {
					t.Errorf("jq read %d values, want %d", len(lines), len(tabs[0].rows))
				}
			case "ndjson":
				if len(lines) != total {
					t.Errorf("jq read %d lines, want %d", len(lines), total)
				}
			}
		})
	}
}

// TestJSONShape pins the exact bytes of the documented example
// (docs/formats-csv-json.md).
func TestJSONShape(t *testing.T) {
	tabs := []fixtureTable{
		{
			meta: tableMeta{Name: "notes", Columns: []string{"id", "body", "score", "raw"}},
			rows: [][]Value{
				{tvInt(1), tvText("héllo, \"world\"\n"), tvReal(1), tvBlob(0xde, 0xad)},
				{tvInt(math.MinInt64), tvText("bad \xff"), tvReal(math.Inf(-1)), tvNull()},
				{tvInt(3), tvText(""), tvReal(negativeZero()), tvText("a\x00b")},
			},
		},
		{meta: tableMeta{Name: "empty", Columns: []string{"x"}}},
	}
	tests := []struct {
		name   string
		ndjson bool
		want   string
	}{
		{"json", false, `{"tables":[
{"name":"notes","columns":["id","body","score","raw"],"rows":[
{"id":1,"body":"héllo, \"world\"\n","score":1.0,"raw":{"$blob":"3q0="}},
{"id":-9223372036854775808,"body":{"$text_base64":"YmFkIP8="},"score":{"$real":"-Infinity"},"raw":null},
{"id":3,"body":"","score":-0.0,"raw":"a\u0000b"}
]},
{"name":"empty","columns":["x"],"rows":[
]}
]}
`},
		{"ndjson", true, `{"table":"notes","row":{"id":1,"body":"héllo, \"world\"\n","score":1.0,"raw":{"$blob":"3q0="}}}
{"table":"notes","row":{"id":-9223372036854775808,"body":{"$text_base64":"YmFkIP8="},"score":{"$real":"-Infinity"},"raw":null}}
{"table":"notes","row":{"id":3,"body":"","score":-0.0,"raw":"a\u0000b"}}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(renderFixture(t, func() formatter { return newJSONFormatter(tt.ndjson) }, tabs))
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestJSONNoTables(t *testing.T) {
	for _, tt := range []struct {
		ndjson bool
		want   string
	}{{false, "{\"tables\":[\n]}\n"}, {true, ""}} {
		var b []byte
		runFmtEvents(newJSONFormatter(tt.ndjson), &b, []fmtEvent{{kind: 'B'}, {kind: 'S'}, {kind: 'Z'}})
		if string(b) != tt.want {
			t.Errorf("ndjson=%v: %q, want %q", tt.ndjson, b, tt.want)
		}
	}
}

func TestFiniteRealFormat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{negativeZero(), "-0.0"},
		{1, "1.0"},
		{-2, "-2.0"},
		{0.1, "0.1"},
		{1e20, "100000000000000000000.0"},
		{1e21, "1e+21"},
		{1e-6, "0.000001"},
		{1e-7, "1e-07"},
		{5e-324, "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{123.456, "123.456"},
	}
	for _, tt := range tests {
		got := string(appendFiniteReal(nil, tt.in))
		if got != tt.want {
			t.Errorf("appendFiniteReal(%v) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(tt.in) {
			t.Errorf("%q reparses to %v, %v", got, back, err)
		}
	}
}
