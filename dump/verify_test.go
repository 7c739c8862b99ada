package dump_test

// Verification end to end at the engine level: the digests a dump
// carries are recomputed from its bytes (package verify) for every
// format, and a flipped value is caught in the right table. The CLI
// tests (cmd/sluice/verify_test.go) run the same through sluice restore.

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/dump"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"github.com/sluice-dev/sluice/internal/testsupport/sqlrestore"
	"github.com/sluice-dev/sluice/verify"
)

var allFormats = []sluice.Format{sluice.FormatSQL, sluice.FormatCSV, sluice.FormatJSON, sluice.FormatJSONTyped, sluice.FormatNDJSON}

// dumpWithDigests dumps db and returns the bytes and the digests.
func dumpWithDigests(t *testing.T, db string, opts dump.Options) ([]byte, dump.Digests) {
	t.Helper()
	ctx := context.Background()
	src, err := dump.Open(ctx, db, opts, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	cur, err := src.Dump(ctx, &buf, dump.Cursor{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := src.Digests(cur)
	if !ok {
		t.Fatal("no digests")
	}
	return buf.Bytes(), d
}

func verifyBytes(t *testing.T, b []byte, format sluice.Format, preserve bool, want dump.Digests) (*verify.Report, error) {
	t.Helper()
	got, err := verify.FromDump(context.Background(), verify.Input{
		R: bytes.NewReader(b), Format: format, PreserveRowids: preserve, Restore: sqlrestore.Restore, TempDir: t.TempDir(),
	}, testsupport.Logger(t))
	if err != nil {
		return nil, err
	}
	return verify.Compare(want, got, verify.EmptyTablesOmitted(format)), nil
}

func TestVerifyEveryFormat(t *testing.T) {
	dir := t.TempDir()
	dbs := map[string]string{
		"edge":      dump.BuildEdgeDB(t, dir),
		"chinook":   testsupport.CorpusCopy(t, "chinook.sqlite", dir),
		"northwind": dump.NorthwindDB(t, dir),
	}
	for name, db := range dbs {
		for _, format := range allFormats {
			for _, preserve := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/preserve=%v", name, format, preserve), func(t *testing.T) {
					opts := dump.Options{Format: format, PreserveRowids: preserve}
					b, want := dumpWithDigests(t, db, opts)
					rep, err := verifyBytes(t, b, format, preserve, want)
					if err != nil {
						t.Fatal(err)
					}
					if !rep.OK() {
						var out bytes.Buffer
						rep.Print(&out, string(format))
						t.Fatalf("verification failed:\n%s", out.String())
					}
					if format == sluice.FormatSQL && !rep.SchemaChecked {
						t.Error("schema not checked for a SQL dump")
					}
					// The live database gives the same digests as the dump.
					live, err := verify.FromDB(context.Background(), db, opts, testsupport.Logger(t))
					if err != nil {
						t.Fatal(err)
					}
					if rep := verify.Compare(want, live, false); !rep.OK() {
						t.Fatalf("live digests differ: %+v", rep.Mismatch)
					}
				})
			}
		}
	}
}

// TestVerifyCatchesFlippedValue changes one value of table Track inside
// each format's dump, keeping it well-formed, and expects a mismatch
// naming Track.
func TestVerifyCatchesFlippedValue(t *testing.T) {
	db := testsupport.CorpusCopy(t, "chinook.sqlite", t.TempDir())
	// Princess of the Dawn (Track 5) is 375418 ms long; the strings are
	// unique to table Track in every format.
	flips := []struct {
		name       string
		old, new   string // csv and sql
		jold, jnew string // json and ndjson
	}{
		{"text", "Princess of the Dawn", "Princess of the Dawm", "Princess of the Dawn", "Princess of the Dawm"},
		{"integer", ",375418,", ",375419,", `"Milliseconds":375418,`, `"Milliseconds":375419,`},
		// In SQL the column's INTEGER affinity turns 375418.0 back into
		// an integer on restore, so the restored database is unchanged.
		{"integer to real", ",375418,", ",375418.0,", `"Milliseconds":375418,`, `"Milliseconds":375418.0,`},
	}
	for _, format := range allFormats {
		for _, fl := range flips {
			old, new := fl.old, fl.new
			if format == sluice.FormatJSON || format == sluice.FormatJSONTyped || format == sluice.FormatNDJSON {
				old, new = fl.jold, fl.jnew
			}
			if format == sluice.FormatSQL && fl.name == "integer to real" {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", format, fl.name), func(t *testing.T) {
				b, want := dumpWithDigests(t, db, dump.Options{Format: format})
				var bad []byte
				if format == sluice.FormatCSV {
					bad = rewriteZip(t, b, func(data []byte) []byte { return replaceOnce(t, data, old, new) })
				} else {
					bad = replaceOnce(t, b, old, new)
				}
				rep, err := verifyBytes(t, bad, format, false, want)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() || rep.Mismatch.Table != "Track" {
					t.Fatalf("mismatch %+v, want one in table Track", rep.Mismatch)
				}
			})
		}
	}
}

// replaceOnce replaces the first occurrence of old, which must exist.
func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%q not in the dump", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// rewriteZip rewrites a csv dump with f applied to the entry that holds
// the change, keeping names and comments, so the archive stays valid.
func rewriteZip(t *testing.T, b []byte, f func([]byte) []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if zf.Comment == "Track" {
			data = f(data)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: zf.Name, Comment: zf.Comment, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestVerifyPlainCSV: a csv dump of one table is a plain CSV document,
// verified as that table.
func TestVerifyPlainCSV(t *testing.T) {
	db := testsupport.CorpusCopy(t, "chinook.sqlite", t.TempDir())
	opts := dump.Options{Format: sluice.FormatCSV, Tables: []string{"Track"}, PlainCSV: true}
	b, want := dumpWithDigests(t, db, opts)
	for _, tc := range []struct {
		in []byte
		ok bool
	}{{b, true}, {replaceOnce(t, b, "Princess of the Dawn", "Princess of the Dawm"), false}} {
		got, err := verify.FromDump(context.Background(), verify.Input{R: bytes.NewReader(tc.in), Format: sluice.FormatCSV,
			PlainCSVTable: "Track", TempDir: t.TempDir()}, testsupport.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if rep := verify.Compare(want, got, false); rep.OK() != tc.ok {
			t.Fatalf("ok = %v, want %v: %+v", rep.OK(), tc.ok, rep.Mismatch)
		}
	}
}
