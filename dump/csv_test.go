package dump

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"zombiezen.com/go/sqlite"
)

// csvField is one parsed CSV field and whether it was quoted.
type csvField struct {
	s      string
	quoted bool
}

// parseCSVStrict parses RFC 4180 with CRLF record ends, refusing anything
// else (bare quotes, a missing final CRLF, bytes after a closing quote),
// and keeps each field's quotedness, which the csv format uses to carry
// storage classes.
func parseCSVStrict(data []byte) ([][]csvField, error) {
	var recs [][]csvField
	pos := 0
	for pos < len(data) {
		var rec []csvField
		for {
			var f csvField
			if pos < len(data) && data[pos] == '"' {
				f.quoted = true
				pos++
				var sb []byte
				for {
					i := bytes.IndexByte(data[pos:], '"')
					if i < 0 {
						return nil, fmt.Errorf("byte %d: unterminated quoted field", pos)
					}
					sb = append(sb, data[pos:pos+i]...)
					pos += i + 1
					if pos < len(data) && data[pos] == '"' {
						sb = append(sb, '"')
						pos++
						continue
					}
					break
				}
				f.s = string(sb)
			} else {
				start := pos
				for pos < len(data) && data[pos] != ',' && data[pos] != '\r' && data[pos] != '\n' {
					if data[pos] == '"' {
						return nil, fmt.Errorf("byte %d: quote in an unquoted field", pos)
					}
					pos++
				}
				f.s = string(data[start:pos])
			}
			rec = append(rec, f)
			if pos < len(data) && data[pos] == ',' {
				pos++
				continue
			}
			if pos+1 < len(data) && data[pos] == '\r' && data[pos+1] == '\n' {
				pos += 2
				break
			}
			return nil, fmt.Errorf("byte %d: want ',' or CRLF after a field", pos)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// csvValue reads a field back to a typed value by the documented rules.
func csvValue(f csvField) (Value, error) {
	switch {
	case f.quoted:
		return tvText(f.s), nil
	case f.s == "":
		return tvNull(), nil
	case strings.HasPrefix(f.s, `\x`):
		b, err := hex.DecodeString(f.s[2:])
		if err != nil || strings.ToLower(f.s) != f.s {
			return Value{}, fmt.Errorf("bad blob %q", f.s)
		}
		return tvBlob(b...), nil
	case strings.ContainsAny(f.s, ".e") || f.s == "NaN":
		r, err := strconv.ParseFloat(f.s, 64)
		if err != nil && !(errors.Is(err, strconv.ErrRange) && math.IsInf(r, 0) && strings.HasSuffix(f.s, "1e999")) {
			return Value{}, fmt.Errorf("bad real %q: %v", f.s, err)
		}
		return tvReal(r), nil
	}
	i, err := strconv.ParseInt(f.s, 10, 64)
	if err != nil {
		return Value{}, fmt.Errorf("bad integer %q: %v", f.s, err)
	}
	return tvInt(i), nil
}

// openZip opens data with archive/zip and returns its entries in order.
func openZip(t *testing.T, data []byte) []*zip.File {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("archive/zip: %v", err)
	}
	return zr.File
}

func readZipEntry(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatalf("open %s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc) // checks the CRC-32 at EOF
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	return b
}

func TestCSVValuesRoundTrip(t *testing.T) {
	tabs := formatFixtures()
	out := renderFixture(t, newCSVFormatter, tabs)
	files := openZip(t, out)
	if len(files) != len(tabs) {
		t.Fatalf("%d entries, want %d", len(files), len(tabs))
	}
	names := map[string]bool{}
	for i, f := range files {
		tab := tabs[i]
		where := fmt.Sprintf("entry %q", f.Name)
		if f.Comment != tab.meta.Name {
			t.Errorf("%s: comment %q, want the table name %q", where, f.Comment, tab.meta.Name)
		}
		if f.Method != zip.Store || f.Flags&0x8 == 0 {
			t.Errorf("%s: method %d flags %#x, want stored with a data descriptor", where, f.Method, f.Flags)
		}
		if !f.Modified.Equal(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) && !f.Modified.IsZero() {
			t.Errorf("%s: modified %v, want the fixed 1980-01-01", where, f.Modified)
		}
		fold := strings.ToLower(f.Name)
		if names[fold] {
			t.Errorf("%s: name not unique (case-insensitively)", where)
		}
		names[fold] = true
		checkSafeEntryName(t, f.Name)

		data := readZipEntry(t, f)
		if uint64(len(data)) != f.UncompressedSize64 {
			t.Errorf("%s: %d bytes, directory says %d", where, len(data), f.UncompressedSize64)
		}
		recs, err := parseCSVStrict(data)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s: no header", where)
		}
		var header []string
		for _, h := range recs[0] {
			if !h.quoted {
				t.Errorf("%s: header field %q not quoted", where, h.s)
			}
			header = append(header, h.s)
		}
		if strings.Join(header, "\x00") != strings.Join(tab.meta.Columns, "\x00") {
			t.Errorf("%s: header %q, want %q", where, header, tab.meta.Columns)
		}
		var rows [][]Value
		for _, rec := range recs[1:] {
			var row []Value
			for _, fld := range rec {
				v, err := csvValue(fld)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				row = append(row, v)
			}
			rows = append(rows, row)
		}
		compareTypedRows(t, where, rows, tab.rows)

		checkEncodingCSV(t, where, data, tab)
	}
	// The two names that differ only in case got distinct entry names.
	if !names["é.csv"] || !names["é~2.csv"] {
		t.Errorf("case-colliding tables: entry names %v, want é.csv and é~2.csv (folded)", names)
	}
}

// checkEncodingCSV parses an entry with Go's encoding/csv in strict mode
// and checks each field's text.
func checkEncodingCSV(t *testing.T, where string, data []byte, tab fixtureTable) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(data))
	r.LazyQuotes = false
	r.FieldsPerRecord = len(tab.meta.Columns)
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: encoding/csv: %v", where, err)
	}
	if len(recs) != len(tab.rows)+1 {
		t.Fatalf("%s: encoding/csv read %d records, want %d", where, len(recs), len(tab.rows)+1)
	}
	for i, row := range tab.rows {
		for j, v := range row {
			got := recs[i+1][j]
			switch v.Type {
			case TypeNull:
				if got != "" {
					t.Errorf("%s: NULL read as %q", where, got)
				}
			case TypeText:
				// encoding/csv turns every CRLF into LF, inside quotes too.
				if want := strings.ReplaceAll(string(v.Bytes), "\r\n", "\n"); got != want {
					t.Errorf("%s: text read as %q, want %q", where, got, want)
				}
			case TypeInteger:
				if got != strconv.FormatInt(v.Int, 10) {
					t.Errorf("%s: integer %d read as %q", where, v.Int, got)
				}
			case TypeReal:
				if !strings.ContainsAny(got, ".e") && got != "NaN" {
					t.Errorf("%s: real %v written %q, which does not read as a real", where, v.Real, got)
				}
			case TypeBlob:
				if want := `\x` + hex.EncodeToString(v.Bytes); got != want {
					t.Errorf("%s: blob read as %q, want %q", where, got, want)
				}
			}
		}
	}
}

// checkSafeEntryName asserts the documented safety properties.
func checkSafeEntryName(t *testing.T, name string) {
	t.Helper()
	if !utf8.ValidString(name) || strings.ContainsAny(name, "/\\\x00:*?\"<>|") ||
		strings.Contains(name, "..") || strings.HasPrefix(name, ".") || len(name) > 255 {
		t.Errorf("unsafe entry name %q", name)
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			t.Errorf("entry name %q has a control byte", name)
		}
	}
}

func unescapeEntryName(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("short escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b = append(b, byte(v))
		i += 2
	}
	return string(b), nil
}

func TestEscapeEntryName(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", "%_empty_"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "%2E%2E%2E"},
		{"../etc/passwd", "%2E%2E%2Fetc%2Fpasswd"},
		{"a..b", "a.%2Eb"},
		{"a.b", "a.b"},
		{"end.", "end%2E"},
		{".hidden", "%2Ehidden"},
		{`C:\x`, "C%3A%5Cx"},
		{"100%~", "100%25%7E"},
		{"nul\x00ctl\x1f\x7f", "nul%00ctl%1F%7F"},
		{"bad\xff\xc3", "bad%FF%C3"},
		{"ünï cødé ✓", "ünï cødé ✓"},
		{`q"*?<>|`, "q%22%2A%3F%3C%3E%7C"},
		{"space ok", "space ok"},
		{long, strings.Repeat("é", zipMaxBase/2)},
		{strings.Repeat("a", 199) + ".b", strings.Repeat("a", 199)}, // truncated; no trailing '.'
	}
	for _, tt := range tests {
		got := escapeEntryName(tt.in)
		if got != tt.want {
			t.Errorf("escapeEntryName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkSafeEntryName(t, got+".csv")
		if len(got) < zipMaxBase-3 && tt.in != "" {
			back, err := unescapeEntryName(got)
			if err != nil || back != tt.in {
				t.Errorf("unescape(%q) = %q, %v; want %q", got, back, err, tt.in)
			}
		}
	}
}

func TestUniqueEntryNames(t *testing.T) {
	var z zipWriter
	var b []byte
	long := strings.Repeat("x", 250)
	for _, name := range []string{"a", "A", "a", long, long + "y", "b"} {
		z.beginEntry(&b, name)
	}
	z.finish(&b)
	var got []string
	for _, e := range z.entries {
		got = append(got, e.name)
	}
	want := []string{"a.csv", "A~2.csv", "a~3.csv", strings.Repeat("x", 200) + ".csv", strings.Repeat("x", 200) + "~2.csv", "b.csv"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("names %q, want %q", got, want)
	}
	openZip(t, b)
}

func TestCSVUnzipTest(t *testing.T) {
	unzip := requireTool(t, "unzip")
	path := filepath.Join(t.TempDir(), "dump.zip")
	if err := os.WriteFile(path, renderFixture(t, newCSVFormatter, formatFixtures()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(unzip, "-t", path).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
}

func TestCSVEmptyArchive(t *testing.T) {
	var b []byte
	runFmtEvents(newCSVFormatter(), &b, []fmtEvent{{kind: 'B'}, {kind: 'S'}, {kind: 'Z'}})
	if files := openZip(t, b); len(files) != 0 {
		t.Errorf("%d entries, want none", len(files))
	}
	if len(b) != 22 {
		t.Errorf("empty archive is %d bytes, want the 22-byte end record", len(b))
	}
}

// TestCSVSQLiteImport reloads a table with `sqlite3 .import --csv` into a
// table of the same declared types and reads it back with its storage
// classes. The documented mapping: NULL and the empty string both import
// as ”; a BLOB imports as its \x-hex text; everything else as itself,
// converted by the column's affinity (so an untyped column gets text).
func TestCSVSQLiteImport(t *testing.T) {
	sqlite3 := requireTool(t, "sqlite3")
	meta := tableMeta{Name: "typed", Columns: []string{"i", "r", "t", "b", "u"}}
	rows := [][]Value{
		{tvInt(1), tvReal(1), tvText("plain"), tvBlob(0, 0xff), tvInt(7)},
		{tvNull(), tvNull(), tvNull(), tvNull(), tvNull()},
		{tvInt(math.MaxInt64), tvReal(negativeZero()), tvText(""), tvBlob(), tvReal(2.5)},
		{tvInt(math.MinInt64), tvReal(math.Inf(1)), tvText(`a "quoted", text`), tvBlobS("x"), tvText("t")},
		{tvInt(0), tvReal(math.Inf(-1)), tvText("multi\nline\r\nand cr\r"), tvNull(), tvBlob(1)},
		{tvInt(-1), tvReal(0.1), tvText("héllo ✓"), tvNull(), tvNull()},
		{tvInt(42), tvReal(5e-324), tvText("\xff\xfe"), tvNull(), tvText("")},
		{tvInt(1<<53 + 1), tvReal(1e21), tvText(" spaced "), tvNull(), tvReal(negativeZero())},
		{tvInt(3), tvReal(1.0 / 3), tvText("x"), tvNull(), tvReal(1e-7)},
	}
	want := [][]Value{
		{tvInt(1), tvReal(1), tvText("plain"), tvText(`\x00ff`), tvText("7")},
		{tvText(""), tvText(""), tvText(""), tvText(""), tvText("")},
		// SQLite's text-to-real conversion drops the sign of -0.0.
		{tvInt(math.MaxInt64), tvReal(0), tvText(""), tvText(`\x`), tvText("2.5")},
		{tvInt(math.MinInt64), tvReal(math.Inf(1)), tvText(`a "quoted", text`), tvText(`\x78`), tvText("t")},
		{tvInt(0), tvReal(math.Inf(-1)), tvText("multi\nline\r\nand cr\r"), tvText(""), tvText(`\x01`)},
		{tvInt(-1), tvReal(0.1), tvText("héllo ✓"), tvText(""), tvText("")},
		{tvInt(42), tvReal(5e-324), tvText("\xff\xfe"), tvText(""), tvText("")},
		{tvInt(1<<53 + 1), tvReal(1e21), tvText(" spaced "), tvText(""), tvText("-0.0")},
		{tvInt(3), tvReal(1.0 / 3), tvText("x"), tvText(""), tvText("1e-07")},
	}
	tab := fixtureTable{meta: meta, rows: rows}
	files := openZip(t, renderFixture(t, newCSVFormatter, []fixtureTable{tab}))
	dir := t.TempDir()
	csvPath := filepath.Join(dir, files[0].Name)
	if err := os.WriteFile(csvPath, readZipEntry(t, files[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "reload.db")
	cmd := exec.Command(sqlite3, "-bail", dbPath,
		"CREATE TABLE typed(i INTEGER, r REAL, t TEXT, b BLOB, u)",
		".import --csv --skip 1 '"+csvPath+"' typed")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("sqlite3 .import: %v\n%s", err, out)
	}
	compareTypedRows(t, "reloaded", readTypedRows(t, dbPath, "SELECT i, r, t, b, u FROM typed ORDER BY rowid"), want)
}

// readTypedRows runs query on the database at path and returns its rows with
// their storage classes.
func readTypedRows(t *testing.T, path, query string) [][]Value {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer conn.Close()
	stmt, _, err := conn.PrepareTransient(query)
	if err != nil {
		t.Fatalf("prepare %q: %v", query, err)
	}
	defer stmt.Finalize()
	var rows [][]Value
	for {
		ok, err := stmt.Step()
		if err != nil {
			t.Fatalf("step %q: %v", query, err)
		}
		if !ok {
			return rows
		}
		row := make([]Value, stmt.ColumnCount())
		for i := range row {
			switch stmt.ColumnType(i) {
			case sqlite.TypeInteger:
				row[i] = tvInt(stmt.ColumnInt64(i))
			case sqlite.TypeFloat:
				row[i] = tvReal(stmt.ColumnFloat(i))
			case sqlite.TypeText:
				row[i] = tvText(stmt.ColumnText(i))
			case sqlite.TypeBlob:
				b := make([]byte, stmt.ColumnLen(i))
				stmt.ColumnBytes(i, b)
				row[i] = tvBlob(b...)
			default:
				row[i] = tvNull()
			}
		}
		rows = append(rows, row)
	}
}

// TestCSVShape pins the exact bytes of the documented example
// (docs/formats-csv-json.md).
func TestCSVShape(t *testing.T) {
	tab := fixtureTable{
		meta: tableMeta{Name: "notes", Columns: []string{"id", "body", "score", "raw"}},
		rows: [][]Value{
			{tvInt(1), tvText("héllo, \"world\"\n"), tvReal(1), tvBlob(0xde, 0xad)},
			{tvInt(math.MinInt64), tvText("bad \xff"), tvReal(math.Inf(-1)), tvNull()},
			{tvInt(3), tvText(""), tvReal(negativeZero()), tvText("a\x00b")},
		},
	}
	want := "\"id\",\"body\",\"score\",\"raw\"\r\n" +
		"1,\"héllo, \"\"world\"\"\n\",1.0,\\xdead\r\n" +
		"-9223372036854775808,\"bad \xff\",-1e999,\r\n" +
		"3,\"\",-0.0,\"a\x00b\"\r\n"
	files := openZip(t, renderFixture(t, newCSVFormatter, []fixtureTable{tab}))
	if len(files) != 1 || files[0].Name != "notes.csv" || files[0].Comment != "notes" {
		t.Fatalf("entries: %+v", files)
	}
	if got := string(readZipEntry(t, files[0])); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
