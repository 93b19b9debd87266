package dsfeatures

import (
	"errors"
	"math/rand"
	"net"
	"time"
)

// retryStatus reports whether an answer with this status is worth repeating:
// throttled, or a gateway or store briefly down.
func retryStatus(status int) bool {
	switch status {
	case 429, 502, 503, 504:
		return true
	}
	return false
}

// shouldRetry decides whether a failed attempt may be repeated. A call that
// provably never reached the daemon (the connection could not be opened) is
// always safe to repeat; anything else only when the call is idempotent and
// the failure is transient. Callers have already stopped on a done context.
func shouldRetry(err error, idempotent bool) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	if notSent(apiErr.cause) {
		return true
	}
	return idempotent && apiErr.Retryable()
}

// notSent reports whether a transport error happened while dialing, so that
// no byte of the request reached the daemon.
func notSent(err error) bool {
	var opErr *net.OpError
	return err != nil && errors.As(err, &opErr) && opErr.Op == "dial"
}

// backoff is the wait before retry number attempt (1 for the first retry):
// exponential with "equal jitter", half fixed and half random. The fixed half
// keeps retries from hammering a recovering daemon; the random half spreads
// clients that failed together.
func backoff(attempt int, minBackoff, maxBackoff time.Duration) time.Duration {
	if minBackoff <= 0 || attempt < 1 {
		return 0
	}
	d := minBackoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	if d > maxBackoff {
		d = maxBackoff
	}
	half := d / 2
	return half + time.Duration(rand.Int63n(int64(d-half)+1))
}
