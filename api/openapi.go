package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// openapiSource is the hand-written document with the root routes.
// buildOpenAPI adds the /db/{db} copies of the per-database routes, so
// the served document lists every route the mux serves.
//
//go:embed openapi.json
var openapiSource []byte

func buildOpenAPI() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapiSource, &doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	paths, _ := doc["paths"].(map[string]any)
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, p := range keys {
		item, _ := paths[p].(map[string]any)
		perDB := false
		for _, op := range item {
			if o, ok := op.(map[string]any); ok && o["x-sluice-per-db"] == true {
				perDB = true
			}
		}
		if !perDB {
			continue
		}
		// Copy the path item through JSON, then add the db parameter to
		// each operation.
		b, _ := json.Marshal(item)
		var cp map[string]any
		json.Unmarshal(b, &cp)
		for _, op := range cp {
			o, ok := op.(map[string]any)
			if !ok {
				continue
			}
			params, _ := o["parameters"].([]any)
			o["parameters"] = append([]any{map[string]any{"$ref": "#/components/parameters/db"}}, params...)
		}
		paths["/db/{db}"+p] = cp
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.openapi)
	return nil
}

// DocsURL is where the HTTP API is documented, route by route.
const DocsURL = "https://github.com/sluice-dev/sluice/blob/main/docs/api.md"

// indexResponse is GET /'s answer: what this server is and where to go
// next, so that a first `curl localhost:8080` is not a 404.
type indexResponse struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Links   map[string]string `json:"links"`
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) error {
	// A browser gets the console; curl (Accept: */*) and API clients
	// keep the JSON index.
	w.Header().Set("Vary", "Accept")
	if wantsHTML(r) {
		http.Redirect(w, r, "ui/", http.StatusSeeOther)
		return nil
	}
	base := s.baseURL(r)
	writeJSON(w, http.StatusOK, indexResponse{
		Name:    "sluice",
		Version: s.cfg.Version,
		Links: map[string]string{
			"openapi": base + "/openapi.json",
			"health":  base + "/healthz",
			"jobs":    base + "/export/dump/jobs",
			"docs":    DocsURL,
			"console": base + "/ui/",
		},
	})
	return nil
}

// healthResponse is GET /healthz's answer.
type healthResponse struct {
	Status    string   `json:"status"`
	Databases []string `json:"databases"`
}

// handleHealth checks that every database answers a trivial query.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := s.dbs[n]
		conn, err := d.take(r.Context(), connUse{})
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "unhealthy", err.Error())
		}
		_, err = pragmaText(conn, "SELECT 1")
		d.put(conn)
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "unhealthy", fmt.Sprintf("database %s: %v", n, err))
		}
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok", Databases: names})
	return nil
}

// openAPIPath converts a mux pattern path to OpenAPI's: a trailing
// wildcard {key...} becomes {key}.
func openAPIPath(p string) string {
	return strings.ReplaceAll(strings.ReplaceAll(p, "{$}", ""), "...}", "}")
}
