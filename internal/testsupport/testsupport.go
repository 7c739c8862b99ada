// Package testsupport holds what sluice's tests share: the bundled corpus
// of real databases, the sqlite3 CLI used as the reference oracle, the
// S3 test server that scripts/test starts, and the test logger.
//
// Everything a test needs lives inside the repository, so a plain clone
// can run its own tests.
package testsupport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ModuleRoot is the directory that holds go.mod, found from this file's
// own location so that it does not depend on the test's working directory.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CorpusDir is testdata/corpus: Chinook and Northwind with their licences.
func CorpusDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(ModuleRoot(), "testdata", "corpus")
	if _, err := os.Stat(filepath.Join(dir, "chinook.sqlite")); err != nil {
		t.Fatalf("test corpus missing from the repository (want %s): %v", dir, err)
	}
	return dir
}

// Corpus is the path of one corpus file. Open it read-only, or copy it
// first with CorpusCopy.
func Corpus(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(CorpusDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("corpus file %s: %v", name, err)
	}
	return p
}

// CorpusCopy copies a corpus file into dir and returns the copy's path,
// so a test can open it without touching the repository's copy.
func CorpusCopy(t testing.TB, name, dir string) string {
	t.Helper()
	return CopyFile(t, Corpus(t, name), dir)
}

// CopyFile copies src into dir under its base name and returns the new path.
func CopyFile(t testing.TB, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// SQLite3 is the path of the sqlite3 CLI, the reference oracle. The tests
// fail without it rather than skip: scripts/test installs it.
func SQLite3(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("the sqlite3 CLI is required (scripts/test installs it): %v", err)
	}
	return p
}

// Logger is the logger tests hand to the code under test. It discards
// everything unless SLUICE_TEST_LOG names a level (debug, info, warn,
// error), in which case it writes to stderr at that level.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	name := os.Getenv("SLUICE_TEST_LOG")
	if name == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		t.Fatalf("SLUICE_TEST_LOG=%q: %v", name, err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// S3Server is the S3 test server that scripts/test starts (versitygw,
// posix backend) and describes in the SLUICE_TEST_S3_* variables.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	Root      string // the posix backend's directory, when known
}

// S3 returns the test server, and skips the test when
// SLUICE_TEST_S3_ENDPOINT is unset (scripts/test always sets it, so the
// skip only happens under a bare `go test`).
func S3(t testing.TB) S3Server {
	t.Helper()
	s := S3Server{
		Endpoint:  os.Getenv("SLUICE_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("SLUICE_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("SLUICE_TEST_S3_REGION"),
		Root:      os.Getenv("SLUICE_TEST_S3_ROOT"),
	}
	if s.Endpoint == "" {
		t.Skip("SLUICE_TEST_S3_ENDPOINT is unset: no S3 server (scripts/test starts versitygw and sets it)")
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		t.Fatal("SLUICE_TEST_S3_ENDPOINT is set but SLUICE_TEST_S3_ACCESS_KEY or SLUICE_TEST_S3_SECRET_KEY is not")
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	return s
}

// URL is the parsed endpoint.
func (s S3Server) URL(t testing.TB) *url.URL {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("SLUICE_TEST_S3_ENDPOINT=%q is not a URL: %v", s.Endpoint, err)
	}
	return u
}

// Admin is a plain minio-go client (path-style) for setting up and
// inspecting the server independently of the code under test.
func (s S3Server) Admin(t testing.TB) *minio.Client {
	t.Helper()
	u := s.URL(t)
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket with a random name that starts with prefix.
// When the test ends, whatever is left in it (objects and incomplete
// uploads) and the bucket itself are removed; a test may remove the bucket
// itself first.
func (s S3Server) NewBucket(t testing.TB, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.ToLower(prefix) + "-" + hex.EncodeToString(b[:])
	c := s.Admin(t)
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	t.Cleanup(func() { removeBucket(t, c, name) })
	return name
}

func removeBucket(t testing.TB, c *minio.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ok, err := c.BucketExists(ctx, name); err == nil && !ok {
		return
	}
	for u := range c.ListIncompleteUploads(ctx, name, "", true) {
		if u.Err == nil {
			_ = c.RemoveIncompleteUpload(ctx, name, u.Key)
		}
	}
	for o := range c.ListObjectsIter(ctx, name, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err == nil {
			_ = c.RemoveObject(ctx, name, o.Key, minio.RemoveObjectOptions{})
		}
	}
	if err := c.RemoveBucket(ctx, name); err != nil {
		t.Errorf("remove test bucket %s: %v", name, err)
	}
}

// AWSEnv is the environment a sluice CLI process needs to reach the
// server: credentials, region and endpoint, with any inherited
// AWS_ENDPOINT_URL and session token cleared.
func (s S3Server) AWSEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint, "AWS_ENDPOINT_URL=", "AWS_SESSION_TOKEN=",
	}
}

// Result decodes the "result" member of a sluice API success body (the
// {"result": …} envelope) into v.
func Result(body []byte, v any) error {
	var env struct{ Result json.RawMessage }
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	if len(env.Result) == 0 {
		return fmt.Errorf("no result in %.200s", body)
	}
	return json.Unmarshal(env.Result, v)
}
