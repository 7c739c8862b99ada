package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/objstore/file"
)

// chinookTables is how many tables chinook.sqlite holds.
const chinookTables = 11

func TestDumpFormats(t *testing.T) {
	dir := t.TempDir()
	db := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	before := fileSHA(t, db)
	wantRows := strings.TrimSpace(sqlite3(t, db, "SELECT count(*) FROM Track;"))

	tests := []struct {
		name   string
		args   []string
		stdout bool
		check  func(t *testing.T, out []byte)
	}{
		{"sql to file", []string{"--format", "sql"}, false, checkSQL(wantRows)},
		{"sql to stdout", []string{"--format", "sql"}, true, checkSQL(wantRows)},
		{"sql default format to stdout", nil, true, checkSQL(wantRows)},
		{"sql with rowids", []string{"--preserve-rowids"}, false, checkSQL(wantRows)},
		{"sql small chunks", []string{"--chunk-size", "7"}, false, checkSQL(wantRows)},
		{"json", []string{"--format", "json"}, false, checkJSON},
		{"json to stdout", []string{"--format", "json"}, true, checkJSON},
		{"ndjson", []string{"--format", "ndjson"}, false, checkNDJSON},
		{"csv", []string{"--format", "csv"}, false, checkCSVZip(chinookTables)},
		{"csv two tables", []string{"--format", "csv", "--tables", "Artist,Album"}, false, checkCSVZip(2)},
		{"csv excluded", []string{"--format", "csv", "--exclude", "Track"}, false, checkCSVZip(chinookTables - 1)},
		{"schema only", []string{"--schema-only"}, false, func(t *testing.T, out []byte) {
			if !bytes.Contains(out, []byte("CREATE TABLE")) || bytes.Contains(out, []byte("INSERT INTO")) {
				t.Fatalf("schema-only dump has no CREATE or has INSERTs:\n%.500s", out)
			}
		}},
		{"data only", []string{"--data-only"}, false, func(t *testing.T, out []byte) {
			if bytes.Contains(out, []byte("CREATE TABLE")) || !bytes.Contains(out, []byte("INSERT INTO")) {
				t.Fatalf("data-only dump has a CREATE or no INSERTs:\n%.500s", out)
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"dump", "--db", db}, tc.args...)
			out := filepath.Join(dir, "out", strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			if !tc.stdout {
				args = append(args, "-o", out)
			}
			hashed := i%2 == 0 // --no-sha256 leaves the sha256 out of the summary
			if !hashed {
				args = append(args, "--no-sha256")
			}
			r := runSluice(t, dir, nil, nil, args...)
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.stderr)
			}
			sum := summary(t, r.stderr)
			got := r.stdout
			if !tc.stdout {
				var err error
				if got, err = os.ReadFile(out); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(out + ".tmp"); err == nil {
					t.Fatalf("%s.tmp left behind", out)
				}
				if len(r.stdout) != 0 {
					t.Fatalf("stdout not empty with -o: %.200q", r.stdout)
				}
			}
			if want, has := sha256Hex(got), sum["sha256"]; (hashed && has != want) || (!hashed && has != "") {
				t.Fatalf("hashed %t: summary sha256 %q, output's %s", hashed, has, want)
			}
			if sum["bytes"] != itoa(len(got)) {
				t.Fatalf("summary bytes %s, output has %d", sum["bytes"], len(got))
			}
			tc.check(t, got)
			if after := fileSHA(t, db); after != before {
				t.Fatalf("test %d changed the source database", i)
			}
		})
	}
}

func checkSQL(wantTrackRows string) func(t *testing.T, out []byte) {
	return func(t *testing.T, out []byte) {
		t.Helper()
		if !bytes.HasPrefix(out, []byte("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")) || !bytes.HasSuffix(out, []byte("COMMIT;\n")) {
			t.Fatalf("not a .dump-style script: %.100q … %q", out, out[max(0, len(out)-50):])
		}
		db := filepath.Join(t.TempDir(), "reload.db")
		sqlite3(t, db, string(out))
		if got := strings.TrimSpace(sqlite3(t, db, "SELECT count(*) FROM Track;")); got != wantTrackRows {
			t.Fatalf("reloaded Track has %s rows, want %s", got, wantTrackRows)
		}
	}
}

func checkJSON(t *testing.T, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %.300s", out)
	}
	if _, err := exec.LookPath("jq"); err == nil {
		cmd := exec.Command("jq", "-e", ".")
		cmd.Stdin = bytes.NewReader(out)
		cmd.Stdout = nil
		if err := cmd.Run(); err != nil {
			t.Fatalf("jq rejects the output: %v", err)
		}
	}
}

func checkNDJSON(t *testing.T, out []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("line %d is not JSON: %.300s", n+1, sc.Bytes())
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d NDJSON lines", n)
	}
}

func checkCSVZip(tables int) func(t *testing.T, out []byte) {
	return func(t *testing.T, out []byte) {
		t.Helper()
		zr, err := zip.NewReader(bytes.NewReader(out), int64(len(out)))
		if err != nil {
			t.Fatalf("CSV dump is not a zip: %v", err)
		}
		csvs := 0
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, ".csv") {
				csvs++
			}
		}
		if csvs != tables {
			t.Fatalf("zip has %d CSV entries, want %d", csvs, tables)
		}
	}
}

func TestDumpErrors(t *testing.T) {
	dir := t.TempDir()
	db := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	before := fileSHA(t, db)
	notSQLite := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSQLite, bytes.Repeat([]byte("this is not a database\n"), 300), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "outdir")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
		noFile   string // must not exist afterwards (nor its .tmp)
	}{
		{"missing database", []string{"--db", filepath.Join(dir, "nope.db")}, 1, []string{"nope.db", "does not exist"}, ""},
		{"database is a directory", []string{"--db", dir}, 1, []string{"is a directory"}, ""},
		{"not sqlite", []string{"--db", notSQLite, "-o", filepath.Join(dir, "a.sql")}, 1, []string{"notes.txt"}, filepath.Join(dir, "a.sql")},
		{"unknown table", []string{"--db", db, "--tables", "Artist,NoSuchTable", "-o", filepath.Join(dir, "b.sql")}, 1, []string{"NoSuchTable"}, filepath.Join(dir, "b.sql")},
		{"unwritable output dir", []string{"--db", db, "-o", filepath.Join(dir, "missing", "x.sql")}, 1, []string{"missing"}, filepath.Join(dir, "missing", "x.sql")},
		{"output is a directory", []string{"--db", db, "-o", outDir}, 1, []string{"is a directory"}, ""},
		{"output is the database", []string{"--db", db, "-o", db}, 2, []string{"is the database itself"}, ""},
		{"malformed --to", []string{"--db", db, "--to", "s3://"}, 2, []string{"malformed URL", "missing bucket"}, ""},
		{"malformed --to scheme", []string{"--db", db, "--to", "gs://b/k"}, 2, []string{"unsupported scheme"}, ""},
		{"relative file --to", []string{"--db", db, "--to", "file:exports/x.sql"}, 2, []string{"absolute"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runSluice(t, dir, nil, nil, append([]string{"dump"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, tc.code, r.stderr)
			}
			for _, c := range tc.contains {
				if !strings.Contains(r.stderr, c) {
					t.Fatalf("stderr does not mention %q:\n%s", c, r.stderr)
				}
			}
			if tc.noFile != "" {
				for _, p := range []string{tc.noFile, tc.noFile + ".tmp"} {
					if _, err := os.Stat(p); err == nil {
						t.Fatalf("%s exists after a failed dump", p)
					}
				}
			}
			if fileSHA(t, db) != before {
				t.Fatal("the source database changed")
			}
		})
	}
}

// TestDumpKeepsOldOutputOnFailure checks that a failed dump leaves an
// existing output file as it was.
func TestDumpKeepsOldOutputOnFailure(t *testing.T) {
	dir := t.TempDir()
	db := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	out := filepath.Join(dir, "keep.sql")
	if err := os.WriteFile(out, []byte("old contents\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runSluice(t, dir, nil, nil, "dump", "--db", db, "--tables", "Missing", "-o", out)
	if r.code == 0 {
		t.Fatal("dump of a missing table succeeded")
	}
	if b, _ := os.ReadFile(out); string(b) != "old contents\n" {
		t.Fatalf("existing output changed to %.100q", b)
	}
}

// TestDumpLockedDatabase holds an exclusive lock with the sqlite3 CLI:
// the dump waits --busy-timeout, then fails with a clear message.
func TestDumpLockedDatabase(t *testing.T) {
	dir := t.TempDir()
	db := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	locker := exec.Command(testsupport.SQLite3(t), db)
	stdin, err := locker.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := locker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := locker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		locker.Wait()
	}()
	// BEGIN EXCLUSIVE takes the lock at once; the SELECT's output tells
	// us it is held.
	io.WriteString(stdin, "BEGIN EXCLUSIVE;\nSELECT 'locked';\n")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("sqlite3 did not take the lock: %q %v", line, err)
	}
	out := filepath.Join(dir, "locked.sql")
	start := time.Now()
	r := runSluice(t, dir, nil, nil, "dump", "--db", db, "--busy-timeout", "700ms", "-o", out)
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "lock") {
		t.Fatalf("exit %d, want 1 naming the lock:\n%s", r.code, r.stderr)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Fatalf("gave up after %v, before the busy timeout", d)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists after a failed dump", p)
		}
	}
}

// TestDumpInterrupted sends SIGINT mid-dump: sluice exits 1 with a
// message, leaves no output file (nor .tmp), and for a store leaves no
// object and no incomplete upload.
func TestDumpInterrupted(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "big.db")
	sqlite3(t, db, `CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1500000)
INSERT INTO t SELECT x, hex(randomblob(60)) FROM c;`)
	root := filepath.Join(dir, "exports")
	os.Mkdir(root, 0o755)
	out := filepath.Join(dir, "big.sql")
	for _, dest := range [][]string{{"-o", out}, {"--to", "file://" + filepath.ToSlash(root) + "/big.sql"}} {
		t.Run(dest[0], func(t *testing.T) {
			cmd := exec.Command(sluiceBin(t), append([]string{"dump", "--db", db, "--chunk-size", "100", "--progress", "always"}, dest...)...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The first progress update means rows are flowing; for the
			// store, wait until a part is stored, so there is an upload
			// to abort.
			ready := regexp.MustCompile(` rows`)
			if dest[0] == "--to" {
				ready = regexp.MustCompile(`[1-9][0-9]* parts up`)
			}
			br := bufio.NewReader(stderr)
			var seen bytes.Buffer
			for !ready.Match(seen.Bytes()) {
				b, err := br.ReadByte()
				if err != nil {
					t.Fatalf("no progress before exit: %q", seen.String())
				}
				seen.WriteByte(b)
			}
			cmd.Process.Signal(os.Interrupt)
			rest, _ := io.ReadAll(br)
			err = cmd.Wait()
			msg := seen.String() + string(rest)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(msg, "interrupted") {
				t.Fatalf("exit %v, want 1 and 'interrupted':\n%s", err, msg)
			}
			for _, p := range []string{out, out + ".tmp", filepath.Join(root, "big.sql")} {
				if _, err := os.Stat(p); err == nil {
					t.Fatalf("%s exists after an interrupted dump", p)
				}
			}
			store, err := file.New(root, file.Options{}, testsupport.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			if ups, err := store.ListUploads(context.Background(), ""); err != nil || len(ups) != 0 {
				t.Fatalf("incomplete uploads left: %v %v", ups, err)
			}
		})
	}
}
