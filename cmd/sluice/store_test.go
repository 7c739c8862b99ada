package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/objstore/file"
)

// TestDumpToFileStore streams dumps into the local directory store with
// --to file://, downloads them with get, and restores them.
func TestDumpToFileStore(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	want := sqliteDump(t, src)
	root := filepath.Join(dir, "exports")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"chinook.sql", "chinook.sql.zst", "chinook.sql.gz"} {
		t.Run(name, func(t *testing.T) {
			u := "file://" + filepath.ToSlash(root) + "/" + name
			r := runSluice(t, dir, nil, nil, "dump", "--db", src, "--to", u, "--progress", "always")
			if r.code != 0 {
				t.Fatalf("dump --to exit %d:\n%s", r.code, r.stderr)
			}
			dumpSum := summary(t, r.stderr)
			got := filepath.Join(dir, "got-"+name)
			r = runSluice(t, dir, nil, nil, "get", u, "-o", got)
			if r.code != 0 {
				t.Fatalf("get exit %d:\n%s", r.code, r.stderr)
			}
			getSum := summary(t, r.stderr)
			if getSum["sha256"] != dumpSum["sha256"] || getSum["verified"] != "true" || fileSHA(t, got) != dumpSum["sha256"] {
				t.Fatalf("dump %v, get %v", dumpSum, getSum)
			}
			// To stdout, with the progress bar forced on.
			r = runSluice(t, dir, nil, nil, "get", u, "-o", "-", "--progress", "always")
			if r.code != 0 || sha256Hex(r.stdout) != dumpSum["sha256"] {
				t.Fatalf("get -o -: exit %d, sha256 %s:\n%s", r.code, sha256Hex(r.stdout), r.stderr)
			}
			restored := filepath.Join(dir, "restored-"+name+".db")
			if r := runSluice(t, dir, nil, nil, "restore", "--db", restored, got); r.code != 0 {
				t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
			}
			if sqliteDump(t, restored) != want {
				t.Fatal("restored database differs from the source")
			}
			// The store never overwrites: a second dump to the key fails.
			r = runSluice(t, dir, nil, nil, "dump", "--db", src, "--to", u)
			if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
				t.Fatalf("second dump to %s: exit %d:\n%s", u, r.code, r.stderr)
			}
			// get refuses to replace a file without --force.
			r = runSluice(t, dir, nil, nil, "get", u, "-o", got)
			if r.code != 1 || !strings.Contains(r.stderr, "--force") {
				t.Fatalf("get over an existing file: exit %d:\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestGetResume checks the .part resume logic: a part with the same ETag
// and size is continued with a ranged read (shown by a corrupted prefix
// failing verification), while a part from another version restarts.
func TestGetResume(t *testing.T) {
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	root := filepath.Join(dir, "exports")
	os.Mkdir(root, 0o755)
	u := "file://" + filepath.ToSlash(root) + "/c.sql"
	if r := runSluice(t, dir, nil, nil, "dump", "--db", src, "--to", u); r.code != 0 {
		t.Fatalf("dump exit %d:\n%s", r.code, r.stderr)
	}
	store, err := file.New(root, file.Options{}, testsupport.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := store.Head(context.Background(), "c.sql")
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full.sql")
	if r := runSluice(t, dir, nil, nil, "get", u, "-o", full); r.code != 0 {
		t.Fatalf("get exit %d:\n%s", r.code, r.stderr)
	}
	body, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	half := len(body) / 2
	garbage := make([]byte, half)

	tests := []struct {
		name     string
		prefix   []byte
		state    partState
		code     int
		contains string
	}{
		{"resume good prefix", body[:half], partState{ETag: info.ETag, Size: info.Size}, 0, "verified=true"},
		{"resume corrupt prefix is caught", garbage, partState{ETag: info.ETag, Size: info.Size}, 1, "checksum mismatch"},
		{"other version restarts", garbage, partState{ETag: "other", Size: info.Size}, 0, "verified=true"},
		{"complete part", body, partState{ETag: info.ETag, Size: info.Size}, 0, "verified=true"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("out%d.sql", i))
			os.WriteFile(out+".part", tc.prefix, 0o644)
			b, _ := json.Marshal(tc.state)
			os.WriteFile(out+".part.json", b, 0o644)
			r := runSluice(t, dir, nil, nil, "get", u, "-o", out, "--log-level", "info")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.contains) {
				t.Fatalf("exit %d (want %d), stderr:\n%s", r.code, tc.code, r.stderr)
			}
			if tc.code == 0 {
				if fileSHA(t, out) != fileSHA(t, full) {
					t.Fatal("resumed download differs")
				}
				for _, p := range []string{out + ".part", out + ".part.json"} {
					if _, err := os.Stat(p); err == nil {
						t.Fatalf("%s left behind", p)
					}
				}
			} else if _, err := os.Stat(out); err == nil {
				t.Fatal("a failed download produced the output file")
			}
		})
	}
}

func TestDumpToS3(t *testing.T) {
	srv := testsupport.S3(t)
	env := srv.AWSEnv()
	dir := t.TempDir()
	src := testsupport.CorpusCopy(t, "chinook.sqlite", dir)
	want := sqliteDump(t, src)
	bucket := srv.NewBucket(t, "sluice-cli")
	u := "s3://" + bucket + "/dumps/chinook.sql.zst"
	r := runSluice(t, dir, env, nil, "dump", "--db", src, "--to", u, "--s3-path-style")
	if r.code != 0 {
		t.Fatalf("dump --to s3 exit %d:\n%s", r.code, r.stderr)
	}
	dumpSum := summary(t, r.stderr)
	got := filepath.Join(dir, "got.sql.zst")
	r = runSluice(t, dir, env, nil, "get", u, "-o", got, "--s3-path-style")
	if r.code != 0 {
		t.Fatalf("get exit %d:\n%s", r.code, r.stderr)
	}
	if s := summary(t, r.stderr); s["sha256"] != dumpSum["sha256"] || s["verified"] != "true" {
		t.Fatalf("dump %v, get %v", dumpSum, s)
	}
	restored := filepath.Join(dir, "restored.db")
	if r := runSluice(t, dir, env, nil, "restore", "--db", restored, got); r.code != 0 {
		t.Fatalf("restore exit %d:\n%s", r.code, r.stderr)
	}
	if sqliteDump(t, restored) != want {
		t.Fatal("restored database differs from the source")
	}

	bad := []struct {
		name     string
		env      []string
		url      string
		contains string
	}{
		{"missing bucket", nil, "s3://no-such-bucket-sluice/x.sql", "no-such-bucket-sluice"},
		{"wrong credentials", []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "s3://" + bucket + "/y.sql", "AWS_SECRET_ACCESS_KEY"},
		{"unreachable endpoint", []string{"AWS_ENDPOINT_URL_S3=http://127.0.0.1:1"}, "s3://" + bucket + "/z.sql", "127.0.0.1:1"},
		{"existing key", nil, u, "already exists"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := runSluice(t, dir, append(append([]string{}, env...), tc.env...), nil,
				"dump", "--db", src, "--to", tc.url, "--s3-path-style")
			if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(tc.contains)) {
				t.Fatalf("exit %d, want 1 with %q:\n%s", r.code, tc.contains, r.stderr)
			}
		})
	}
}
