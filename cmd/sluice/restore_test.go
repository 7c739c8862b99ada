package main

import (
	"bytes"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sqliteDump is the sqlite3 CLI's .dump of db: two databases with equal
// dumps hold the same schema and values.
func sqliteDump(t *testing.T, db string) string {
	t.Helper()
	return sqlite3(t, db, ".dump\n")
}

func TestRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	want := sqliteDump(t, src)

	tests := []struct {
		name     string
		compress string
		file     string // dump file name; the suffix may select compression
		stdin    bool
	}{
		{"plain", "", "plain.sql", false},
		{"zstd by suffix", "zstd", "z.sql.zst", false},
		{"gzip by suffix", "gzip", "g.sql.gz", false},
		{"zstd by magic", "zstd", "zstd-no-suffix", false},
		{"gzip by magic", "gzip", "gzip-no-suffix", false},
		{"zstd from stdin", "zstd", "stdin.zst", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dumpFile := filepath.Join(dir, tc.file)
			args := []string{"dump", "--db", src, "-o", dumpFile}
			if tc.compress != "" {
				args = append(args, "--compress", tc.compress)
			}
			if r := runSluice(t, dir, nil, nil, args...); r.code != 0 {
				t.Fatalf("dump exit %d:\n%s", r.code, r.stderr)
			}
			newDB := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".db")
			var r result
			if tc.stdin {
				b, err := os.ReadFile(dumpFile)
				if err != nil {
					t.Fatal(err)
				}
				r = runSluice(t, dir, nil, b, "restore", "--db", newDB, "-")
			} else {
				r = runSluice(t, dir, nil, nil, "restore", "--db", newDB, dumpFile)
			}
			if r.code != 0 {
				t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
			}
			if s := summary(t, r.stderr); s["statements"] == "" || s["statements"] == "0" {
				t.Fatalf("restore summary: %v", s)
			}
			if got := sqliteDump(t, newDB); got != want {
				t.Fatalf("restored database differs from the source (%d vs %d bytes of .dump)", len(got), len(want))
			}
			if _, err := os.Stat(newDB + ".tmp"); err == nil {
				t.Fatal("restore left its .tmp behind")
			}
		})
	}
}

// TestRestoreSQLiteDump restores a script written for the sqlite3 CLI
// (northwind.sql) and compares with the CLI's own load of it. The corpus
// file has CRLF line ends, which the CLI drops to LF as it reads lines
// (inside string literals too) while sluice keeps every byte, so both
// load an LF copy.
func TestRestoreSQLiteDump(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(testsupport.CorpusCopy(t, "northwind.sql", dir))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	script := filepath.Join(dir, "northwind-lf.sql")
	if err := os.WriteFile(script, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "ref.db")
	// Without a transaction the CLI would fsync every statement.
	sqlite3(t, ref, "PRAGMA synchronous=OFF;\nPRAGMA journal_mode=MEMORY;\n"+string(b))
	got := filepath.Join(dir, "got.db")
	if r := runSluice(t, dir, nil, nil, "restore", "--db", got, script); r.code != 0 {
		t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
	}
	if sqliteDump(t, got) != sqliteDump(t, ref) {
		t.Fatal("sluice restore and the sqlite3 CLI built different databases from northwind.sql")
	}
}

func TestRestoreErrors(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	good := filepath.Join(dir, "good.sql")
	if r := runSluice(t, dir, nil, nil, "dump", "--db", src, "--tables", "Artist", "-o", good); r.code != 0 {
		t.Fatalf("dump exit %d:\n%s", r.code, r.stderr)
	}
	existing := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(existing, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.sql")
	os.WriteFile(bad, []byte("CREATE TABLE t(a);\nINSERT INTO t VALUES(1);\nINSERT INTO nosuch VALUES(2);\n"), 0o644)
	truncated := filepath.Join(dir, "trunc.sql.zst")
	if r := runSluice(t, dir, nil, nil, "dump", "--db", src, "-o", truncated); r.code != 0 {
		t.Fatalf("dump exit %d:\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(truncated); err == nil {
		os.WriteFile(truncated, b[:len(b)/2], 0o644)
	}

	tests := []struct {
		name     string
		db       string
		args     []string
		code     int
		contains string
	}{
		{"existing without force", existing, []string{good}, 1, "already exists; use --force"},
		{"missing dump", filepath.Join(dir, "m.db"), []string{filepath.Join(dir, "nope.sql")}, 1, "nope.sql"},
		{"failing statement", filepath.Join(dir, "f.db"), []string{bad}, 1, "nosuch"},
		{"truncated zstd", filepath.Join(dir, "t.db"), []string{truncated}, 1, "load"},
		{"missing directory", filepath.Join(dir, "no", "x.db"), []string{good}, 1, "does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runSluice(t, dir, nil, nil, append([]string{"restore", "--db", tc.db}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.contains) {
				t.Fatalf("stderr does not contain %q:\n%s", tc.contains, r.stderr)
			}
			if tc.db != existing {
				for _, p := range []string{tc.db, tc.db + ".tmp"} {
					if _, err := os.Stat(p); err == nil {
						t.Fatalf("%s exists after a failed restore", p)
					}
				}
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "precious" {
		t.Fatal("restore without --force changed an existing file")
	}
	if r := runSluice(t, dir, nil, nil, "restore", "--force", "--db", existing, good); r.code != 0 {
		t.Fatalf("restore --force exit %d:\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(sqlite3(t, existing, "SELECT count(*) FROM Artist;")); got != "275" {
		t.Fatalf("forced restore has %s artists, want 275", got)
	}
}

// TestReadmeSampleCommand runs the README's server-less one-liner: build
// the bundled sample database and dump it with zstd.
func TestReadmeSampleCommand(t *testing.T) {
	dir := t.TempDir()
	sample := filepath.Join(testsupport.ModuleRoot(), "testdata", "sample.sql")
	if r := runSluice(t, dir, nil, nil, "restore", "--db", "sample.db", sample); r.code != 0 {
		t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
	}
	r := runSluice(t, dir, nil, nil, "dump", "--db", "sample.db", "-o", "sample.sql.zst")
	if r.code != 0 {
		t.Fatalf("dump exit %d:\n%s", r.code, r.stderr)
	}
	// 15 rows in the tables, plus sqlite_sequence's.
	if s := summary(t, r.stderr); (s["rows"] != "15" && s["rows"] != "16") || s["sha256"] != fileSHA(t, filepath.Join(dir, "sample.sql.zst")) {
		t.Fatalf("summary %v", s)
	}
}

// TestRestoreUntrustedDump restores hostile dumps with the real binary:
// each fails with a clear message and a non-zero exit, creates no
// database, and touches no other file.
func TestRestoreUntrustedDump(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.db")
	sqlite3(t, victim, "CREATE TABLE v(a); INSERT INTO v VALUES (1);\n")
	before, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "planted.db")
	tests := []struct{ name, dump, contains string }{
		{"attach and change another database", "BEGIN TRANSACTION;\nATTACH DATABASE '" + victim + "' AS v;\nDELETE FROM v.v;\nCOMMIT;\n", "ATTACH"},
		{"attach a new file", "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nATTACH '" + planted + "' AS p;\nCREATE TABLE p.x(a);\nCOMMIT;\n", "ATTACH"},
		{"vacuum into", "CREATE TABLE t(a);\nVACUUM INTO '" + planted + "';\n", "VACUUM"},
		{"writable_schema", "BEGIN TRANSACTION;\nCREATE TABLE t(a);\nPRAGMA writable_schema=ON;\nUPDATE sqlite_schema SET rootpage = 1 WHERE name = 't';\nCOMMIT;\n", "may not be modified"},
		{"other pragma", "PRAGMA journal_mode=OFF;\nCREATE TABLE t(a);\n", "PRAGMA journal_mode"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dump := filepath.Join(dir, fmt.Sprintf("evil%d.sql", i))
			os.WriteFile(dump, []byte(tc.dump), 0o644)
			db := filepath.Join(dir, fmt.Sprintf("restored%d.db", i))
			r := runSluice(t, dir, nil, nil, "restore", "--db", db, dump)
			if r.code == 0 || !strings.Contains(r.stderr, tc.contains) {
				t.Fatalf("exit %d, want non-zero with %q:\n%s", r.code, tc.contains, r.stderr)
			}
			for _, p := range []string{db, db + ".tmp", planted} {
				if _, err := os.Stat(p); err == nil {
					t.Fatalf("%s exists after a refused restore", p)
				}
			}
			if after, _ := os.ReadFile(victim); !bytes.Equal(after, before) {
				t.Fatal("the dump changed another database")
			}
		})
	}
}
