package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
)

// Retryable is implemented by backend errors that know whether repeating
// the request can succeed. IsRetryable asks it first, so a backend (for
// example objstore/s3, mapping minio-go's ErrorResponse) decides for its
// own errors. StatusError is a ready-made implementation.
type Retryable interface {
	error
	Retryable() bool
}

// StatusError is a failed request with an HTTP status code and, where the
// server gave one, its error code (for example "SlowDown", "InternalError").
// Backends return it (wrapped or not) for server errors that map to no
// sentinel; it is retryable for 5xx and 429, not for other 4xx.
type StatusError struct {
	Op         string // short operation name, e.g. "upload part 3"
	StatusCode int
	Code       string
	Err        error // underlying error, may be nil
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d", e.Op, e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *StatusError) Unwrap() error { return e.Err }

// Retryable reports whether the status code is worth retrying: 5xx and 429.
func (e *StatusError) Retryable() bool { return RetryableStatus(e.StatusCode) }

// RetryableStatus reports whether a request that failed with this HTTP
// status may succeed when repeated: 5xx and 429 (Too Many Requests), and
// 408 (Request Timeout). Other 4xx never are.
func RetryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// IsRetryable reports whether an error from a Store call is transient, so
// that the same call may succeed later. In order:
//
//   - context.Canceled is never retryable (the caller gave up);
//   - an error in the chain implementing Retryable decides;
//   - ErrBadDigest is (bytes damaged in transit);
//   - the sentinels ErrNotExist, ErrExist, ErrInvalidKey, ErrPartTooSmall,
//     ErrAccessDenied are not;
//   - timeouts (net.Error.Timeout, context.DeadlineExceeded of a single
//     attempt), connection resets/refusals/broken pipes and unexpected
//     EOFs are;
//   - anything else is not.
//
// Callers that retry must still stop when their own context is done.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var r Retryable
	if errors.As(err, &r) {
		return r.Retryable()
	}
	switch {
	case errors.Is(err, ErrBadDigest):
		return true
	case errors.Is(err, ErrNotExist), errors.Is(err, ErrExist), errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrPartTooSmall), errors.Is(err, ErrAccessDenied):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) && errors.Is(ue.Err, io.EOF) {
		// The server closed the connection before answering.
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// A dial or read that failed below HTTP: the server went away.
		return true
	}
	return false
}
