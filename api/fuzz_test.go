package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeQuery feeds arbitrary bodies to the /query decoder: it must
// never panic, must reject with a 400 *Error, and what it accepts must be
// well formed.
func FuzzDecodeQuery(f *testing.F) {
	for _, s := range []string{
		`{"sql":"SELECT 1"}`,
		`{"sql":"SELECT ?","params":[1,"a",null,true,1.5]}`,
		`{"sql":"SELECT :a","params":{"a":9223372036854775807}}`,
		`{"transaction":[{"sql":"SELECT 1"},{"sql":"SELECT ?","params":[2]}]}`,
		`{"sql":"x","params":[{"nested":1}]}`,
		`{"sql":"x","params":[1e999]}`,
		`{"sql":""}`,
		`{"transaction":[]}`,
		`[]`,
		`{"sql":"SELECT 1"}{}`,
		`{"sql":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := decodeQuery(bytes.NewReader(data))
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code == "" {
				t.Fatalf("rejection is not a 400 *Error: %#v", err)
			}
			return
		}
		if (q.SQL == "") == (q.Transaction == nil) {
			t.Fatalf("accepted request has sql %q and %d transaction items", q.SQL, len(q.Transaction))
		}
		check := func(p params) {
			if p.Positional != nil && p.Named != nil {
				t.Fatal("params both positional and named")
			}
			vals := p.Positional
			for _, v := range p.Named {
				vals = append(vals, v)
			}
			for _, v := range vals {
				switch v.(type) {
				case nil, int64, float64, string, bool:
				default:
					t.Fatalf("param of type %T", v)
				}
			}
		}
		check(q.Params)
		for _, it := range q.Transaction {
			if strings.TrimSpace(it.SQL) == "" {
				t.Fatal("empty transaction statement accepted")
			}
			check(it.Params)
		}
		if !json.Valid(data) {
			t.Fatalf("invalid JSON accepted: %q", data)
		}
	})
}

// FuzzParseRange checks that parseRange never panics and only returns
// ranges inside the object.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=5-9", "bytes=-3", "bytes=0-1,2-3", "bytes=9-1", "items=0-1", "bytes=-0", "bytes=99999999999999999999-"} {
		f.Add(s, int64(20))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		start, n, ok, sat := parseRange(h, size)
		if ok && sat && (start < 0 || n <= 0 || start+n > size) {
			t.Fatalf("parseRange(%q, %d) = %d, %d outside the object", h, size, start, n)
		}
	})
}
