package dsfeatures

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, for errors.Is. Every error a call returns because of the
// daemon's answer (or of no answer) is an *APIError; these sentinels classify
// it by what the caller does about it. They follow the daemon's error classes:
// ErrUnknownFeature and ErrPayloadTooLarge are also ErrInvalidRequest.
var (
	// ErrInvalidRequest: the request is malformed or names something wrong (400,
	// 413); fix it before retrying. Also returned before sending for arguments
	// the SDK can check itself.
	ErrInvalidRequest = errors.New("dsfeatures: invalid request")
	// ErrUnknownFeature: a feature group, version or feature does not exist
	// (code UNKNOWN_FEATURE).
	ErrUnknownFeature = errors.New("dsfeatures: unknown feature")
	// ErrNotFound: a registry object addressed by the URL does not exist (404).
	ErrNotFound = errors.New("dsfeatures: not found")
	// ErrConflict: the request conflicts with stored state (409), for example a
	// changed group definition registered under an existing version.
	ErrConflict = errors.New("dsfeatures: conflict")
	// ErrPayloadTooLarge: the request body is larger than the daemon accepts (413).
	ErrPayloadTooLarge = errors.New("dsfeatures: payload too large")
	// ErrUnauthorized: no valid credentials were presented (401).
	ErrUnauthorized = errors.New("dsfeatures: unauthorized")
	// ErrForbidden: the credentials do not allow this operation (403).
	ErrForbidden = errors.New("dsfeatures: forbidden")
	// ErrUnavailable: the daemon or one of its stores is unreachable or failing
	// (503, or no connection); retry later.
	ErrUnavailable = errors.New("dsfeatures: unavailable")
	// ErrDeadlineExceeded: no answer in time (504, the per-attempt Timeout, or
	// the context's deadline, in which case errors.Is(err,
	// context.DeadlineExceeded) also holds).
	ErrDeadlineExceeded = errors.New("dsfeatures: deadline exceeded")
)

// ErrNoValue is returned by the typed accessors of Row for a null value (a
// status other than PRESENT or DEFAULTED, or a stored null).
var ErrNoValue = errors.New("dsfeatures: no value")

// Error codes the SDK itself produces (the daemon's codes are in its answers).
const (
	// CodeInvalidRequest is the code of arguments refused before sending.
	CodeInvalidRequest = "INVALID_REQUEST"
	// CodeUnknownFeature is the daemon's code for an unknown group, version or feature.
	CodeUnknownFeature = "UNKNOWN_FEATURE"
	// CodeUnavailable is the code of a call that reached no daemon.
	CodeUnavailable = "UNAVAILABLE"
	// CodeDeadlineExceeded is the code of a call or attempt that ran out of time.
	CodeDeadlineExceeded = "DEADLINE_EXCEEDED"
	// CodeBadResponse is the code of a 2xx answer that could not be decoded.
	CodeBadResponse = "BAD_RESPONSE"
	// CodeTransport is the code of a request that could not be sent for a
	// reason retrying will not fix (for example a malformed URL).
	CodeTransport = "TRANSPORT_ERROR"
)

// APIError is an error answered by the daemon (Status is its HTTP status), or
// one the SDK produced for a call that got no usable answer (Status is 0 for
// transport failures and checks done before sending, or the 2xx status of an
// undecodable answer).
//
// Use errors.Is with the sentinels (ErrConflict, ErrUnavailable...) to decide
// what to do, and errors.As to read the fields.
type APIError struct {
	// Code is a stable machine-readable code, for example "INVALID_REQUEST",
	// "UNKNOWN_FEATURE" or "VERSION_CONFLICT".
	Code string
	// Status is the HTTP status of the answer (0 when there was none).
	Status int
	// Message says what went wrong, naming the offending field when there is one.
	Message string
	// RequestID is the daemon's request id, to quote when reporting a problem.
	RequestID string

	cause error
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("dsfeatures: ")
	b.WriteString(e.Code)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request_id=")
		b.WriteString(e.RequestID)
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns the transport or context error behind a call that got no
// answer, or nil.
func (e *APIError) Unwrap() error { return e.cause }

// Is reports whether e belongs to the class of target, one of the sentinels.
func (e *APIError) Is(target error) bool {
	k := e.kind()
	switch target {
	case ErrInvalidRequest:
		return k == kindInvalid || k == kindUnknownFeature || k == kindTooLarge
	case ErrUnknownFeature:
		return k == kindUnknownFeature
	case ErrPayloadTooLarge:
		return k == kindTooLarge
	case ErrNotFound:
		return k == kindNotFound
	case ErrConflict:
		return k == kindConflict
	case ErrUnauthorized:
		return k == kindUnauthorized
	case ErrForbidden:
		return k == kindForbidden
	case ErrUnavailable:
		return k == kindUnavailable
	case ErrDeadlineExceeded:
		return k == kindDeadline
	}
	return false
}

// Retryable reports whether the SDK retries a call that failed with e, when
// the call is safe to repeat: throttling (429), a gateway or store briefly
// down (502, 503), a timeout (504 or the attempt's Timeout), or a connection
// that failed. The SDK has already retried it MaxRetries times.
func (e *APIError) Retryable() bool {
	if e.Status == 0 {
		return e.Code == CodeUnavailable || e.Code == CodeDeadlineExceeded
	}
	return retryStatus(e.Status)
}

type errKind int

const (
	kindOther errKind = iota
	kindInvalid
	kindUnknownFeature
	kindTooLarge
	kindNotFound
	kindConflict
	kindUnauthorized
	kindForbidden
	kindUnavailable
	kindDeadline
)

// kind classifies an error as the daemon's error_for does: by code for an
// unknown feature, by HTTP status otherwise; errors without a status (made
// by the SDK) by their code.
func (e *APIError) kind() errKind {
	if e.Code == CodeUnknownFeature {
		return kindUnknownFeature
	}
	switch e.Status {
	case 400:
		return kindInvalid
	case 401:
		return kindUnauthorized
	case 403:
		return kindForbidden
	case 404:
		return kindNotFound
	case 409:
		return kindConflict
	case 413:
		return kindTooLarge
	case 503:
		return kindUnavailable
	case 504:
		return kindDeadline
	case 0:
		switch e.Code {
		case CodeInvalidRequest:
			return kindInvalid
		case CodeUnavailable:
			return kindUnavailable
		case CodeDeadlineExceeded:
			return kindDeadline
		}
	}
	return kindOther
}

// statusCodes name answers whose body is not an error document (a proxy's
// HTML page, an empty 502).
var statusCodes = map[int]string{
	400: "INVALID_REQUEST",
	401: "UNAUTHENTICATED",
	403: "FORBIDDEN",
	404: "NOT_FOUND",
	409: "CONFLICT",
	413: "PAYLOAD_TOO_LARGE",
	429: "RESOURCE_EXHAUSTED",
	502: "BAD_GATEWAY",
	503: "UNAVAILABLE",
	504: "DEADLINE_EXCEEDED",
}

func invalidArg(format string, args ...any) error {
	return &APIError{Code: CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}
