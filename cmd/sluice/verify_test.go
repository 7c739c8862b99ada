package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/testsupport"
)

// TestVerifyCLI: dumps to a store and to files get manifests that
// `sluice verify` checks, in every format; a flipped value fails it with
// exit 1 naming the table.
func TestVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sql", "csv", "json", "ndjson"} {
		t.Run(f+"/store", func(t *testing.T) {
			url := "file://" + store + "/d." + f + ".zst"
			if r := runSluice(t, dir, nil, nil, "dump", "--db", src, "--format", f, "--to", url); r.code != 0 {
				t.Fatalf("dump: %d %s", r.code, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(store, "d."+f+".zst.manifest.json")); err != nil {
				t.Fatalf("no manifest beside the object: %v", err)
			}
			r := runSluice(t, dir, nil, nil, "verify", url)
			if r.code != 0 || !strings.Contains(string(r.stdout), "verified: 11 tables, 15607 rows match") {
				t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if f == "csv" && !strings.Contains(string(r.stdout), "lexical form") {
				t.Errorf("csv output does not say how types are read:\n%s", r.stdout)
			}
		})
	}
	t.Run("file/flipped", func(t *testing.T) {
		out := filepath.Join(dir, "d.sql")
		if r := runSluice(t, dir, nil, nil, "dump", "--db", src, "-o", out, "--manifest"); r.code != 0 {
			t.Fatalf("dump: %d %s", r.code, r.stderr)
		}
		if r := runSluice(t, dir, nil, nil, "verify", out); r.code != 0 {
			t.Fatalf("verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		b, _ := os.ReadFile(out)
		b = bytes.Replace(b, []byte("'Princess of the Dawn'"), []byte("'Princess of the Dawm'"), 1)
		os.WriteFile(out, b, 0o644)
		r := runSluice(t, dir, nil, nil, "verify", out)
		if r.code != 1 || !strings.Contains(string(r.stdout), `first difference in table "Track"`) {
			t.Fatalf("flipped value: exit %d\n%s", r.code, r.stdout)
		}
		// With the source, the row is named too.
		r = runSluice(t, dir, nil, nil, "verify", "--db", src, out)
		if r.code != 1 || !strings.Contains(string(r.stdout), `table "Track" at key rowid 5`) {
			t.Fatalf("--db: exit %d\n%s", r.code, r.stdout)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		if r := runSluice(t, dir, nil, []byte("x"), "verify", "-"); r.code != 2 {
			t.Fatalf("stdin without --manifest: exit %d %s", r.code, r.stderr)
		}
		os.WriteFile(filepath.Join(dir, "lonely.sql"), []byte("SELECT 1;"), 0o644)
		if r := runSluice(t, dir, nil, nil, "verify", filepath.Join(dir, "lonely.sql")); r.code != 1 || !strings.Contains(r.stderr, "no manifest") {
			t.Fatalf("missing manifest: exit %d %s", r.code, r.stderr)
		}
	})
}

// TestVerifyPlainSQLite3Dump: `sluice verify --db` accepts the sqlite3
// shell's own .dump output and catches one edited row.
func TestVerifyPlainSQLite3Dump(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	plain := sqliteDump(t, src)
	path := filepath.Join(dir, "plain.sql")
	os.WriteFile(path, []byte(plain), 0o644)
	if r := runSluice(t, dir, nil, nil, "verify", "--db", src, path); r.code != 0 {
		t.Fatalf("plain dump: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	edited := strings.Replace(plain, "INSERT INTO Genre VALUES(3,'Metal');", "INSERT INTO Genre VALUES(3,'Metall');", 1)
	if edited == plain {
		t.Fatal("row to edit not found")
	}
	os.WriteFile(path, []byte(edited), 0o644)
	r := runSluice(t, dir, nil, nil, "verify", "--db", src, path)
	if r.code != 1 || !strings.Contains(string(r.stdout), `table "Genre" at key rowid 3`) {
		t.Fatalf("edited dump: exit %d\n%s", r.code, r.stdout)
	}
}
