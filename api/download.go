package api

import (
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
)

// object describes a stored object to serve with serveObject.
type object struct {
	size     int64
	etag     string // quoted entity tag, or ""
	name     string // file name for Content-Disposition, or ""
	ctype    string
	modified time.Time
	// open returns the bytes [offset, offset+length).
	open func(offset, length int64) (io.ReadCloser, error)
}

// serveObject answers GET and HEAD for an object, with single byte
// ranges (Range, If-Range), ETag and If-None-Match. A request for
// several ranges gets the whole object, which RFC 9110 allows.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, o object) error {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", o.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	if o.etag != "" {
		h.Set("ETag", o.etag)
	}
	if !o.modified.IsZero() {
		h.Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
	}
	if o.name != "" {
		h.Set("Content-Disposition", attachment(o.name))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && o.etag != "" && etagMatch(inm, o.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	start, length, partial := int64(0), o.size, false
	if rg := r.Header.Get("Range"); rg != "" && ifRangeOK(r.Header.Get("If-Range"), o.etag) {
		st, n, ok, satisfiable := parseRange(rg, o.size)
		if ok && !satisfiable {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", o.size))
			return apiErr(http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", fmt.Sprintf("range %q is outside the %d-byte object", rg, o.size))
		}
		if ok {
			start, length, partial = st, n, true
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, o.size))
		status = http.StatusPartialContent
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	rc, err := o.open(start, length)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.WriteHeader(status)
	if _, err := io.CopyN(w, rc, length); err != nil {
		return fmt.Errorf("send object: %w", err)
	}
	return nil
}

// etagMatch reports whether an If-None-Match list names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatch(list, etag string) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == want {
			return true
		}
	}
	return false
}

// ifRangeOK reports whether a Range may be honoured given If-Range: only
// when If-Range is absent or is our strong ETag (dates are not honoured).
func ifRangeOK(ifRange, etag string) bool {
	ifRange = strings.TrimSpace(ifRange)
	return ifRange == "" || (etag != "" && !strings.HasPrefix(etag, "W/") && ifRange == etag)
}

// parseRange parses a single "bytes=" range against size. ok is false
// when the header should be ignored (bad syntax, several ranges, other
// units); satisfiable is false when it names no byte of the object.
func parseRange(h string, size int64) (start, length int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		if n > size {
			n = size
		}
		return size - n, n, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false, false
	}
	last := size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false, false
		}
		if l < last {
			last = l
		}
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, last - first + 1, true, true
}

// handleDownload streams a completed job's object from the store.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) error {
	job, js, err := s.job(r, dumpNotAvailable)
	if err != nil {
		return err
	}
	if job.State != sluice.StateCompleted {
		e := dumpNotAvailable(job.ID).(*Error)
		e.State = job.State
		return e
	}
	size, etag := job.Size, ""
	var modified time.Time
	if job.FinishedAt != nil {
		modified = *job.FinishedAt
	}
	if job.SHA256 != "" {
		etag = `"` + job.SHA256 + `"`
	}
	if size == 0 || etag == "" {
		// The job did not record them: ask the store.
		rc, info, err := js.Open(r.Context(), job.ID, 0, -1)
		if err != nil {
			return err
		}
		rc.Close()
		size = info.Size
		if etag == "" && info.ETag != "" {
			etag = `"` + strings.Trim(info.ETag, `"`) + `"`
		}
	}
	name := path.Base(job.Key)
	if name == "." || name == "/" || name == "" {
		name = job.ID + job.Spec.Ext()
	}
	return s.serveObject(w, r, object{
		size: size, etag: etag, name: name, modified: modified,
		ctype: job.Spec.ContentType(),
		open: func(off, n int64) (io.ReadCloser, error) {
			rc, _, err := js.Open(r.Context(), job.ID, off, n)
			return rc, err
		},
	})
}

// handleFile serves a file-store object through a presigned URL
// (/files/{key...}?expires=..&sig=..). The signature is the credential.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) error {
	f := s.deps.Files
	if f == nil || f.Store == nil || f.Verify == nil || f.Version == nil {
		return apiErr(http.StatusNotFound, "not_found", "no file store is configured")
	}
	key := r.PathValue("key")
	version, err := f.Verify(key, r.URL.Query())
	if err != nil {
		return apiErr(http.StatusForbidden, "bad_signature", "invalid or expired file URL")
	}
	// The signature binds the object's version: an object deleted and
	// written again at the key is not the one the URL was made for.
	replaced := apiErr(http.StatusNotFound, "not_found", "the object was replaced or deleted since the URL was signed")
	info, err := f.Store.Head(r.Context(), key)
	if err != nil {
		return err
	}
	if f.Version(info) != version {
		return replaced
	}
	etag := ""
	if info.ETag != "" {
		etag = `"` + strings.Trim(info.ETag, `"`) + `"`
	}
	ctype := info.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return s.serveObject(w, r, object{
		size: info.Size, etag: etag, name: path.Base(key), ctype: ctype, modified: info.LastModified,
		open: func(off, n int64) (io.ReadCloser, error) {
			rc, info, err := f.Store.Get(r.Context(), key, off, n)
			if err == nil && f.Version(info) != version {
				rc.Close()
				return nil, replaced
			}
			return rc, err
		},
	})
}
