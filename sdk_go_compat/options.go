package dsfeatures

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"
)

// Version is the version of this SDK, sent in the default User-Agent.
const Version = "0.1.0"

// Defaults of Options. They are the same as the Python SDK's.
const (
	// DefaultURL is where `dsfeatures serve` listens by default.
	DefaultURL = "http://127.0.0.1:8080"
	// DefaultTimeout bounds one attempt of a call.
	DefaultTimeout = 5 * time.Second
	// DefaultDialTimeout bounds opening one connection.
	DefaultDialTimeout = 5 * time.Second
	// DefaultMaxRetries is how many times a retryable failure is retried.
	DefaultMaxRetries = 3
	// DefaultMinRetryBackoff is the first backoff; it doubles on every retry.
	DefaultMinRetryBackoff = 50 * time.Millisecond
	// DefaultMaxRetryBackoff caps one backoff.
	DefaultMaxRetryBackoff = 2 * time.Second
)

// DefaultUserAgent is the User-Agent sent unless Options.UserAgent is set.
const DefaultUserAgent = "dsfeatures-go/" + Version

// Options configure a Client. The zero value of every field selects its
// documented default, so Options{} talks to a local daemon.
type Options struct {
	// URL is the daemon's base URL; a path prefix is kept.
	// Default: DefaultURL ("http://127.0.0.1:8080").
	URL string

	// Token is sent as "Authorization: Bearer <Token>".
	// Default: "" (no Authorization header).
	Token string

	// UserAgent is the User-Agent header.
	// Default: DefaultUserAgent ("dsfeatures-go/<Version>").
	UserAgent string

	// Timeout bounds one attempt of a call (connect, send, wait, read); a
	// deadline on the call's context bounds the whole call, retries included.
	// Default: 5s. -1 means no per-attempt timeout (only the context's).
	Timeout time.Duration

	// DialTimeout bounds opening one TCP connection.
	// Default: 5s. Ignored when HTTPClient is set.
	DialTimeout time.Duration

	// MaxRetries is how many times a retryable failure is retried after the
	// first attempt (see the package documentation for what is retryable).
	// Default: 3. -1 disables retries.
	MaxRetries int

	// MinRetryBackoff is the wait before the first retry; it doubles on every
	// retry up to MaxRetryBackoff, half of it fixed and half random (jitter).
	// Default: 50ms. -1 retries without waiting.
	MinRetryBackoff time.Duration

	// MaxRetryBackoff caps one wait between retries.
	// Default: 2s.
	MaxRetryBackoff time.Duration

	// PoolSize is how many idle keep-alive connections to the daemon are kept
	// for reuse (open connections are not limited).
	// Default: 10 per GOMAXPROCS. Ignored when HTTPClient is set.
	PoolSize int

	// HTTPClient sends the requests instead of the client's own pooled
	// http.Client (for proxies, custom TLS or tests). Its Timeout should be
	// zero: the SDK applies Timeout itself.
	// Default: nil (a dedicated client with a keep-alive pool).
	HTTPClient *http.Client
}

// withDefaults returns a copy with every zero field set to its default, or an
// error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("dsfeatures: Options.URL must be an http:// or https:// URL with a host, got %q", o.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return o, fmt.Errorf("dsfeatures: Options.URL must not have a query or fragment, got %q", o.URL)
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Token != "" && strings.TrimSpace(o.Token) == "" {
		return o, fmt.Errorf("dsfeatures: Options.Token must not be blank")
	}
	if strings.ContainsAny(o.Token, "\r\n") {
		return o, fmt.Errorf("dsfeatures: Options.Token must not contain line breaks")
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	switch {
	case o.Timeout == 0:
		o.Timeout = DefaultTimeout
	case o.Timeout < 0:
		o.Timeout = 0
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	switch {
	case o.MinRetryBackoff == 0:
		o.MinRetryBackoff = DefaultMinRetryBackoff
	case o.MinRetryBackoff < 0:
		o.MinRetryBackoff = 0
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if o.MaxRetryBackoff < o.MinRetryBackoff {
		o.MaxRetryBackoff = o.MinRetryBackoff
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 10 * runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// newTransport is the keep-alive pool of a client that was not given an
// http.Client: every idle connection to the daemon is kept for reuse.
func newTransport(o Options) *http.Transport {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        o.PoolSize,
		MaxIdleConnsPerHost: o.PoolSize,
		// Below the daemon's keep-alive timeout (aiohttp: 75s), so that the
		// client, not the daemon, retires an idle connection.
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
}
