package dump

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
)

// TestDigestOnPipeAndInline: the digests hashed on the pipe (no Gate),
// inline under a Gate, and by a TableHasher from the values themselves
// agree, with values from empty to several pages of blob I/O, and pages
// of one row (the pipe borrows large values from pages the reader
// recycles; -race checks that it is done with them first).
func TestDigestOnPipeAndInline(t *testing.T) {
	path, want := blobTestDB(t, 4096, false)
	h := NewTableHasher()
	h.Begin("t", []string{"id", "a", "b"})
	for i := range blobTestSizes {
		id := int64(i + 1)
		h.Row([]Value{{Type: TypeInteger, Int: id}, {Type: TypeBlob, Bytes: want[id][0]}, {Type: TypeText, Bytes: want[id][1]}})
	}
	ref := h.End()
	for _, chunk := range []int{1, 0} {
		var outs [][]byte
		for _, gate := range []*Gate{nil, NewGate(2)} {
			opts := Options{ChunkSize: chunk, Gate: gate}
			src, err := Open(context.Background(), path, opts, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			end, err := src.Dump(context.Background(), &out, Cursor{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := src.Digests(end)
			src.Close()
			if !ok || len(got.Tables) != 1 || !reflect.DeepEqual(got.Tables[0], ref) {
				t.Fatalf("chunk %d, gate %v: digests %+v, want %+v", chunk, gate != nil, got.Tables, ref)
			}
			outs = append(outs, out.Bytes())
		}
		if !bytes.Equal(outs[0], outs[1]) {
			t.Fatalf("chunk %d: the output differs with and without a gate", chunk)
		}
	}
}

// TestNoDigests: a dump with Options.NoDigests writes the same bytes and
// ends with no digests in its cursor, with and without a Gate.
func TestNoDigests(t *testing.T) {
	path, _ := blobTestDB(t, 4096, false)
	var want []byte
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"digests", Options{}},
		{"none", Options{NoDigests: true}},
		{"none, gated", Options{NoDigests: true, Gate: NewGate(2)}},
	} {
		src, err := Open(context.Background(), path, tc.opts, testsupport.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		end, err := src.Dump(context.Background(), &out, Cursor{}, nil)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := end.Digest != nil; got == tc.opts.NoDigests {
			t.Errorf("%s: cursor carries digests %v", tc.name, got)
		}
		if want == nil {
			want = out.Bytes()
		} else if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s: output differs from the dump with digests", tc.name)
		}
	}
}
