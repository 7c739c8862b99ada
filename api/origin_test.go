package api

import (
	"net/http"
	"strings"
	"testing"
)

func noTokens(c *Config, _ *Deps) { c.AdminTokens, c.ClientTokens = nil, nil }

// TestNoTokenMode checks the rules of the default, token-less mode (issue
// 10 item 4): only loopback Host names, no foreign Origin, and JSON
// bodies only with their Content-Type, so that neither a web page in the
// user's browser nor a DNS-rebinding name can drive the server.
func TestNoTokenMode(t *testing.T) {
	e := newEnv(t, noTokens)
	port := e.url[strings.LastIndex(e.url, ":"):]
	self := "http://127.0.0.1" + port
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string // Host is set on the request itself
		status int
		code   string
	}{
		{"loopback address", "GET", "/healthz", "", []string{"Host", "127.0.0.1" + port}, 200, ""},
		{"localhost", "GET", "/healthz", "", []string{"Host", "localhost" + port}, 200, ""},
		{"ipv6 loopback", "GET", "/healthz", "", []string{"Host", "[::1]" + port}, 200, ""},
		{"rebinding name", "POST", "/query", `{"sql":"SELECT 1"}`, []string{"Host", "evil.example" + port}, 421, "misdirected_request"},
		{"rebinding name, health", "GET", "/healthz", "", []string{"Host", "evil.example"}, 421, "misdirected_request"},
		{"foreign origin", "POST", "/query", `{"sql":"SELECT 1"}`, []string{"Origin", "http://evil.example"}, 403, "foreign_origin"},
		{"null origin", "POST", "/query", `{"sql":"SELECT 1"}`, []string{"Origin", "null"}, 403, "foreign_origin"},
		{"other local port", "POST", "/query", `{"sql":"SELECT 1"}`, []string{"Origin", "http://127.0.0.1:1"}, 403, "foreign_origin"},
		{"own origin", "POST", "/query", `{"sql":"SELECT 1"}`, []string{"Origin", self}, 200, ""},
		{"cross-site fetch metadata", "GET", "/export/csv/t", "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "foreign_origin"},
		{"cross-site form post", "POST", "/export/dump", "format=sql", []string{"Origin", "http://evil.example",
			"Content-Type", "application/x-www-form-urlencoded"}, 403, "foreign_origin"},
		{"text/plain JSON (the probe's VACUUM INTO)", "POST", "/query", `{"sql":"VACUUM INTO '/tmp/x'"}`,
			[]string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"text/plain to an import", "POST", "/import/json/t", `[{"a":1}]`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, e.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				if tc.hdr[i] == "Host" {
					req.Host = tc.hdr[i+1]
					continue
				}
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			n, _ := resp.Body.Read(buf)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, buf[:n])
			}
			if tc.code != "" {
				if c, _ := errorCode(t, buf[:n]); c != tc.code {
					t.Errorf("code %q, want %q", c, tc.code)
				}
			}
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("CORS header %q in no-token mode", v)
			}
		})
	}
}

// TestGeneratedURLs checks that a Host header is never reflected into
// generated URLs (issue 10 item 14): the public URL wins, and without one
// a non-loopback Host gives way to the listen address.
func TestGeneratedURLs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		public string
		want   func(e *testEnv) string
	}{
		{"listen address", "", func(e *testEnv) string { return e.url }},
		{"public URL", "https://dumps.example.com/base/", func(*testEnv) string { return "https://dumps.example.com/base" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Deps) { c.PublicURL = tc.public })
			req, _ := http.NewRequest("POST", e.url+"/export/dump", nil)
			req.Host = "evil.example"
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8192)
			n, _ := resp.Body.Read(buf)
			resp.Body.Close()
			body := string(buf[:n])
			loc := resp.Header.Get("Location")
			if resp.StatusCode != 202 || strings.Contains(loc+body, "evil.example") {
				t.Fatalf("%d Location %q body %s", resp.StatusCode, loc, body)
			}
			if want := tc.want(e) + "/export/dump/status/"; !strings.HasPrefix(loc, want) || !strings.Contains(body, `"statusUrl":"`+want) {
				t.Errorf("Location %q, want prefix %q; body %s", loc, want, body)
			}
		})
	}
}

// TestConcreteAddr checks that an unspecified listen host never becomes
// a generated URL's host (http://[::]:8080 is useless to a client).
func TestConcreteAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8080", "[::]:8080", ":8080"} {
		got := concreteAddr(addr)
		if strings.Contains(got, "[::]") || strings.HasPrefix(got, "0.0.0.0") || strings.HasPrefix(got, ":") || !strings.HasSuffix(got, ":8080") {
			t.Errorf("concreteAddr(%q) = %q", addr, got)
		}
	}
	if got := concreteAddr("127.0.0.1:9"); got != "127.0.0.1:9" {
		t.Errorf("concrete address changed: %q", got)
	}
}

// TestPublicURLRefused checks that a malformed publicURL fails New.
func TestPublicURLRefused(t *testing.T) {
	for _, u := range []string{"example.com", "ftp://x", "http://x/?a=1", "http://"} {
		if _, err := parsePublicURL(u); err == nil {
			t.Errorf("publicURL %q accepted", u)
		}
	}
}
