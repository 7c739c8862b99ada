package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/objstore"
	"github.com/sluice-dev/sluice/sqlload"
	"zombiezen.com/go/sqlite"
)

// Error is an error with an HTTP status and a stable code, as written in
// every error response: {"error": "<message>", "code": "<code>"}.
type Error struct {
	Status  int
	Code    string
	Message string
	State   sluice.State // set on 409 answers about a job
}

func (e *Error) Error() string { return e.Message }

func apiErr(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// sqlError marks an error returned by SQLite while running a caller's
// SQL (sqlite.ErrCode cannot tell SQLite's errors from others).
type sqlError struct{ err error }

func (e *sqlError) Error() string { return e.err.Error() }
func (e *sqlError) Unwrap() error { return e.err }

// sqlErr wraps a non-nil error from SQLite as a sqlError.
func sqlErr(err error) error {
	if err == nil {
		return nil
	}
	return &sqlError{err}
}

// errorBody is the JSON shape of every error response: StarbaseDB's
// {"error": "<human message>"}, with sluice's machine-readable code (and,
// for answers about a job, its state) beside it.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	State string `json:"state,omitempty"`
}

// classify maps any error to its HTTP status and code. It is the one
// place where sentinel errors become status codes.
func classify(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, sluice.ErrTooLarge):
		return apiErr(http.StatusRequestEntityTooLarge, "too_large", msg)
	case errors.Is(err, sluice.ErrUnauthorized):
		return apiErr(http.StatusUnauthorized, "unauthorized", msg)
	case errors.Is(err, sluice.ErrForbidden):
		return apiErr(http.StatusForbidden, "forbidden", msg)
	case errors.Is(err, sluice.ErrNotFound), errors.Is(err, objstore.ErrNotExist):
		return apiErr(http.StatusNotFound, "not_found", msg)
	case errors.Is(err, sluice.ErrBusy):
		return apiErr(http.StatusTooManyRequests, "too_many_jobs", msg)
	case errors.Is(err, sluice.ErrConflict):
		return apiErr(http.StatusConflict, "conflict", msg)
	case errors.Is(err, sluice.ErrExists), errors.Is(err, objstore.ErrExist):
		return apiErr(http.StatusConflict, "exists", msg)
	case errors.Is(err, sluice.ErrInvalid), errors.Is(err, objstore.ErrInvalidKey):
		return apiErr(http.StatusBadRequest, "invalid_argument", msg)
	case errors.Is(err, context.DeadlineExceeded):
		return apiErr(http.StatusServiceUnavailable, "timeout", msg)
	case errors.Is(err, context.Canceled):
		// The client went away (or the server is closing); the status
		// is rarely seen by anyone.
		return apiErr(http.StatusServiceUnavailable, "cancelled", msg)
	}
	var se *sqlError
	if errors.As(err, &se) {
		return classifySQLite(err, sqlite.ErrCode(se.err), msg)
	}
	return apiErr(http.StatusInternalServerError, "internal", "internal error")
}

// classifySQLite sorts SQLite's result codes into the caller's mistakes
// (400), contention (503) and the server's own failures (500).
func classifySQLite(err error, code sqlite.ResultCode, msg string) *Error {
	var le *sqlload.Error
	if errors.As(err, &le) {
		msg = le.Error()
	}
	msg = strings.TrimPrefix(msg, "sqlite: ")
	switch code.ToPrimary() {
	case sqlite.ResultError, sqlite.ResultConstraint, sqlite.ResultMismatch,
		sqlite.ResultRange, sqlite.ResultTooBig, sqlite.ResultAuth, sqlite.ResultReadOnly,
		sqlite.ResultAbort:
		return apiErr(http.StatusBadRequest, "sql_error", msg)
	case sqlite.ResultBusy, sqlite.ResultLocked:
		return apiErr(http.StatusServiceUnavailable, "busy", msg)
	case sqlite.ResultInterrupt:
		return apiErr(http.StatusServiceUnavailable, "timeout", msg)
	}
	return apiErr(http.StatusInternalServerError, "internal", msg)
}

// retryAfter is the Retry-After of a 429, in seconds: a job slot frees
// when a job ends, which is rarely sooner.
const retryAfter = "30"

// writeError writes err as a JSON error response.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if e.Status >= 500 {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	} else {
		s.logger.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfter)
	}
	body := errorBody{Error: e.Message, Code: e.Code}
	if e.State != "" {
		body.State = wireState(e.State)
	}
	writeBody(w, e.Status, body)
}

// envelope is the shape of every successful JSON response, as in
// StarbaseDB: {"result": <payload>}.
type envelope struct {
	Result any `json:"result"`
}

// writeJSON writes v as a successful JSON response, inside the
// {"result": …} envelope.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, envelope{Result: v})
}

// writeBody writes v as the whole JSON response body.
func writeBody(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// badRequest is a 400 with a code.
func badRequest(code, msg string) *Error {
	return apiErr(http.StatusBadRequest, code, msg)
}
