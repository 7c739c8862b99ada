package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"zombiezen.com/go/sqlite"
)

// Role is what a route requires of the caller.
type Role int

// Roles, from least to most privileged.
const (
	RolePublic Role = iota // no token needed (health, OpenAPI, signed file URLs)
	RoleClient             // a client or admin token: /query* and table exports
	RoleAdmin              // an admin token: everything
)

func (r Role) String() string {
	switch r {
	case RolePublic:
		return "public"
	case RoleClient:
		return "client"
	}
	return "admin"
}

// authenticator checks bearer tokens. Tokens are kept as SHA-256 sums and
// compared in constant time, each one every time, so neither a token's
// length nor which token matched shows in the timing.
type authenticator struct {
	admin  [][32]byte
	client [][32]byte
}

func newAuthenticator(admin, client []string) *authenticator {
	a := &authenticator{}
	for _, t := range admin {
		if t != "" {
			a.admin = append(a.admin, sha256.Sum256([]byte(t)))
		}
	}
	for _, t := range client {
		if t != "" {
			a.client = append(a.client, sha256.Sum256([]byte(t)))
		}
	}
	return a
}

func (a *authenticator) enabled() bool { return len(a.admin)+len(a.client) > 0 }

// role returns the role a request's token grants, and whether a token
// was presented at all.
func (a *authenticator) role(r *http.Request) (Role, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return RolePublic, false
	}
	// "Bearer <token>", or the bare token as StarbaseDB also accepts.
	tok := h
	if scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " "); ok {
		if !strings.EqualFold(scheme, "Bearer") {
			return RolePublic, true
		}
		tok = rest
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	var isAdmin, isClient int
	for i := range a.admin {
		isAdmin |= subtle.ConstantTimeCompare(sum[:], a.admin[i][:])
	}
	for i := range a.client {
		isClient |= subtle.ConstantTimeCompare(sum[:], a.client[i][:])
	}
	switch {
	case isAdmin == 1:
		return RoleAdmin, true
	case isClient == 1:
		return RoleClient, true
	}
	return RolePublic, true
}

// check returns nil when the request may use a route that needs want.
func (a *authenticator) check(r *http.Request, want Role) error {
	if want == RolePublic || !a.enabled() {
		return nil
	}
	got, presented := a.role(r)
	if got == RolePublic {
		msg := "missing bearer token"
		if presented {
			msg = "invalid bearer token"
		}
		return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
	}
	if got < want {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "this route needs an " + want.String() + " token"}
	}
	return nil
}

// clientAuthorizer limits what SQL a client token may run through /query:
// no ATTACH or DETACH (they read and write arbitrary files as the
// server's user, VACUUM INTO included), and only PRAGMAs that read. Admin
// tokens are not limited.
var clientAuthorizer = sqlite.AuthorizeFunc(func(a sqlite.Action) sqlite.AuthResult {
	switch a.Type() {
	case sqlite.OpAttach, sqlite.OpDetach:
		return sqlite.AuthResultDeny
	case sqlite.OpPragma:
		if readOnlyPragma(a) {
			return sqlite.AuthResultOK
		}
		return sqlite.AuthResultDeny
	}
	return sqlite.AuthResultOK
})

// readOnlyPragma reports whether a PRAGMA action only reads.
func readOnlyPragma(a sqlite.Action) bool {
	name := strings.ToLower(a.Pragma())
	return namePragmas[name] || (a.PragmaArg() == "" && readPragmas[name])
}

// namePragmas take an object name as their argument and only read.
var namePragmas = map[string]bool{
	"table_info": true, "table_xinfo": true, "index_list": true, "index_info": true,
	"index_xinfo": true, "foreign_key_list": true, "foreign_key_check": true,
	"integrity_check": true, "quick_check": true, "table_list": true,
}

// readPragmas only read when given no argument.
var readPragmas = map[string]bool{
	"user_version": true, "schema_version": true, "application_id": true,
	"page_count": true, "page_size": true, "freelist_count": true,
	"compile_options": true, "function_list": true, "pragma_list": true,
	"collation_list": true, "module_list": true, "database_list": true,
	"foreign_keys": true, "journal_mode": true, "encoding": true,
	"data_version": true, "auto_vacuum": true,
}
