package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// The web console: static files embedded in the binary, served at /ui/.
// It is only a client of the API: every figure it shows comes from the
// same routes any client calls, with the same token.
//
//go:embed ui
var consoleFiles embed.FS

// consoleCSP keeps the console to its own files: no inline script, no
// eval, no third-party origin, and no framing (clickjacking).
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// consoleFile is one embedded file, ready to serve.
type consoleFile struct {
	data  []byte
	ctype string
	etag  string
}

// loadConsole reads the embedded console once.
func loadConsole() (map[string]consoleFile, error) {
	out := map[string]consoleFile{}
	err := fs.WalkDir(consoleFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := consoleFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "ui/")] = consoleFile{data: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return out, nil
}

// handleConsole serves the console's files. They are public: the page
// holds no data, and the API calls it makes need the token.
func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("path")
	if name == "" {
		name = "index.html"
	}
	f, ok := s.console[name]
	if !ok {
		return apiErr(http.StatusNotFound, "not_found", "no console file "+name)
	}
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Type", f.ctype)
	// Revalidated on every load, so an upgraded server serves its own
	// console at once; unchanged files answer 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	return nil
}

// wantsHTML reports whether a request comes from a browser asking for a
// page (Accept lists text/html), as opposed to curl or an API client.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
			return true
		}
	}
	return false
}
