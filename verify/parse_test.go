package verify

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/internal/testsupport"
)

// TestBadDumpsFailCleanly: malformed dumps are errors (ErrInvalid where
// the content is at fault), never panics or silent passes.
func TestBadDumpsFailCleanly(t *testing.T) {
	tests := []struct {
		name   string
		format sluice.Format
		in     string
	}{
		{"json-typed empty", sluice.FormatJSONTyped, ``},
		{"json-typed not an object", sluice.FormatJSONTyped, `[1,2]`},
		{"json-typed rows before columns", sluice.FormatJSONTyped, `{"tables":[{"name":"t","rows":[{"a":1}]}]}`},
		{"json-typed key out of order", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a","b"],"rows":[{"b":1,"a":2}]}]}`},
		{"json-typed missing value", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a","b"],"rows":[{"a":1}]}]}`},
		{"json-typed bad tag", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a"],"rows":[{"a":{"$nope":"x"}}]}]}`},
		{"json-typed bad base64", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a"],"rows":[{"a":{"$blob":"!!"}}]}]}`},
		{"json-typed integer overflow", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a"],"rows":[{"a":99999999999999999999}]}]}`},
		{"json-typed trailing", sluice.FormatJSONTyped, `{"tables":[]} {}`},
		{"json-typed bool", sluice.FormatJSONTyped, `{"tables":[{"name":"t","columns":["a"],"rows":[{"a":true}]}]}`},
		{"json keyed not an object", sluice.FormatJSON, `[]`},
		{"json keyed table twice", sluice.FormatJSON, `{"t":[{"a":1}],"t":[{"a":2}]}`},
		{"json keyed columns change", sluice.FormatJSON, `{"t":[{"a":1},{"b":2}]}`},
		{"json keyed trailing", sluice.FormatJSON, `{"t":[]} x`},
		{"ndjson no table", sluice.FormatNDJSON, `{"row":{"a":1}}`},
		{"ndjson split table", sluice.FormatNDJSON, "{\"table\":\"t\",\"row\":{\"a\":1}}\n{\"table\":\"u\",\"row\":{\"a\":1}}\n{\"table\":\"t\",\"row\":{\"a\":1}}\n"},
		{"ndjson columns change", sluice.FormatNDJSON, "{\"table\":\"t\",\"row\":{\"a\":1}}\n{\"table\":\"t\",\"row\":{\"b\":1}}\n"},
		{"ndjson garbage", sluice.FormatNDJSON, "{\"table\":\"t\",\"row\":{\"a\":1}}\nnot json\n"},
		{"csv not a zip", sluice.FormatCSV, "a,b\r\n1,2\r\n"},
		{"sql without restorer", sluice.FormatSQL, "CREATE TABLE t(a);"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromDump(context.Background(), Input{R: strings.NewReader(tc.in), Format: tc.format, TempDir: t.TempDir()}, testsupport.Logger(t))
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestLexicalValue(t *testing.T) {
	tests := []struct {
		in   string
		want dump.Value
		bad  bool
	}{
		{"", dump.Value{Type: dump.TypeNull}, false},
		{"12", dump.Value{Type: dump.TypeInteger, Int: 12}, false},
		{"-9223372036854775808", dump.Value{Type: dump.TypeInteger, Int: -9223372036854775808}, false},
		{"1.0", dump.Value{Type: dump.TypeReal, Real: 1}, false},
		{"1e999", dump.Value{Type: dump.TypeReal, Real: math.Inf(1)}, false},
		{`\x00ff`, dump.Value{Type: dump.TypeBlob, Bytes: []byte{0, 0xff}}, false},
		{`\xzz`, dump.Value{}, true},
		{"abc", dump.Value{}, true},
		{"99999999999999999999", dump.Value{}, true},
	}
	for _, tc := range tests {
		v, err := lexicalValue([]byte(tc.in))
		if tc.bad {
			if !errors.Is(err, sluice.ErrInvalid) {
				t.Errorf("%q: err %v, want ErrInvalid", tc.in, err)
			}
			continue
		}
		if err != nil || v.Type != tc.want.Type || v.Int != tc.want.Int || v.Real != tc.want.Real || string(v.Bytes) != string(tc.want.Bytes) {
			t.Errorf("%q: %+v %v, want %+v", tc.in, v, err, tc.want)
		}
	}
}

func TestReadManifestRejects(t *testing.T) {
	for _, in := range []string{``, `null`, `{}`, `{"format":"xml","tables":[]}`, `{"format":"sql","compression":"lz4","tables":[]}`,
		strings.Repeat(" ", MaxManifestBytes+1)} {
		if _, err := ReadManifest(strings.NewReader(in)); err == nil {
			t.Errorf("%.40q accepted", in)
		}
	}
}
