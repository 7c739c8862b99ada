package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/sluice-dev/sluice/objstore"
)

// Error is a failed S3 request, classified. errors.Is matches it against
// the objstore sentinels (ErrNotExist, ErrAccessDenied, ErrPartTooSmall,
// ErrExist) and against the underlying error, so both the class and the
// cause stay visible.
type Error struct {
	// Code is the S3 error code ("NoSuchKey", "SlowDown", ...), empty for
	// transport failures.
	Code string
	// Status is the HTTP status, 0 when no response arrived.
	Status    int
	Message   string
	kind      error // an objstore sentinel, or nil
	retryable bool
	err       error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Code != "" || e.Status != 0 {
		b.WriteString(" (")
		if e.Code != "" {
			b.WriteString(e.Code)
			if e.Status != 0 {
				b.WriteString(", ")
			}
		}
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.Status)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel class and the underlying error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

// Retryable reports whether trying the same request again may succeed:
// 5xx, 429 and 408 responses, throttling codes, timeouts and broken
// connections. Other 4xx responses are final.
func (e *Error) Retryable() bool { return e.retryable }

// Timeout causes set on contexts this package derives, so a cancelled
// request can be told apart from a caller's cancellation.
type timeoutError struct {
	what string
	d    time.Duration
}

func (t *timeoutError) Error() string { return fmt.Sprintf("%s for %v", t.what, t.d) }

var retryableCodes = map[string]bool{
	"RequestTimeout": true, "RequestTimeTooSkewed": false,
	"InternalError": true, "ServiceUnavailable": true, "SlowDown": true,
	"SlowDownWrite": true, "SlowDownRead": true, "Throttling": true,
	"ThrottlingException": true, "RequestLimitExceeded": true,
	"RequestThrottled": true, "TooManyRequests": true,
}

// classify turns an error from minio-go into an *Error (or a context
// error when the caller gave up). parent is the caller's context; ctx is
// the one the request ran under (it may carry a timeout cause).
func classify(parent, ctx context.Context, endpoint string, err error) error {
	if err == nil {
		return nil
	}
	if perr := parent.Err(); perr != nil {
		// The caller cancelled: report that, not a server failure.
		if errors.Is(err, perr) {
			return err
		}
		return fmt.Errorf("%w (%v)", perr, err)
	}
	var te *timeoutError
	if errors.As(context.Cause(ctx), &te) {
		return &Error{Message: te.Error(), retryable: true, err: context.DeadlineExceeded}
	}

	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return classifyResponse(resp)
	}

	e := &Error{Message: err.Error(), err: err, retryable: true}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		e.Message = fmt.Sprintf("%s %s: %v", uerr.Op, endpoint, uerr.Err)
	}
	var certErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &certErr), errors.As(err, &hostErr),
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		e.retryable = false
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		e.Message = fmt.Sprintf("cannot reach %s: no such host %q", endpoint, dnsErr.Name)
		e.retryable = false
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Message = fmt.Sprintf("cannot reach %s: connection refused (is the endpoint right and the server running?)", endpoint)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.EPIPE):
		e.Message = fmt.Sprintf("connection to %s broken: %v", endpoint, err)
	}
	return e
}

func classifyResponse(r minio.ErrorResponse) *Error {
	e := &Error{Code: r.Code, Status: r.StatusCode, Message: r.Message, err: r}
	if e.Message == "" {
		e.Message = http.StatusText(r.StatusCode)
	}
	if c := r.Code; c != "" && c[0] >= '0' && c[0] <= '9' {
		// minio-go puts the status line ("502 Bad Gateway") in Code when
		// the body was not an S3 error document.
		e.Code = ""
	}
	switch r.Code {
	case "NoSuchKey", "NoSuchUpload", "NoSuchBucket", "NotFound", "NoSuchVersion",
		"InvalidPart": // a part Complete names is not in the upload (as the file store reports it)
		e.kind = objstore.ErrNotExist
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
		"ExpiredToken", "InvalidSecurity", "AllAccessDisabled", "AccountProblem",
		"MissingSecurityHeader", "AuthorizationHeaderMalformed",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key

		e.kind = objstore.ErrAccessDenied
	case "EntityTooSmall":
		e.kind = objstore.ErrPartTooSmall
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch":
		// The bytes were damaged on the way: sending them again may work.
		e.kind = objstore.ErrBadDigest
		e.retryable = true
	case "PreconditionFailed":
		e.kind = objstore.ErrExist
	}
	if e.kind == nil {
		switch r.StatusCode {
		case http.StatusNotFound:
			e.kind = objstore.ErrNotExist
		case http.StatusForbidden, http.StatusUnauthorized:
			e.kind = objstore.ErrAccessDenied
		}
	}
	e.retryable = e.retryable || objstore.RetryableStatus(r.StatusCode) || retryableCodes[r.Code]
	return e
}
