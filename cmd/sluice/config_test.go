package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testsupport"
)

func TestConfigDefaults(t *testing.T) {
	c := NewConfig()
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Databases["default"] != filepath.Join("data", "default.db") ||
		c.Store.Type != "file" || c.Store.Dir != filepath.Join("data", "exports") {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if !loopbackOnly(c.Listen) {
		t.Fatal("the default listen address is not loopback")
	}
}

// TestExportThreads checks limits.exportThreads' resolution: 0 picks
// every CPU for niced exports and CPUs − 1 (at least 1) at nice 0.
func TestExportThreads(t *testing.T) {
	cpus := runtime.NumCPU()
	tests := []struct {
		name          string
		threads, nice int
		want          int
		workerGated   bool // the export worker bounds its dumps with a gate
	}{
		{"default, niced", 0, 19, cpus, false},
		{"default, nice 0", 0, 0, max(1, cpus-1), true},
		{"set", 3, 19, 3, true},
		{"set at nice 0", 1, 0, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := LimitsConfig{ExportThreads: tc.threads, ExportNice: tc.nice}
			if got := exportThreads(l); got != tc.want {
				t.Fatalf("exportThreads = %d, want %d", got, tc.want)
			}
			if gated := workerGate(l) != nil; gated != tc.workerGated {
				t.Fatalf("worker gated %v, want %v", gated, tc.workerGated)
			}
		})
	}
	c := NewConfig()
	c.Limits.ExportThreads = -1
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "exportThreads") {
		t.Fatalf("exportThreads -1: err = %v, want a message naming it", err)
	}
}

func TestConfigFile(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		env     map[string]string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "empty object keeps defaults", json: `{}`, check: func(t *testing.T, c Config) {
			if c.Listen != "127.0.0.1:8080" || c.Limits.TickBudget != Duration(20*time.Second) {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "full", json: `{"listen":"127.0.0.1:9000","dataDir":"/srv/sluice",
			"databases":{"main":"main.db","other":"/abs/other.db"},"defaultDatabase":"main",
			"store":{"type":"s3","s3":{"bucket":"b","endpoint":"http://127.0.0.1:1","pathStyle":true}},
			"tokens":{"admin":["a"],"client":["c"]},"callbacks":{"secret":"s","allow":["127.0.0.1"]},
			"schedules":[{"name":"nightly","cron":"0 3 * * *","spec":{"format":"sql"},"keepLast":7,"maxAge":"720h"}],
			"limits":{"maxConcurrentJobs":2,"tickBudget":"5s","maxBodyBytes":1024,"jobTTL":"24h"}}`,
			check: func(t *testing.T, c Config) {
				if c.Listen != "127.0.0.1:9000" || c.Databases["main"] != "/srv/sluice/main.db" ||
					c.Databases["other"] != "/abs/other.db" || len(c.Databases) != 2 {
					t.Fatalf("databases/listen: %+v", c)
				}
				if c.Store.Type != "s3" || !c.Store.S3.PathStyle || c.Schedules[0].MaxAge != Duration(720*time.Hour) {
					t.Fatalf("store/schedules: %+v", c)
				}
				if c.Limits.TickBudget != Duration(5*time.Second) || c.Limits.MaxConcurrentJobs != 2 {
					t.Fatalf("limits: %+v", c.Limits)
				}
			}},
		{name: "StarbaseDB keys", json: `{"publicURL":"https://file.example","tokens":{"admin":["a"],"clientExport":true},
			"cors":{"allowOrigins":["https://app.example"]}}`,
			env: map[string]string{"SLUICE_PUBLIC_URL": "https://env.example"},
			check: func(t *testing.T, c Config) {
				a := apiConfig(c)
				if a.PublicURL != "https://env.example" || !a.ClientExport || strings.Join(a.CORSAllowOrigins, "|") != "https://app.example" {
					t.Fatalf("%+v", a)
				}
				if d := apiConfig(NewConfig()); len(d.CORSAllowOrigins) != 1 || d.CORSAllowOrigins[0] != "*" || d.ClientExport {
					t.Fatalf("defaults: %+v", d)
				}
			}},
		{name: "env overrides file", json: `{"listen":"127.0.0.1:9000"}`,
			env: map[string]string{"SLUICE_LISTEN": "127.0.0.1:9999", "SLUICE_ADMIN_TOKENS": "x, y", "SLUICE_S3_PATH_STYLE": "true"},
			check: func(t *testing.T, c Config) {
				if c.Listen != "127.0.0.1:9999" || strings.Join(c.Tokens.Admin, "|") != "x|y" || !c.Store.S3.PathStyle {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "unknown key", json: `{"listn":"x"}`, wantErr: `unknown field "listn"`},
		{name: "unknown nested key", json: `{"store":{"type":"file","bucket":"x"}}`, wantErr: `unknown field "bucket"`},
		{name: "trailing data", json: `{} {}`, wantErr: "unexpected data"},
		{name: "not json", json: `listen = 1`, wantErr: "invalid character"},
		{name: "bad duration", json: `{"limits":{"tickBudget":"soon"}}`, wantErr: "invalid duration"},
		{name: "numeric duration", json: `{"limits":{"tickBudget":20}}`, wantErr: "duration must be a string"},
		{name: "bad store type", json: `{"store":{"type":"ftp"}}`, wantErr: `store.type "ftp"`},
		{name: "s3 without bucket", json: `{"store":{"type":"s3"}}`, wantErr: "bucket is required"},
		{name: "default db missing", json: `{"databases":{"a":"a.db"}}`, wantErr: `defaultDatabase "default" is not in databases`},
		{name: "bad listen", json: `{"listen":"8080"}`, wantErr: "listen address"},
		{name: "zero jobs", json: `{"limits":{"maxConcurrentJobs":0}}`, wantErr: "maxConcurrentJobs"},
		{name: "queue below running", json: `{"limits":{"maxConcurrentJobs":4,"maxQueuedJobs":2}}`, wantErr: "maxQueuedJobs"},
		{name: "zero stall timeout", json: `{"limits":{"stallTimeout":"0s"}}`, wantErr: "stallTimeout"},
		{name: "zero connections", json: `{"limits":{"maxConnections":0}}`, wantErr: "maxConnections"},
		{name: "negative disk floor", json: `{"limits":{"minFreeBytes":-1}}`, wantErr: "minFreeBytes"},
		{name: "connection limits", json: `{"limits":{"maxConnections":10,"stallTimeout":"5s","minBodyRate":100,"minResponseRate":200,"minFreeBytes":0}}`,
			env: map[string]string{"SLUICE_MAX_QUEUED_JOBS": "7"},
			check: func(t *testing.T, c Config) {
				l := c.Limits
				if l.MaxConnections != 10 || l.StallTimeout != Duration(5*time.Second) || l.MinBodyRate != 100 ||
					l.MinResponseRate != 200 || l.MinFreeBytes != 0 || l.MaxQueuedJobs != 7 {
					t.Fatalf("limits: %+v", l)
				}
				a := apiConfig(c)
				if a.MaxConnections != 10 || a.StallTimeout != 5*time.Second || a.MinBodyRate != 100 || a.MinResponseRate != 200 {
					t.Fatalf("api config: %+v", a)
				}
				if j := jobsConfig(c); j.MaxQueued != 7 {
					t.Fatalf("jobs config MaxQueued %d", j.MaxQueued)
				}
			}},
		{name: "duplicate schedule", json: `{"schedules":[{"name":"a","cron":"* * * * *"},{"name":"a","cron":"* * * * *"}]}`, wantErr: "unique name"},
		{name: "bad env bool", json: `{}`, env: map[string]string{"SLUICE_S3_PATH_STYLE": "maybe"}, wantErr: "SLUICE_S3_PATH_STYLE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sluice.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			c := NewConfig()
			err := loadConfigFile(path, &c)
			if err == nil {
				err = applyEnv(&c, func(k string) string { return tc.env[k] })
			}
			if err == nil {
				err = c.validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "example.com:80": false,
	} {
		if got := loopbackOnly(addr); got != want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestREADMEConfigExample keeps the README's config example in step with
// the strict decoder: every key it shows must exist.
func TestREADMEConfigExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testsupport.ModuleRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```json\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README's Configuration section has no json example")
	}
	c := NewConfig()
	if err := decodeConfig(strings.NewReader(example), &c); err != nil {
		t.Fatalf("README config example: %v", err)
	}
}
