package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
)

// Media types that request bodies may have.
const (
	typeJSON      = "application/json"
	typeForm      = "application/x-www-form-urlencoded"
	typeMultipart = "multipart/form-data"
	typeCSV       = "text/csv"
)

// bodyTypes lists, per route (method and path, as in the route table),
// the media types its body may have; a route missing here takes any. A
// JSON body must say application/json: a browser page can send
// text/plain to any origin without asking first, so a body read as JSON
// whatever its label would let any web page drive the server.
var bodyTypes = map[string][]string{
	"POST /query":               {typeJSON},
	"POST /query/raw":           {typeJSON},
	"POST /export/dump":         {typeJSON, typeForm},
	"POST /import/json/{table}": {typeJSON, typeMultipart},
	"POST /import/csv/{table}":  {typeJSON, typeCSV, typeMultipart},
}

// checkBodyType answers 415 for a body whose Content-Type the route does
// not take. A request without a body passes.
func checkBodyType(r *http.Request, rt route) error {
	want, ok := bodyTypes[rt.Method+" "+rt.Path]
	if !ok || r.ContentLength == 0 {
		return nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if slices.Contains(want, ct) {
		return nil
	}
	if slices.Contains(want, typeJSON) && len(want) == 1 {
		return needJSONType()
	}
	return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type",
		fmt.Sprintf("Content-Type %q is not accepted here (want %s)", ct, strings.Join(want, ", ")))
}

func needJSONType() error {
	return apiErr(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"a JSON body needs the header Content-Type: application/json")
}

// isLoopbackHost reports whether a Host header (host or host:port) names
// this machine's loopback interface: "localhost" or a loopback address.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostAllowed reports whether a request's Host may be used: in
// no-token mode only loopback names and the public URL's host, so that a
// DNS-rebinding page (whose requests carry its own Host) is refused.
func (s *Server) hostAllowed(host string) bool {
	if isLoopbackHost(host) {
		return true
	}
	if s.public != nil && strings.EqualFold(host, s.public.Host) {
		return true
	}
	return false
}

// checkNoToken applies no-token mode's rules: every request is allowed,
// so only this machine may make one. A Host that is not loopback is
// 421; a request that a browser marks as coming from another origin (an
// Origin header that is not the server's own, or Sec-Fetch-Site:
// cross-site) is 403. Browsers send Origin with every cross-origin POST,
// forms included, so a page elsewhere cannot post a form here either.
func (s *Server) checkNoToken(r *http.Request) error {
	if !s.hostAllowed(r.Host) {
		return apiErr(http.StatusMisdirectedRequest, "misdirected_request",
			fmt.Sprintf("host %q is not served: without tokens sluice answers only loopback names (set tokens, or publicURL for a proxy)", r.Host))
	}
	if o := r.Header.Get("Origin"); o != "" && !s.ownOrigin(r, o) {
		return apiErr(http.StatusForbidden, "foreign_origin",
			fmt.Sprintf("requests from origin %q are refused without tokens", o))
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return apiErr(http.StatusForbidden, "foreign_origin", "cross-site requests are refused without tokens")
	}
	return nil
}

// ownOrigin reports whether an Origin header is the server itself: the
// request's own (checked) Host, or the public URL.
func (s *Server) ownOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if s.public != nil && u.Scheme == s.public.Scheme && strings.EqualFold(u.Host, s.public.Host) {
		return true
	}
	return u.Scheme == "http" && strings.EqualFold(u.Host, r.Host)
}

// cors adds the CORS headers of token mode (StarbaseDB's): any allowed
// origin may call with its token. It reports whether the request was a
// preflight, already answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	switch {
	case slices.Contains(s.cfg.CORSAllowOrigins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	case origin != "" && slices.Contains(s.cfg.CORSAllowOrigins, origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	h.Set("Access-Control-Expose-Headers", "Content-Disposition, Location, ETag, Content-Length")
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// baseURL is the prefix of every URL the server generates (Location,
// statusUrl, downloadUrl). The configured public URL wins. Without one,
// the request's Host is used only when it is a loopback name (which in
// no-token mode every request's is), else the listen address made
// concrete: an arbitrary Host header is never reflected.
func (s *Server) baseURL(r *http.Request) string {
	if s.public != nil {
		return strings.TrimRight(s.public.String(), "/")
	}
	if isLoopbackHost(r.Host) {
		return "http://" + r.Host
	}
	return s.PublicURL()
}

// PublicURL is the base URL that generated links use when no request is
// at hand (the file store's signed URLs): the configured public URL, or
// the bound listen address, with an unspecified host (0.0.0.0, ::)
// replaced by this machine's host name.
func (s *Server) PublicURL() string {
	if s.public != nil {
		return strings.TrimRight(s.public.String(), "/")
	}
	if s.ln == nil {
		return ""
	}
	return "http://" + concreteAddr(s.ln.Addr().String())
}

// concreteAddr replaces an unspecified listen host by the host name.
func concreteAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// parsePublicURL checks the configured public URL: absolute http(s), no
// query or fragment.
func parsePublicURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("api: publicURL %q must be an absolute http(s) URL without query", s)
	}
	return u, nil
}
