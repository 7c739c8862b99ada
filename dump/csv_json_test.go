package dump

// Shared fixtures for the csv and json formatter tests, and the resume
// test that drives every one of these testFormats.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"
)

type fixtureTable struct {
	meta tableMeta
	rows [][]Value
}

func tvNull() Value          { return Value{Type: TypeNull} }
func tvInt(i int64) Value    { return Value{Type: TypeInteger, Int: i} }
func tvReal(f float64) Value { return Value{Type: TypeReal, Real: f} }
func tvText(s string) Value  { return Value{Type: TypeText, Bytes: []byte(s)} }
func tvBlob(b ...byte) Value { return Value{Type: TypeBlob, Bytes: b} }
func tvBlobS(s string) Value { return Value{Type: TypeBlob, Bytes: []byte(s)} }
func negativeZero() float64  { return math.Copysign(0, -1) }
func everyByte() (b []byte)  { return appendEveryByte(nil) }
func appendEveryByte(b []byte) []byte {
	for i := range 256 {
		b = append(b, byte(i))
	}
	return b
}

// edgeFixtureValues is one value of every storage class and every edge case the
// formats must carry exactly.
func edgeFixtureValues() []Value {
	return []Value{
		tvNull(),
		tvText(""),
		tvText("plain"),
		tvText("a,b"),
		tvText(`say "hi"`),
		tvText(`"`),
		tvText("line\nbreak"),
		tvText("cr\ronly"),
		tvText("crlf\r\nin"),
		tvText("tab\there"),
		tvText("nul\x00in"),
		tvText("\x00"),
		tvText("\xff\xfe invalid"),
		tvText("ok é then \xc3"), // truncated sequence
		tvText(`\x41`),           // looks like a CSV blob
		tvText("123"),            // looks like an integer
		tvText("1.5"),            // looks like a real
		tvText(" spaced "),
		tvText("héllo ✓ 𝄞"),
		tvText(`back\slash`),
		tvText("\u2028\u2029"),
		tvText("ctl\x01\x1f\x7f"),
		tvInt(0),
		tvInt(-1),
		tvInt(math.MaxInt64),
		tvInt(math.MinInt64),
		tvInt(1 << 53),
		tvInt(1<<53 + 1),
		tvReal(0),
		tvReal(negativeZero()),
		tvReal(1),
		tvReal(-1),
		tvReal(0.1),
		tvReal(1.0 / 3),
		tvReal(123456789012345678),
		tvReal(1e20),
		tvReal(1e21),
		tvReal(1e-6),
		tvReal(1e-7),
		tvReal(5e-324),
		tvReal(math.MaxFloat64),
		tvReal(-math.SmallestNonzeroFloat64),
		tvReal(math.Inf(1)),
		tvReal(math.Inf(-1)),
		tvReal(math.NaN()),
		tvBlob(),
		tvBlob(0),
		tvBlob(everyByte()...),
		tvBlobS(`"quoted",blob`),
		tvBlobS("text-like"),
	}
}

// formatFixtures covers the edge values (one per row and all in one row),
// awkward table and column names, an empty table, and two names that
// differ only in (non-ASCII) case.
func formatFixtures() []fixtureTable {
	edge := edgeFixtureValues()
	var tabs []fixtureTable

	single := fixtureTable{meta: tableMeta{Name: "edge", Columns: []string{"id", "v"}}}
	for i, v := range edge {
		single.rows = append(single.rows, []Value{tvInt(int64(i)), v})
	}
	tabs = append(tabs, single)

	wide := fixtureTable{meta: tableMeta{Name: "wide"}}
	for i := range edge {
		wide.meta.Columns = append(wide.meta.Columns, fmt.Sprintf("c%d", i))
	}
	wide.rows = append(wide.rows, edge)
	rev := make([]Value, len(edge))
	for i := range edge {
		rev[i] = edge[len(edge)-1-i]
	}
	wide.rows = append(wide.rows, rev)
	tabs = append(tabs, wide)

	tabs = append(tabs, fixtureTable{meta: tableMeta{Name: "empty", Columns: []string{"a", "b"}}})

	tabs = append(tabs, fixtureTable{
		meta: tableMeta{Name: `we/ird\name..:%~"*?<>|` + "\x00\x01\xff.", Columns: []string{"a b", `quo"te`, "ü", "", "x\ny", "bad\xffname"}},
		rows: [][]Value{
			{tvInt(1), tvText("x"), tvReal(2.5), tvNull(), tvBlob(1, 2), tvText("")},
			{tvNull(), tvNull(), tvNull(), tvNull(), tvNull(), tvNull()},
		},
	})
	tabs = append(tabs, fixtureTable{
		meta: tableMeta{Name: "É", Columns: []string{"k"}},
		rows: [][]Value{{tvText("upper")}},
	})
	tabs = append(tabs, fixtureTable{
		meta: tableMeta{Name: "é", Columns: []string{"k"}},
		rows: [][]Value{{tvText("lower")}},
	})
	tabs = append(tabs, fixtureTable{
		meta: tableMeta{Name: "rowids", Columns: []string{"rowid", "v"}, HasRowid: true, ExplicitColumns: true},
		rows: [][]Value{{tvInt(-5), tvText("a")}, {tvInt(math.MaxInt64), tvText("b")}},
	})
	for i := range tabs {
		tabs[i].meta.Index = i
	}
	return tabs
}

// fmtEvent is one formatter call; runFmtEvents replays a list of them.
type fmtEvent struct {
	kind byte // 'B' begin, 'T' beginTable, 'R' row, 'E' endTable, 'Z' end, 'S' schema
	t    *tableMeta
	vals []Value
}

func fmtEventsFor(tabs []fixtureTable) []fmtEvent {
	ev := []fmtEvent{{kind: 'B'}, {kind: 'S'}}
	for i := range tabs {
		t := &tabs[i].meta
		ev = append(ev, fmtEvent{kind: 'S'}, fmtEvent{kind: 'T', t: t})
		for _, r := range tabs[i].rows {
			ev = append(ev, fmtEvent{kind: 'R', t: t, vals: r})
		}
		ev = append(ev, fmtEvent{kind: 'E', t: t})
	}
	return append(ev, fmtEvent{kind: 'S'}, fmtEvent{kind: 'Z'})
}

func runFmtEvents(f formatter, b *[]byte, ev []fmtEvent) {
	for _, e := range ev {
		switch e.kind {
		case 'B':
			f.begin(b)
		case 'S':
			f.schema(b, "CREATE TABLE ignored(x)")
		case 'T':
			f.beginTable(b, e.t)
		case 'R':
			// The engine's Bytes are only valid until the next row: hand
			// the formatter a copy and scribble over it afterwards.
			vals := make([]Value, len(e.vals))
			for i, v := range e.vals {
				vals[i] = v
				vals[i].Bytes = append([]byte(nil), v.Bytes...)
			}
			f.row(b, e.t, vals)
			for i := range vals {
				for j := range vals[i].Bytes {
					vals[i].Bytes[j] = 'Z'
				}
			}
		case 'E':
			f.endTable(b, e.t)
		case 'Z':
			f.end(b)
		}
	}
}

// testFormats are the formats under test, by name.
var testFormats = []struct {
	name string
	new  func() formatter
}{
	{"csv", newCSVFormatter},
	{"json", func() formatter { return newJSONFormatter(false) }},
	{"ndjson", func() formatter { return newJSONFormatter(true) }},
}

func renderFixture(t *testing.T, newf func() formatter, tabs []fixtureTable) []byte {
	t.Helper()
	var b []byte
	runFmtEvents(newf(), &b, fmtEventsFor(tabs))
	return b
}

// TestFormatterResumeEveryBoundary stops each formatter after every fmtEvent,
// passes its state through a JSON-encoded Cursor into a new formatter and
// continues; the output must equal the uninterrupted run byte for byte,
// whether or not the engine repeats beginTable for the table it resumes in.
func TestFormatterResumeEveryBoundary(t *testing.T) {
	tabs := formatFixtures()
	ev := fmtEventsFor(tabs)
	for _, fm := range testFormats {
		t.Run(fm.name, func(t *testing.T) {
			want := renderFixture(t, fm.new, tabs)
			for cut := 0; cut <= len(ev); cut++ {
				for _, replay := range []bool{false, true} {
					var out []byte
					first := fm.new()
					runFmtEvents(first, &out, ev[:cut])

					enc, err := json.Marshal(Cursor{Step: 1, Bytes: int64(len(out)), State: first.state()})
					if err != nil {
						t.Fatal(err)
					}
					var c Cursor
					if err := json.Unmarshal(enc, &c); err != nil {
						t.Fatal(err)
					}
					second := fm.new()
					if err := second.restore(c.State); err != nil {
						t.Fatalf("cut %d: restore: %v", cut, err)
					}
					rest := ev[cut:]
					if replay && cut > 0 && (ev[cut-1].kind == 'R' || ev[cut-1].kind == 'T') {
						// An engine that restarts the table's step.
						rest = append([]fmtEvent{{kind: 'T', t: ev[cut-1].t}}, rest...)
					}
					runFmtEvents(second, &out, rest)
					if !bytes.Equal(out, want) {
						t.Fatalf("cut %d (replay %v): resumed output differs at byte %d of %d",
							cut, replay, diffAt(out, want), len(want))
					}
				}
			}
		})
	}
}

func TestFormatterRestoreRejectsGarbage(t *testing.T) {
	tabs := formatFixtures()
	ev := fmtEventsFor(tabs)
	for _, fm := range testFormats {
		t.Run(fm.name, func(t *testing.T) {
			f := fm.new()
			var out []byte
			runFmtEvents(f, &out, ev[:len(ev)/2])
			st := f.state()
			// Every strict prefix of a valid state is refused, as are
			// trailing bytes and an unknown version.
			for n := 1; n < len(st); n++ {
				if err := fm.new().restore(st[:n]); err == nil {
					t.Errorf("restore accepted a %d-byte prefix of a %d-byte state", n, len(st))
				}
			}
			if err := fm.new().restore(append(append([]byte(nil), st...), 0)); err == nil {
				t.Error("restore accepted trailing bytes")
			}
			bad := append([]byte(nil), st...)
			bad[0] = 99
			if err := fm.new().restore(bad); err == nil {
				t.Error("restore accepted an unknown version")
			}
			if err := fm.new().restore(nil); err != nil {
				t.Errorf("restore(nil) = %v, want the start state", err)
			}
		})
	}
}

func diffAt(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// requireTool fails the test when a tool that scripts/test installs is
// missing: these checks must not silently disappear.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH (scripts/test installs it): %v", name, err)
	}
	return p
}

// sameTypedValue reports whether got is exactly want: same storage class and
// bytes, REALs compared by bits (any NaN equals any NaN: formats keep
// NaN-ness, not payloads).
func sameTypedValue(got, want Value) bool {
	if got.Type != want.Type {
		return false
	}
	switch want.Type {
	case TypeInteger:
		return got.Int == want.Int
	case TypeReal:
		if math.IsNaN(want.Real) {
			return math.IsNaN(got.Real)
		}
		return math.Float64bits(got.Real) == math.Float64bits(want.Real)
	case TypeText, TypeBlob:
		return bytes.Equal(got.Bytes, want.Bytes)
	}
	return true
}

func describeValue(v Value) string {
	switch v.Type {
	case TypeInteger:
		return fmt.Sprintf("integer %d", v.Int)
	case TypeReal:
		return fmt.Sprintf("real %v (bits %#x)", v.Real, math.Float64bits(v.Real))
	case TypeText:
		return fmt.Sprintf("text %q", v.Bytes)
	case TypeBlob:
		return fmt.Sprintf("blob %x", v.Bytes)
	case TypeNull:
		return "null"
	}
	return fmt.Sprintf("type %d", v.Type)
}

func compareTypedRows(t *testing.T, where string, got, want [][]Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", where, len(got), len(want))
		return
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s row %d: %d values, want %d", where, i, len(got[i]), len(want[i]))
			continue
		}
		for j := range want[i] {
			if !sameTypedValue(got[i][j], want[i][j]) {
				t.Errorf("%s row %d col %d: got %s, want %s", where, i, j, describeValue(got[i][j]), describeValue(want[i][j]))
			}
		}
	}
}

// TestFormatterRowDoesNotAllocate: once the output buffer has grown,
// formatting a row of every kind of value allocates nothing.
func TestFormatterRowDoesNotAllocate(t *testing.T) {
	tabs := formatFixtures()
	wide := &tabs[1]
	for _, fm := range testFormats {
		t.Run(fm.name, func(t *testing.T) {
			f := fm.new()
			b := make([]byte, 0, 1<<20)
			f.begin(&b)
			f.beginTable(&b, &wide.meta)
			allocs := testing.AllocsPerRun(100, func() {
				b = b[:0]
				for _, r := range wide.rows {
					f.row(&b, &wide.meta, r)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run, want 0", allocs)
			}
		})
	}
}

func BenchmarkFormatterRow(b *testing.B) {
	meta := tableMeta{Name: "bench", Columns: []string{"id", "name", "price", "note", "data"}}
	row := []Value{tvInt(123456789), tvText("Some Name, with \"quotes\""), tvReal(12.75), tvNull(), tvBlob(1, 2, 3, 4, 5, 6, 7, 8)}
	for _, fm := range testFormats {
		b.Run(fm.name, func(b *testing.B) {
			f := fm.new()
			buf := make([]byte, 0, 1<<16)
			f.begin(&buf)
			f.beginTable(&buf, &meta)
			b.ReportAllocs()
			for b.Loop() {
				if len(buf) > 1<<15 {
					buf = buf[:0]
				}
				f.row(&buf, &meta, row)
			}
		})
	}
}

// randomValue draws a value of any class; text and blobs are short byte
// strings biased towards the bytes the formats must escape, reals come
// from random bit patterns (subnormals, NaNs, infinities included).
func randomValue(r *rand.Rand) Value {
	const alphabet = "a,\"\r\n\x00\\\x7f\xc3\xa9\xff\xe2\x82\xac ~%.\t\x01"
	bytesOf := func() []byte {
		b := make([]byte, r.IntN(12))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(r.Uint32())
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		return b
	}
	switch r.IntN(5) {
	case 0:
		return tvNull()
	case 1:
		if r.IntN(2) == 0 {
			return tvInt(int64(r.Uint64()))
		}
		return tvInt(r.Int64N(2000) - 1000)
	case 2:
		if r.IntN(2) == 0 {
			return tvReal(math.Float64frombits(r.Uint64()))
		}
		return tvReal(float64(r.IntN(2000)-1000) / 8)
	case 3:
		return Value{Type: TypeText, Bytes: bytesOf()}
	}
	return Value{Type: TypeBlob, Bytes: bytesOf()}
}

func TestFormatterRandomValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := fixtureTable{meta: tableMeta{Name: "random", Columns: []string{"a", "b", "c", "d"}}}
	for range 3000 {
		row := make([]Value, len(tab.meta.Columns))
		for i := range row {
			row[i] = randomValue(r)
		}
		tab.rows = append(tab.rows, row)
	}

	files := openZip(t, renderFixture(t, newCSVFormatter, []fixtureTable{tab}))
	recs, err := parseCSVStrict(readZipEntry(t, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]Value
	for _, rec := range recs[1:] {
		var row []Value
		for _, f := range rec {
			v, err := csvValue(f)
			if err != nil {
				t.Fatal(err)
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	compareTypedRows(t, "csv", rows, tab.rows)

	for _, ndjson := range []bool{false, true} {
		out := renderFixture(t, func() formatter { return newJSONFormatter(ndjson) }, []fixtureTable{tab})
		var raws []json.RawMessage
		if ndjson {
			for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
				var rec struct{ Row json.RawMessage }
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatal(err)
				}
				raws = append(raws, rec.Row)
			}
		} else {
			var doc jsonDoc
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			raws = doc.Tables[0].Rows
		}
		rows = rows[:0]
		for _, raw := range raws {
			row, err := jsonRow(raw, tab.meta.Columns)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
		compareTypedRows(t, fmt.Sprintf("json (ndjson %v)", ndjson), rows, tab.rows)
	}
}

// FuzzFormatterRestore feeds arbitrary states to restore: it must refuse
// or accept them without panicking, and an accepted state must let the
// formatter finish. `go test` runs the seeds (valid states cut at every
// event of the fixtures); `go test -fuzz FuzzFormatterRestore` explores.
func FuzzFormatterRestore(f *testing.F) {
	tabs := formatFixtures()
	ev := fmtEventsFor(tabs)
	for i, fm := range testFormats {
		for cut := 0; cut <= len(ev); cut += 3 {
			var b []byte
			x := fm.new()
			runFmtEvents(x, &b, ev[:cut])
			f.Add(uint8(i), x.state())
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, state []byte) {
		fm := testFormats[int(which)%len(testFormats)]
		x := fm.new()
		if err := x.restore(state); err != nil {
			return
		}
		var b []byte
		runFmtEvents(x, &b, ev[len(ev)-3:]) // endTable, schema, end
		x.state()
	})
}
