package dsfeatures

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one dsfeatures daemon. It keeps a pool of keep-alive
// connections and is safe for concurrent use by many goroutines; create one
// per daemon and share it.
type Client struct {
	opt       Options
	http      *http.Client
	transport *http.Transport // ours to close; nil when Options.HTTPClient was given
	auth      string
}

// NewClient returns a client configured by opt; zero fields take their
// documented defaults. It opens no connection.
func NewClient(opt Options) (*Client, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{opt: o}
	if o.HTTPClient != nil {
		c.http = o.HTTPClient
	} else {
		c.transport = newTransport(o)
		c.http = &http.Client{Transport: c.transport}
	}
	if o.Token != "" {
		c.auth = "Bearer " + o.Token
	}
	return c, nil
}

// Options returns the client's options with defaults filled in (Timeout,
// MaxRetries and MinRetryBackoff are 0 where -1 disabled them).
func (c *Client) Options() Options { return c.opt }

// Close releases the idle connections of the client's own pool. Calls made
// after Close open new connections.
func (c *Client) Close() error {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

// call is one HTTP exchange of an operation: what to send and whether it is
// safe to send again after it may have reached the daemon.
type call struct {
	method string
	path   string // below the base URL, already escaped
	query  url.Values
	body   []byte // encoded JSON, or nil
	// idempotent: 429/502/503/504 answers, dropped connections and attempt
	// timeouts are retried. Other calls are retried only when they provably
	// never left the client (the connection could not be opened).
	idempotent bool
	// noRetry: never retried (probes report the present state).
	noRetry bool
}

func (cl *call) String() string { return cl.method + " " + cl.path }

// do runs cl with retries and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, cl *call, out any) error {
	if ctx == nil {
		return invalidArg("ctx: must not be nil (use context.Background())")
	}
	attempts := 1
	if !cl.noRetry {
		attempts += c.opt.MaxRetries
	}
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, cl, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil && !answered(err) {
			return contextError(ctx, cl, err)
		}
		if attempt >= attempts || !shouldRetry(err, cl.idempotent) {
			return err
		}
		if !c.sleep(ctx, attempt) {
			if ctx.Err() != nil {
				return contextError(ctx, cl, err)
			}
			// The deadline would pass before the next attempt could start:
			// the last failure is the news.
			return err
		}
	}
}

// sleep waits the backoff before retry number n; it returns false without
// waiting when the context's deadline would pass first, or when the
// context ends during the wait.
func (c *Client) sleep(ctx context.Context, n int) bool {
	wait := backoff(n, c.opt.MinRetryBackoff, c.opt.MaxRetryBackoff)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return false
	}
	if wait <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// answered reports whether err carries an HTTP answer from the daemon.
func answered(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status != 0
}

func contextError(ctx context.Context, cl *call, last error) error {
	cause := ctx.Err()
	if errors.Is(cause, context.DeadlineExceeded) {
		return &APIError{
			Code:    CodeDeadlineExceeded,
			Message: fmt.Sprintf("%s: the call's context deadline passed (%v)", cl, unwrapMessage(last)),
			cause:   cause,
		}
	}
	return fmt.Errorf("dsfeatures: %s: %w", cl, cause)
}

func unwrapMessage(err error) string {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Message
	}
	return err.Error()
}

// attempt sends cl once.
func (c *Client) attempt(ctx context.Context, cl *call, out any) error {
	actx := ctx
	if c.opt.Timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.opt.Timeout)
		defer cancel()
	}
	target := c.opt.URL + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, target, body)
	if err != nil {
		return &APIError{Code: CodeTransport, Message: fmt.Sprintf("%s: %v", cl, err), cause: err}
	}
	h := req.Header
	h.Set("User-Agent", c.opt.UserAgent)
	h.Set("Accept", "application/json")
	if cl.body != nil {
		h.Set("Content-Type", "application/json")
	}
	if c.auth != "" {
		h.Set("Authorization", c.auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, actx, cl, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return c.transportError(ctx, actx, cl, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFromResponse(cl, resp.StatusCode, resp.Header.Get("X-Request-Id"), data)
	}
	if out == nil {
		return nil
	}
	if err := decodeJSON(data, out); err != nil {
		return &APIError{
			Code:      CodeBadResponse,
			Status:    resp.StatusCode,
			Message:   fmt.Sprintf("unexpected answer to %s: %v", cl, err),
			RequestID: resp.Header.Get("X-Request-Id"),
			cause:     err,
		}
	}
	return nil
}

// transportError is the error of an attempt that got no (complete) answer.
func (c *Client) transportError(ctx, actx context.Context, cl *call, err error) error {
	where := cl.method + " " + c.opt.URL + cl.path
	var netErr interface{ Timeout() bool }
	timedOut := ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded)
	if timedOut || (errors.As(err, &netErr) && netErr.Timeout()) {
		msg := fmt.Sprintf("%s timed out: %v", where, err)
		if timedOut {
			msg = fmt.Sprintf("%s: no answer within the attempt timeout of %v", where, c.opt.Timeout)
		}
		return &APIError{Code: CodeDeadlineExceeded, Message: msg, cause: err}
	}
	return &APIError{
		Code:    CodeUnavailable,
		Message: fmt.Sprintf("%s failed: cannot reach dsfeatures: %v", where, err),
		cause:   err,
	}
}

// errorBody is the body of every error answer of the daemon.
type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

const snippetBytes = 200

// errorFromResponse turns a non-2xx answer into an *APIError; a body that is
// not an error document (a proxy's page) still gives a code from the status.
func errorFromResponse(cl *call, status int, requestID string, data []byte) *APIError {
	var body errorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Code != "" {
		if body.RequestID == "" {
			body.RequestID = requestID
		}
		return &APIError{Code: body.Code, Status: status, Message: body.Message, RequestID: body.RequestID}
	}
	code, ok := statusCodes[status]
	if !ok {
		code = "HTTP_ERROR"
		if status >= 500 {
			code = "INTERNAL"
		}
	}
	msg := fmt.Sprintf("%s answered HTTP %d", cl, status)
	if len(data) > snippetBytes {
		data = data[:snippetBytes]
	}
	if text := strings.TrimSpace(strings.ToValidUTF8(string(data), "\uFFFD")); text != "" {
		msg += ": " + text
	}
	return &APIError{Code: code, Status: status, Message: msg, RequestID: requestID}
}

// decodeJSON decodes one JSON document, numbers in `any` as json.Number so
// that int64 values stay exact. Unknown fields are ignored: answers may gain
// fields.
func decodeJSON(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

// encodeJSON encodes a request body without HTML escaping (ids and values
// are sent as they are).
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, invalidArg("cannot encode the request as JSON: %v", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// segment escapes one path segment ("/" included) and refuses an empty one.
func segment(field, value string) (string, error) {
	if value == "" {
		return "", invalidArg("%s: must not be empty", field)
	}
	return url.PathEscape(value), nil
}

// --- probes --------------------------------------------------------------------------

// Readiness is the answer of GET /readyz.
type Readiness struct {
	// Status is "ok" when every backend answers.
	Status string `json:"status"`
	// Backends maps each backend (rows, vectors, cache) to "ok" or its error.
	Backends map[string]string `json:"backends"`
}

// Health calls GET /healthz: the daemon process is up. Not retried.
func (c *Client) Health(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	if err := c.do(ctx, &call{method: http.MethodGet, path: "/healthz", noRetry: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Ready calls GET /readyz: the daemon and its backends are ready. Not
// retried. A daemon that is not ready answers an error matching
// ErrUnavailable whose message carries the backends' states.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	var out Readiness
	if err := c.do(ctx, &call{method: http.MethodGet, path: "/readyz", noRetry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
