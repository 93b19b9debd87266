package dsfeatures

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

var (
	plainRow = WriteRow{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}}
	timedRow = WriteRow{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}, EventTime: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	revRow   = WriteRow{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}, IfRevision: Revision(3)}
)

// writeOK answers WRITTEN for every row of a write.
func writeOK(w http.ResponseWriter, r *http.Request) {
	var req struct{ Rows []json.RawMessage }
	_ = json.NewDecoder(r.Body).Decode(&req)
	results := make([]WriteResult, len(req.Rows))
	for i := range results {
		results[i] = WriteResult{Status: StatusWritten, Revision: 1}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"results": results})
}

func TestRetryableAnswersAreRetriedForIdempotentCalls(t *testing.T) {
	for _, status := range []int{429, 502, 503, 504} {
		p := newPeer(t).replyError(status, "X").replyError(status, "X").reply(200, getOne)
		row, err := p.client(Options{}).Get(context.Background(), "rider", "r1", nil)
		if err != nil || row == nil {
			t.Fatalf("%d: %v", status, err)
		}
		if p.count() != 3 {
			t.Errorf("%d: %d attempts, want 3", status, p.count())
		}
	}
}

func TestOtherAnswersAreNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 413, 500} {
		p := newPeer(t).replyError(status, "X").reply(200, getOne)
		if _, err := p.client(Options{}).Get(context.Background(), "rider", "r1", nil); err == nil {
			t.Fatalf("%d: no error", status)
		}
		if p.count() != 1 {
			t.Errorf("%d: %d attempts, want 1", status, p.count())
		}
	}
}

func TestMaxRetries(t *testing.T) {
	for _, tc := range []struct{ maxRetries, attempts int }{{0, 4}, {1, 2}, {-1, 1}, {5, 6}} {
		p := newPeer(t).replyError(503, "UNAVAILABLE")
		_, err := p.client(Options{MaxRetries: tc.maxRetries}).Get(context.Background(), "rider", "r1", nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%v", err)
		}
		if p.count() != tc.attempts {
			t.Errorf("MaxRetries %d: %d attempts, want %d", tc.maxRetries, p.count(), tc.attempts)
		}
	}
}

func TestWritesAreRetriedOnlyWhenAReplayIsHarmless(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		call     func(c *Client) ([]WriteResult, error)
		attempts int
	}{
		{"plain upsert", func(c *Client) ([]WriteResult, error) { return c.Write(ctx, []WriteRow{plainRow}) }, 1},
		{"upsert with one plain row", func(c *Client) ([]WriteResult, error) { return c.Write(ctx, []WriteRow{timedRow, plainRow}) }, 1},
		{"upsert with event times", func(c *Client) ([]WriteResult, error) { return c.Write(ctx, []WriteRow{timedRow, timedRow}) }, 4},
		{"upsert with if_revision", func(c *Client) ([]WriteResult, error) { return c.Write(ctx, []WriteRow{revRow, timedRow}) }, 4},
		{"create", func(c *Client) ([]WriteResult, error) { return c.Create(ctx, []WriteRow{plainRow}) }, 4},
		{"update", func(c *Client) ([]WriteResult, error) { return c.Update(ctx, []WriteRow{plainRow}) }, 4},
	} {
		p := newPeer(t).replyError(503, "UNAVAILABLE")
		_, err := tc.call(p.client(Options{}))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.count() != tc.attempts {
			t.Errorf("%s: %d attempts, want %d", tc.name, p.count(), tc.attempts)
		}
		p = newPeer(t).replyError(503, "UNAVAILABLE").replyWith(writeOK)
		_, err = tc.call(p.client(Options{}))
		if (err == nil) != (tc.attempts > 1) {
			t.Errorf("%s after one 503: %v", tc.name, err)
		}
	}
}

// dropConnection answers nothing: the request reached the daemon, which may
// have applied it.
func dropConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func TestDroppedConnections(t *testing.T) {
	p := newPeer(t).replyWith(dropConnection)
	_, err := p.client(Options{}).Write(context.Background(), []WriteRow{plainRow})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeUnavailable || apiErr.Status != 0 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%v", err)
	}
	if errors.Unwrap(err) == nil {
		t.Error("the transport error is kept")
	}
	if p.count() != 1 {
		t.Errorf("a plain upsert that may have been applied is not repeated: %d attempts", p.count())
	}
	p = newPeer(t).replyWith(dropConnection).replyWith(dropConnection).reply(200, getOne)
	if _, err := p.client(Options{}).Get(context.Background(), "rider", "r1", nil); err != nil {
		t.Fatal(err)
	}
	if p.count() != 3 {
		t.Errorf("an idempotent call is repeated: %d attempts", p.count())
	}
}

func TestCallsThatNeverLeftAreAlwaysRetried(t *testing.T) {
	// A port nothing listens on: every dial is refused, so even a plain
	// upsert (never sent) is safe to try again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: time.Second}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, a)
		},
	}}
	c, err := NewClient(Options{URL: "http://" + addr, HTTPClient: hc, MinRetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Write(context.Background(), []WriteRow{plainRow})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("the dial error is kept: %v", err)
	}
	if dials.Load() != 4 {
		t.Errorf("%d dials, want 4", dials.Load())
	}
}

func TestAttemptTimeout(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	p := newPeer(t).replyWith(slow)
	c := p.client(Options{Timeout: 30 * time.Millisecond, MaxRetries: 2})
	start := time.Now()
	_, err := c.Get(context.Background(), "rider", "r1", nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeDeadlineExceeded || !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if p.count() != 3 {
		t.Errorf("an idempotent call is retried after an attempt timeout: %d attempts", p.count())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	p = newPeer(t).replyWith(slow)
	_, err = p.client(Options{Timeout: 30 * time.Millisecond}).Write(context.Background(), []WriteRow{plainRow})
	if !errors.Is(err, ErrDeadlineExceeded) || p.count() != 1 {
		t.Errorf("a plain upsert is not retried after a timeout: %v, %d attempts", err, p.count())
	}
}

func TestContextDeadlineBoundsTheWholeCall(t *testing.T) {
	p := newPeer(t).replyWith(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c := p.client(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.BatchGet(ctx, map[string][]string{"rider": {"r1"}}, []string{"a:b"})
	if !errors.Is(err, ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if p.count() != 1 {
		t.Errorf("no retry after the context's deadline: %d attempts", p.count())
	}
}

func TestNoRetryThatCannotStartBeforeTheDeadline(t *testing.T) {
	p := newPeer(t).replyError(503, "UNAVAILABLE")
	c := p.client(Options{MinRetryBackoff: time.Second, MaxRetryBackoff: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "rider", "r1", nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the last failure is returned: %v", err)
	}
	if d := time.Since(start); d > 150*time.Millisecond || p.count() != 1 {
		t.Errorf("took %v and %d attempts", d, p.count())
	}
}

func TestCanceledContext(t *testing.T) {
	p := newPeer(t).replyError(503, "UNAVAILABLE")
	c := p.client(Options{MinRetryBackoff: time.Second, MaxRetryBackoff: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := c.Get(ctx, "rider", "r1", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, "rider", "r1", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

func TestBackoff(t *testing.T) {
	minB, maxB := 100*time.Millisecond, 350*time.Millisecond
	for i := 0; i < 200; i++ {
		for attempt, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: maxB, 10: maxB} {
			d := backoff(attempt, minB, maxB)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
	if backoff(1, 0, maxB) != 0 || backoff(0, minB, maxB) != 0 {
		t.Error("no backoff")
	}
	if backoff(1000, minB, maxB) > maxB {
		t.Error("capped")
	}
}

func TestShouldRetry(t *testing.T) {
	if shouldRetry(errors.New("plain"), true) {
		t.Error("only *APIError is retried")
	}
	if shouldRetry(&APIError{Code: CodeInvalidRequest}, true) {
		t.Error("a refused argument is not retried")
	}
	dial := &net.OpError{Op: "dial", Err: errors.New("refused")}
	if !shouldRetry(&APIError{Code: CodeUnavailable, cause: dial}, false) {
		t.Error("never sent: retried")
	}
	read := &net.OpError{Op: "read", Err: errors.New("reset")}
	if shouldRetry(&APIError{Code: CodeUnavailable, cause: read}, false) {
		t.Error("maybe sent, not idempotent: not retried")
	}
	if !shouldRetry(&APIError{Code: CodeUnavailable, cause: read}, true) {
		t.Error("maybe sent, idempotent: retried")
	}
}
