package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestConsoleServing checks the console's files and headers, and that
// GET / sends a browser to it while curl keeps the JSON index.
func TestConsoleServing(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, accept string
		want               int
		ctype, location    string
	}{
		{"page", "/ui/", "", http.StatusOK, "text/html", ""},
		{"module", "/ui/app.js", "", http.StatusOK, "text/javascript", ""},
		{"style", "/ui/style.css", "", http.StatusOK, "text/css", ""},
		{"missing", "/ui/nope.js", "", http.StatusNotFound, "application/json", ""},
		{"no slash", "/ui", "", http.StatusTemporaryRedirect, "", "/ui/"},
		{"browser at root", "/", "text/html,application/xhtml+xml,*/*;q=0.8", http.StatusSeeOther, "", "/ui/"},
		{"curl at root", "/", "*/*", http.StatusOK, "application/json", ""},
		{"client at root", "/", "application/json", http.StatusOK, "application/json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.url+tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tt.ctype)
			}
			if tt.location != "" && resp.Header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tt.location)
			}
			if tt.want == http.StatusOK && strings.HasPrefix(tt.path, "/ui/") {
				csp := resp.Header.Get("Content-Security-Policy")
				for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"} {
					if !strings.Contains(csp, want) {
						t.Errorf("CSP %q lacks %s", csp, want)
					}
				}
				if strings.Contains(csp, "unsafe") {
					t.Errorf("CSP %q allows unsafe sources", csp)
				}
				if resp.Header.Get("X-Frame-Options") != "DENY" {
					t.Error("no X-Frame-Options: DENY")
				}
			}
		})
	}
}

// TestConsoleFilesHaveNoInlineScript keeps the CSP honest: no inline
// script, no inline handler, no innerHTML and no eval in the console.
func TestConsoleFilesHaveNoInlineScript(t *testing.T) {
	e := newEnv(t)
	for name, f := range e.srv.console {
		text := string(f.data)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write", " onclick=", " onload=", "<script>", "style=\""} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

// TestDatabasesAndSchedules checks the two overview routes' shapes.
func TestDatabasesAndSchedules(t *testing.T) {
	e := newEnv(t)
	e.query("/db/other/query", `{"sql":"CREATE TABLE b(x); CREATE TABLE a(y)"}`)
	code, b, _ := e.call("GET", "/databases", adminToken, "")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, b)
	}
	var dbs struct {
		Result struct {
			Databases []databaseInfo `json:"databases"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &dbs); err != nil {
		t.Fatal(err)
	}
	list := dbs.Result.Databases
	if len(list) != 2 || list[0].Name != "main" || !list[0].Default {
		t.Fatalf("databases %s", b)
	}
	other := list[1]
	if other.TableCount != 2 || strings.Join(other.Tables, ",") != "a,b" || other.SizeBytes == 0 || other.LastExport != nil {
		t.Errorf("other: %+v", other)
	}
	code, b, _ = e.call("GET", "/schedules", adminToken, "")
	if code != http.StatusOK || !strings.Contains(string(b), `{"result":{"schedules":[]}}`) {
		t.Fatalf("%d %s", code, b)
	}
}
