package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests run the real binary, built once per test run, so exit codes,
// stderr and file effects are exactly what an operator sees.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sluiceBin returns the path of a freshly built sluice binary.
func sluiceBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "sluice-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{out: string(out), err: err}
		}
	})
	if binErr != nil {
		t.Fatalf("build sluice: %v", binErr)
	}
	return binPath
}

type buildError struct {
	out string
	err error
}

func (b *buildError) Error() string { return b.err.Error() + "\n" + b.out }

// result is one run of the binary.
type result struct {
	code   int
	stdout []byte
	stderr string
}

// runSluice runs the binary with args in dir (the test's temp dir when
// empty) and extra environment variables.
func runSluice(t *testing.T, dir string, env []string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run sluice %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	r := result{code: code, stdout: stdout.Bytes(), stderr: stderr.String()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "internal error") {
		t.Fatalf("sluice %v panicked:\n%s", args, r.stderr)
	}
	return r
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

var summaryRE = regexp.MustCompile(`(\w+)=(\S+)`)

// summary parses the "sluice: ... complete: k=v ..." line on stderr.
func summary(t *testing.T, stderr string) map[string]string {
	t.Helper()
	// A progress bar, when on, shares the summary's line (it is cleared
	// with \r and ANSI codes before the summary is printed).
	for _, line := range strings.Split(stderr, "\n") {
		if i := strings.Index(line, "sluice: "); i >= 0 && strings.Contains(line[i:], " complete: ") {
			line = line[i:]
			m := map[string]string{}
			for _, kv := range summaryRE.FindAllStringSubmatch(line, -1) {
				m[kv[1]] = kv[2]
			}
			return m
		}
	}
	t.Fatalf("no summary line in stderr:\n%s", stderr)
	return nil
}

// sqlite3 runs the sqlite3 CLI on db with input and returns stdout.
func sqlite3(t *testing.T, db, input string) string {
	t.Helper()
	cmd := exec.Command(testsupport.SQLite3(t), "-bail", db)
	cmd.Stdin = strings.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", db, err, stderr.String())
	}
	return string(out)
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, ""},
		{"help dump", []string{"help", "dump"}, 0, "--db path.db"},
		{"version", []string{"version"}, 0, ""},
		{"dump without db", []string{"dump"}, 2, "--db is required"},
		{"dump bad flag", []string{"dump", "--nope"}, 2, "flag provided but not defined"},
		{"dump bad format", []string{"dump", "--db", "x.db", "--format", "xml"}, 2, `unknown format "xml"`},
		{"dump bad compression", []string{"dump", "--db", "x.db", "--compress", "lz4"}, 2, `unknown compression "lz4"`},
		{"dump schema and data only", []string{"dump", "--db", "x.db", "--schema-only", "--data-only"}, 2, "exclude each other"},
		{"dump chunk size zero", []string{"dump", "--db", "x.db", "--chunk-size", "0"}, 2, "--chunk-size 0 out of range"},
		{"dump chunk size huge", []string{"dump", "--db", "x.db", "--chunk-size", "100000000"}, 2, "out of range"},
		{"dump -o and --to", []string{"dump", "--db", "x.db", "-o", "a", "--to", "file:///tmp/x/y"}, 2, "exclude each other"},
		{"dump stray argument", []string{"dump", "--db", "x.db", "extra"}, 2, `unexpected argument "extra"`},
		{"dump readers out of range", []string{"dump", "--db", "x.db", "--readers", "5"}, 2, "--readers 5 out of range"},
		{"dump readers negative", []string{"dump", "--db", "x.db", "--readers", "-1"}, 2, "--readers -1 out of range"},
		{"dump no-sha256 with manifest", []string{"dump", "--db", "x.db", "-o", "a", "--manifest", "--no-sha256"}, 2, "record the output's SHA-256"},
		{"dump no-sha256 with --to", []string{"dump", "--db", "x.db", "--to", "file:///tmp/x/y", "--no-sha256"}, 2, "record the output's SHA-256"},
		{"restore without db", []string{"restore", "x.sql"}, 2, "--db is required"},
		{"restore without file", []string{"restore", "--db", "x.db"}, 2, "want exactly one dump file"},
		{"get without url", []string{"get"}, 2, "want exactly one URL"},
		{"get bad url", []string{"get", "http://example.com/x"}, 2, `unsupported scheme "http"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runSluice(t, dir, nil, nil, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr+string(r.stdout), tc.contains) {
				t.Fatalf("output does not contain %q:\n%s%s", tc.contains, r.stdout, r.stderr)
			}
		})
	}
}

// TestHelp checks that every command's -h, -help and --help print the
// usage on stdout (so it can be paged) with nothing on stderr, and exit 0.
func TestHelp(t *testing.T) {
	dir := t.TempDir()
	for _, c := range commands() {
		for _, flag := range []string{"-h", "-help", "--help"} {
			t.Run(c.name+flag, func(t *testing.T) {
				r := runSluice(t, dir, nil, nil, c.name, flag)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				first, _, _ := strings.Cut(string(r.stdout), "\n")
				if want := "Usage: sluice " + c.name; !strings.HasPrefix(first, want) {
					t.Fatalf("first line %q, want it to start with %q", first, want)
				}
			})
		}
	}
	t.Run("serve lists each environment variable once", func(t *testing.T) {
		out := string(runSluice(t, dir, nil, nil, "serve", "-h").stdout)
		if strings.Count(out, "Environment variables") != 1 {
			t.Fatalf("want one environment heading:\n%s", out)
		}
		for _, v := range envVars {
			if n := strings.Count(out, v.name+" "); n != 1 {
				t.Errorf("%s listed %d times", v.name, n)
			}
		}
	})
}

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		raw     string
		want    storeURL
		wantErr string
	}{
		{raw: "s3://bucket/key.sql", want: storeURL{Scheme: "s3", Bucket: "bucket", Key: "key.sql"}},
		{raw: "s3://bucket/a/b/c.sql.zst", want: storeURL{Scheme: "s3", Bucket: "bucket", Key: "a/b/c.sql.zst"}},
		{raw: "file:///srv/exports/x.sql", want: storeURL{Scheme: "file", Root: "/srv/exports", Key: "x.sql"}},
		{raw: "file://localhost/srv/x.sql", want: storeURL{Scheme: "file", Root: "/srv", Key: "x.sql"}},
		{raw: "", wantErr: "empty"},
		{raw: "bucket/key", wantErr: "missing scheme"},
		{raw: "s3://", wantErr: "missing bucket"},
		{raw: "s3:///key", wantErr: "missing bucket"},
		{raw: "s3://bucket", wantErr: "missing object key"},
		{raw: "s3://bucket/", wantErr: "missing object key"},
		{raw: "s3://bucket/dir/", wantErr: "missing object key"},
		{raw: "s3://bucket/a/../b", wantErr: "'..' segment"},
		{raw: "s3://bucket/a//b", wantErr: "empty path segment"},
		{raw: "s3://user:pw@bucket/k", wantErr: "credentials"},
		{raw: "s3://bucket:9000/k", wantErr: "no port"},
		{raw: "s3://bucket/k?x=1", wantErr: "query"},
		{raw: "s3://bucket/a\\b", wantErr: "backslash"},
		{raw: "file://host/srv/x", wantErr: "no host"},
		{raw: "file:relative/x", wantErr: "absolute"},
		{raw: "file:///x.sql", wantErr: "store directory"},
		{raw: "file:///srv/dir/", wantErr: "missing file name"},
		{raw: "file:///srv/../etc/x", wantErr: "not clean"},
		{raw: "ftp://host/x", wantErr: `unsupported scheme "ftp"`},
		{raw: "s3://bu cket/k", wantErr: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := parseStoreURL(tc.raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.raw = ""
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestREADMEListsEveryFlag keeps the README's CLI reference complete: each
// flag a command's -h prints must appear in the README as `--name` (or
// `-name` for one-letter flags).
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testsupport.ModuleRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		out := string(runSluice(t, t.TempDir(), nil, nil, c.name, "-h").stdout)
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "  -") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "  -"), " ")
			want := "`--" + name
			if len(name) == 1 {
				want = "`-" + name
			}
			if !strings.Contains(string(readme), want) {
				t.Errorf("README does not list %s's flag %s", c.name, want+"`")
			}
		}
	}
}
