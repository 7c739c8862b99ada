package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes proves the served OpenAPI document and the mux
// agree: every registered route is documented with its role, every
// documented operation reaches the mux pattern it names, and nothing
// else is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	code, b, _ := e.call("GET", "/openapi.json", "", "")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}

	// Every registered pattern, as the mux has it.
	registered := map[string]Role{} // "GET /db/{db}/query" -> role
	for _, rt := range e.srv.routes() {
		registered[rt.Method+" "+rt.Path] = rt.Role
		if rt.PerDB {
			registered[rt.Method+" /db/{db}"+rt.Path] = rt.Role
		}
	}

	documented := 0
	param := regexp.MustCompile(`\{[^}]+\}`)
	for p, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			documented++
			m := strings.ToUpper(method)
			// Find the mux pattern this documented path maps to.
			var pattern string
			for pat := range registered {
				pm, pp, _ := strings.Cut(pat, " ")
				if pm == m && openAPIPath(pp) == p {
					pattern = pat
				}
			}
			if pattern == "" {
				t.Errorf("documented %s %s is not registered", m, p)
				continue
			}
			if role, _ := op["x-sluice-role"].(string); role != registered[pattern].String() {
				t.Errorf("%s %s: documented role %q, route role %q", m, p, role, registered[pattern])
			}
			// A concrete request for the documented path must reach
			// exactly that pattern in the mux.
			concrete := param.ReplaceAllString(p, "x")
			if strings.HasSuffix(p, "{key}") {
				concrete += "/deeper/key"
			}
			req, _ := http.NewRequest(m, "http://h"+concrete, nil)
			if _, got := e.srv.mux.Handler(req); got != pattern {
				t.Errorf("%s %s reaches mux pattern %q, want %q", m, concrete, got, pattern)
			}
		}
	}
	if documented != len(registered) {
		t.Errorf("%d documented operations, %d registered routes", documented, len(registered))
	}
	for pat := range registered {
		pm, pp, _ := strings.Cut(pat, " ")
		if _, ok := doc.Paths[openAPIPath(pp)][strings.ToLower(pm)]; !ok {
			t.Errorf("route %s is not documented", pat)
		}
	}
}

// TestIndex checks GET /: public, JSON, with the links a newcomer needs;
// other unknown paths stay 404.
func TestIndex(t *testing.T) {
	e := newEnv(t)
	code, b, h := e.call("GET", "/", "", "")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /: %d %s", code, b)
	}
	for _, want := range []string{`"name":"sluice"`, `/openapi.json"`, `/healthz"`, DocsURL} {
		if !strings.Contains(string(b), want) {
			t.Errorf("GET / lacks %s: %s", want, b)
		}
	}
	if code, b, _ := e.call("GET", "/no-such-page", "", ""); code != http.StatusNotFound {
		t.Fatalf("GET /no-such-page: %d %s", code, b)
	}
}
