package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// route is one entry of the route table. The table is the single source
// for the mux, the auth checks and the OpenAPI match test.
type route struct {
	Method  string
	Path    string // Go 1.22 pattern path, without the /db/{db} prefix
	Role    Role
	PerDB   bool // also served under /db/{db}/...
	handler func(http.ResponseWriter, *http.Request) error
}

func (s *Server) routes() []route {
	// Dumps need an admin token unless client tokens may export.
	exporter := RoleAdmin
	if s.cfg.ClientExport {
		exporter = RoleClient
	}
	return []route{
		{"GET", "/{$}", RolePublic, false, s.handleIndex},
		{"GET", "/healthz", RolePublic, false, s.handleHealth},
		{"GET", "/metrics", RoleAdmin, false, s.handleMetrics},
		{"GET", "/openapi.json", RolePublic, false, s.handleOpenAPI},
		{"GET", "/files/{key...}", RolePublic, false, s.handleFile},
		{"GET", "/ui/{path...}", RolePublic, false, s.handleConsole},
		// The console's panels: whoever may export may look.
		{"GET", "/databases", exporter, false, s.handleDatabases},
		{"GET", "/schedules", exporter, false, s.handleSchedules},

		{"POST", "/query", RoleClient, true, s.handleQuery},
		{"POST", "/query/raw", RoleClient, true, s.handleQueryRaw},

		{"GET", "/export/csv/{table}", RoleClient, true, s.handleExportCSV},
		{"GET", "/export/json/{table}", RoleClient, true, s.handleExportJSON},

		{"GET", "/export/dump", exporter, true, s.handleLegacyDump},
		{"POST", "/export/dump", exporter, true, s.handleSubmit},
		{"GET", "/export/dump/jobs", exporter, true, s.handleListJobs},
		{"GET", "/export/dump/status/{jobId}", exporter, true, s.handleStatus},
		{"GET", "/export/dump/download/{jobId}", exporter, true, s.handleDownload},
		{"DELETE", "/export/dump/{jobId}", exporter, true, s.handleCancel},

		{"POST", "/import/dump", RoleAdmin, true, s.handleImportDump},
		{"POST", "/import/csv/{table}", RoleAdmin, true, s.handleImportCSV},
		{"POST", "/import/json/{table}", RoleAdmin, true, s.handleImportJSON},
	}
}

// register adds a route to the mux, at the root and, for per-database
// routes, under /db/{db}.
func (s *Server) register(rt route) {
	h := s.guard(rt)
	patterns := []string{rt.Method + " " + rt.Path}
	if rt.PerDB {
		patterns = append(patterns, rt.Method+" /db/{db}"+rt.Path)
	}
	for _, p := range patterns {
		s.mux.Handle(p, h)
		s.patterns[p] = true
	}
}

// routeLabel is the metrics label of the pattern the mux chose: a
// pattern of the route table, or "unmatched". The mux also names paths
// of its own (a CONNECT redirect names the request's path), which must
// never become a label.
func (s *Server) routeLabel(pattern string) string {
	if s.patterns[pattern] {
		return pattern
	}
	return "unmatched"
}

// guard applies auth and turns a handler's error into a JSON response.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.auth.check(r, rt.Role); err != nil {
			refuseBody(w, r)
			var ae *Error
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			}
			s.writeError(w, r, err)
			return
		}
		if err := checkBodyType(r, rt); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := rt.handler(w, r); err != nil {
			if sw, ok := w.(*statusWriter); ok && sw.wrote {
				// Headers are out: all we can do is cut the response
				// short, so the client sees a broken transfer rather
				// than a truncated file that looks complete.
				switch {
				case r.Context().Err() != nil:
					s.logger.Debug("client went away", "path", r.URL.Path, "err", err)
				case errors.Is(err, os.ErrDeadlineExceeded):
					s.logger.Warn("response cut off: the client read slower than the minimum rate",
						"path", r.URL.Path, "remote", r.RemoteAddr, "min_rate", s.cfg.MinResponseRate, "stall", s.cfg.StallTimeout)
				default:
					s.logger.Error("response aborted", "path", r.URL.Path, "err", err)
				}
				panic(http.ErrAbortHandler)
			}
			s.writeError(w, r, err)
		}
	})
}

// statusWriter records the status for metrics and whether the headers
// have been sent.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	bytes  int64
	out    *rateBudget // the minimum rate at which the client must read
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
		w.wrote = true
	}
	n, err := w.out.do(func() (int, error) { return w.ResponseWriter.Write(b) })
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush forwards to the underlying writer.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.wrote {
			w.status = http.StatusOK
			w.wrote = true
		}
		w.out.do(func() (int, error) { f.Flush(); return 0, nil })
	}
}

// wrap adds panic recovery, JSON 404/405 answers and latency metrics
// around the mux.
func (s *Server) wrap(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw, r := s.limitTransfer(w, r)
		h, pattern := mux.Handler(r)
		defer func() {
			sw.out.arm() // for the flush after the handler
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					s.metrics.observeHTTP(r.Method, s.routeLabel(pattern), sw.status, time.Since(start))
					panic(v)
				}
				s.logger.Error("panic in handler", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.wrote {
					s.writeError(sw, r, apiErr(http.StatusInternalServerError, "internal", "internal error"))
				} else {
					panic(http.ErrAbortHandler)
				}
			}
			s.metrics.observeHTTP(r.Method, s.routeLabel(pattern), sw.status, time.Since(start))
		}()
		if !s.auth.enabled() {
			if err := s.checkNoToken(r); err != nil {
				s.writeError(sw, r, err)
				return
			}
		} else if s.cors(sw, r) {
			return // a preflight
		}
		if pattern == "" {
			s.noRoute(sw, r, h)
			return
		}
		// mux.Handler does not set the path values; ServeHTTP does.
		mux.ServeHTTP(sw, r)
	})
}

// noRoute answers a request that matched no route with the mux's own
// status (404, or 405 with Allow) in the JSON error shape.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	status := rec.status
	if status == 0 {
		status = http.StatusNotFound
	}
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	switch status {
	case http.StatusMethodNotAllowed:
		s.writeError(w, r, apiErr(status, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path))
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if loc := rec.header.Get("Location"); loc != "" {
			w.Header().Set("Location", loc)
		}
		s.writeError(w, r, apiErr(status, "redirect", "see "+rec.header.Get("Location")))
	default:
		s.writeError(w, r, apiErr(http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path))
	}
}

// headerRecorder captures what the mux's fallback handler writes.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}

// queryInt parses an integer query parameter with bounds.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("invalid_argument", fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
	}
	return n, nil
}
