package api

import (
	"context"
	"github.com/sluice-dev/sluice/internal/testsupport"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
)

// setupAuthFixtures creates what every route needs to succeed: table t in
// both databases, a completed job in each, and a stored file.
func setupAuthFixtures(t *testing.T, e *testEnv) (jobs map[string]string, fileURL string) {
	t.Helper()
	jobs = map[string]string{}
	for _, prefix := range []string{"", "/db/other"} {
		e.query(prefix+"/query", `{"sql":"CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'x')"}`)
		db := "main"
		if prefix != "" {
			db = "other"
		}
		j, err := e.jobs.Submit(context.Background(), sluice.JobSpec{Database: db, Format: sluice.FormatSQL})
		if err != nil {
			t.Fatal(err)
		}
		e.jobs.complete(j.ID, []byte("SELECT 1;\n"), true)
		jobs[prefix] = j.ID
	}
	ctx := context.Background()
	if _, err := e.store.Put(ctx, "dir/file.sql", strings.NewReader("hello"), 5, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := e.store.PresignGet(ctx, "dir/file.sql", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return jobs, pu.RequestURI()
}

// successRequest builds a request that succeeds for route rt under
// prefix, and the status it answers with.
func successRequest(rt route, prefix string, jobs map[string]string, fileURL string) (path, body, ctype string, want int) {
	path = prefix + rt.Path
	path = strings.ReplaceAll(path, "{$}", "")
	path = strings.ReplaceAll(path, "{table}", "t")
	path = strings.ReplaceAll(path, "{jobId}", jobs[prefix])
	want = http.StatusOK
	switch rt.Method + " " + rt.Path {
	case "GET /files/{key...}":
		path = fileURL
	case "GET /ui/{path...}":
		path = "/ui/"
	case "POST /query", "POST /query/raw":
		body, ctype = `{"sql":"SELECT 1 AS one"}`, "application/json"
	case "POST /export/dump":
		body, ctype, want = `{"format":"sql"}`, "application/json", http.StatusAccepted
	case "POST /import/dump":
		body, ctype = "CREATE TABLE IF NOT EXISTS imp(x);\nINSERT INTO imp VALUES(1);\n", "application/sql"
	case "POST /import/csv/{table}":
		body, ctype = "a,b\n1,2\n", "text/csv"
	case "POST /import/json/{table}":
		body, ctype = `[{"a":1,"b":2}]`, "application/json"
	}
	return path, body, ctype, want
}

// TestAuthTable sends every route, at the root and under /db/{db}, with
// no token, a bad token, a client token and an admin token.
func TestAuthTable(t *testing.T) {
	e := newEnv(t)
	jobs, fileURL := setupAuthFixtures(t, e)
	tokens := []struct {
		name, token string
		role        Role
		bad         bool
	}{
		{"none", "", RolePublic, false},
		{"invalid", "not-a-token", RolePublic, true},
		{"client", clientToken, RoleClient, false},
		{"admin", adminToken, RoleAdmin, false},
	}
	seen := 0
	for _, rt := range e.srv.routes() {
		prefixes := []string{""}
		if rt.PerDB {
			prefixes = append(prefixes, "/db/other")
		}
		for _, prefix := range prefixes {
			for _, tok := range tokens {
				path, body, ctype, success := successRequest(rt, prefix, jobs, fileURL)
				want := success
				switch {
				case rt.Role == RolePublic:
				case tok.role == RolePublic:
					want = http.StatusUnauthorized
				case tok.role < rt.Role:
					want = http.StatusForbidden
				}
				name := rt.Method + " " + path + " as " + tok.name
				t.Run(name, func(t *testing.T) {
					var hdr []string
					if ctype != "" {
						hdr = []string{"Content-Type", ctype}
					}
					code, b, h := e.call(rt.Method, path, tok.token, body, hdr...)
					if code != want {
						t.Fatalf("status %d, want %d: %s", code, want, b)
					}
					switch want {
					case http.StatusUnauthorized:
						if c, _ := errorCode(t, b); c != "unauthorized" {
							t.Errorf("code %q", c)
						}
						if h.Get("WWW-Authenticate") == "" {
							t.Error("401 without WWW-Authenticate")
						}
					case http.StatusForbidden:
						if c, _ := errorCode(t, b); c != "forbidden" {
							t.Errorf("code %q", c)
						}
					}
				})
				seen++
			}
		}
	}
	if seen < 4*25 {
		t.Errorf("only %d route × token cases", seen)
	}
}

func TestAuthNoTokensLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	logger := testsupport.Logger(t)
	tests := []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"192.0.2.1:0", false},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			cfg := NewConfig()
			cfg.Listen = tt.listen
			cfg.Databases = []Database{{Name: "main", Path: filepath.Join(dir, "db.sqlite")}}
			s, err := New(cfg, Deps{}, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Listen()
			if tt.ok && err != nil && !strings.Contains(err.Error(), "cannot assign") && !strings.Contains(err.Error(), "address family") {
				t.Fatalf("listen: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "without tokens")) {
				t.Fatalf("listen %s without tokens: err = %v, want a refusal", tt.listen, err)
			}
		})
	}
}

func TestAuthDisabledAllowsAll(t *testing.T) {
	e := newEnv(t, func(c *Config, d *Deps) { c.AdminTokens, c.ClientTokens = nil, nil })
	code, b, _ := e.call("POST", "/query", "", `{"sql":"SELECT 1"}`)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, b)
	}
	code, _, _ = e.call("GET", "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
}

func TestAuthSchemes(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"Basic " + adminToken, "Bearer", "Bearer " + adminToken + "x", adminToken, "bearer " + clientToken + " "} {
		req, _ := http.NewRequest("GET", e.url+"/metrics", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusUnauthorized
		switch {
		case strings.HasPrefix(h, "bearer "):
			want = http.StatusForbidden // a valid client token, lower-case scheme
		case h == adminToken:
			want = http.StatusOK // a bare token, as StarbaseDB takes it
		}
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", h, resp.StatusCode, want)
		}
	}
}
