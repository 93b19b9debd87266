package dsfeatures

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

var allSentinels = []error{
	ErrInvalidRequest, ErrUnknownFeature, ErrNotFound, ErrConflict, ErrPayloadTooLarge,
	ErrUnauthorized, ErrForbidden, ErrUnavailable, ErrDeadlineExceeded,
}

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		is     []error
	}{
		{400, "INVALID_REQUEST", []error{ErrInvalidRequest}},
		{400, "MALFORMED_BODY", []error{ErrInvalidRequest}},
		{400, "UNKNOWN_FEATURE", []error{ErrInvalidRequest, ErrUnknownFeature}},
		{401, "UNAUTHENTICATED", []error{ErrUnauthorized}},
		{403, "FORBIDDEN", []error{ErrForbidden}},
		{404, "NOT_FOUND", []error{ErrNotFound}},
		{409, "JOIN_KEY_CONFLICT", []error{ErrConflict}},
		{413, "PAYLOAD_TOO_LARGE", []error{ErrInvalidRequest, ErrPayloadTooLarge}},
		{415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{429, "RESOURCE_EXHAUSTED", nil},
		{500, "INTERNAL", nil},
		{502, "BAD_GATEWAY", nil},
		{503, "UNAVAILABLE", []error{ErrUnavailable}},
		{504, "DEADLINE_EXCEEDED", []error{ErrDeadlineExceeded}},
		{0, CodeInvalidRequest, []error{ErrInvalidRequest}},
		{0, CodeUnavailable, []error{ErrUnavailable}},
		{0, CodeDeadlineExceeded, []error{ErrDeadlineExceeded}},
		{0, CodeTransport, nil},
		{200, CodeBadResponse, nil},
	} {
		var err error = &APIError{Code: tc.code, Status: tc.status, Message: "m"}
		wrapped := fmt.Errorf("loading features: %w", err)
		for _, s := range allSentinels {
			want := false
			for _, w := range tc.is {
				want = want || w == s
			}
			if errors.Is(err, s) != want || errors.Is(wrapped, s) != want {
				t.Errorf("%d %s: errors.Is(%v) should be %v", tc.status, tc.code, s, want)
			}
		}
	}
}

func TestErrorFromADaemonAnswer(t *testing.T) {
	p := newPeer(t).reply(409, `{"code":"VERSION_CONFLICT","message":"group 'g' version 1 is already registered","request_id":"abc"}`)
	_, err := p.client(Options{}).RegisterGroup(context.Background(), FeatureGroup{Name: "g", Version: 1})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("%T %v", err, err)
	}
	if apiErr.Code != "VERSION_CONFLICT" || apiErr.Status != 409 || apiErr.RequestID != "abc" || !errors.Is(err, ErrConflict) {
		t.Errorf("%+v", apiErr)
	}
	want := "dsfeatures: VERSION_CONFLICT (HTTP 409): group 'g' version 1 is already registered [request_id=abc]"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if p.count() != 1 {
		t.Errorf("a conflict is not retried: %d requests", p.count())
	}
}

func TestErrorWithoutAnErrorDocument(t *testing.T) {
	p := newPeer(t).replyWith(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Request-Id", "lb-7")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway " + strings.Repeat("x", 500) + "</html>"))
	})
	_, err := p.client(Options{MaxRetries: -1}).Get(context.Background(), "rider", "r1", nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatal(err)
	}
	if apiErr.Code != "BAD_GATEWAY" || apiErr.Status != 502 || apiErr.RequestID != "lb-7" || !apiErr.Retryable() {
		t.Errorf("%+v", apiErr)
	}
	if !strings.Contains(apiErr.Message, "GET /v1/features/rider/r1 answered HTTP 502: <html>bad gateway") || len(apiErr.Message) > 300 {
		t.Errorf("message %q", apiErr.Message)
	}
	for status, code := range map[int]string{418: "HTTP_ERROR", 500: "INTERNAL", 401: "UNAUTHENTICATED"} {
		e := errorFromResponse(&call{method: "GET", path: "/x"}, status, "", nil)
		if e.Code != code || e.Message != fmt.Sprintf("GET /x answered HTTP %d", status) {
			t.Errorf("%d: %+v", status, e)
		}
	}
}

func TestRequestIDFallsBackToTheHeader(t *testing.T) {
	e := errorFromResponse(&call{method: "GET", path: "/x"}, 400, "hdr-1", []byte(`{"code":"INVALID_REQUEST","message":"m"}`))
	if e.RequestID != "hdr-1" || e.Message != "m" {
		t.Errorf("%+v", e)
	}
}

func TestBadResponseIsNotRetried(t *testing.T) {
	p := newPeer(t).reply(200, `{"features": [`)
	_, err := p.client(Options{}).BatchGet(context.Background(), map[string][]string{"rider": {"r1"}}, []string{"a:b"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeBadResponse || apiErr.Status != 200 || apiErr.Retryable() {
		t.Fatalf("%v", err)
	}
	if errors.Unwrap(err) == nil {
		t.Error("the decoding error is kept")
	}
	if p.count() != 1 {
		t.Errorf("%d requests", p.count())
	}
}

func TestErrorStringWithoutStatus(t *testing.T) {
	err := invalidArg("version: expected an integer >= 1, got %d", 0)
	if err.Error() != "dsfeatures: INVALID_REQUEST: version: expected an integer >= 1, got 0" {
		t.Error(err)
	}
}
