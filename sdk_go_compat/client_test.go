package dsfeatures

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peer is a fake daemon: it records requests and answers from a script (the
// last answer repeats).
type peer struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	requests []*recorded
	script   []answer
	newConns atomic.Int64
}

type recorded struct {
	method, rawPath, query string
	header                 http.Header
	body                   []byte
}

// answer is one scripted reply; handle, when set, replaces it.
type answer struct {
	status int
	body   string
	header map[string]string
	handle func(w http.ResponseWriter, r *http.Request)
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{t: t}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.newConns.Add(1)
		}
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.requests = append(p.requests, &recorded{
		method: r.Method, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header.Clone(), body: body,
	})
	var a answer
	switch {
	case len(p.script) > 1:
		a, p.script = p.script[0], p.script[1:]
	case len(p.script) == 1:
		a = p.script[0]
	default:
		a = answer{status: 500, body: `{"code":"INTERNAL","message":"no scripted answer","request_id":"x"}`}
	}
	p.mu.Unlock()
	if a.handle != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.handle(w, r)
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (p *peer) reply(status int, body string) *peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = append(p.script, answer{status: status, body: body})
	return p
}

// only replaces the script with one answer.
func (p *peer) only(status int, body string) *peer {
	p.mu.Lock()
	p.script = nil
	p.mu.Unlock()
	return p.reply(status, body)
}

func (p *peer) replyError(status int, code string) *peer {
	return p.reply(status, `{"code":"`+code+`","message":"boom","request_id":"req-1"}`)
}

func (p *peer) replyWith(h func(w http.ResponseWriter, r *http.Request)) *peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script = append(p.script, answer{handle: h})
	return p
}

func (p *peer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

func (p *peer) last() *recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		p.t.Fatal("no request was made")
	}
	return p.requests[len(p.requests)-1]
}

func (p *peer) lastJSON() map[string]any {
	var out map[string]any
	if err := decodeJSON(p.last().body, &out); err != nil {
		p.t.Fatalf("request body: %v", err)
	}
	return out
}

// client returns a client of p with fast backoff; opt overrides.
func (p *peer) client(opt Options) *Client {
	p.t.Helper()
	if opt.URL == "" {
		opt.URL = p.srv.URL
	}
	if opt.MinRetryBackoff == 0 {
		opt.MinRetryBackoff = time.Millisecond
	}
	if opt.MaxRetryBackoff == 0 {
		opt.MaxRetryBackoff = 2 * time.Millisecond
	}
	c, err := NewClient(opt)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = c.Close() })
	return c
}

const getOne = `{"features":["rider_stats:trips_7d","rider_stats@1:avg_fare"],"rows":[{"entity":{"rider":"r/1 é"},"values":[3,12.5],"statuses":["PRESENT","PRESENT"],"event_times":["2026-11-26T10:00:00Z",null],"written_at":["2026-11-26T10:00:01.5Z",null]}]}`

func TestDefaultHeaders(t *testing.T) {
	p := newPeer(t).reply(200, getOne)
	c := p.client(Options{})
	if _, err := c.BatchGet(context.Background(), map[string][]string{"rider": {"r1"}}, []string{"rider_stats:trips_7d"}); err != nil {
		t.Fatal(err)
	}
	h := p.last().header
	if got := h.Get("User-Agent"); got != "dsfeatures-go/"+Version {
		t.Errorf("User-Agent %q", got)
	}
	if h.Get("Accept") != "application/json" || h.Get("Content-Type") != "application/json" {
		t.Errorf("Accept %q, Content-Type %q", h.Get("Accept"), h.Get("Content-Type"))
	}
	if _, ok := h["Authorization"]; ok {
		t.Error("no token: no Authorization header")
	}
}

func TestTokenAndUserAgent(t *testing.T) {
	p := newPeer(t).reply(200, `{"status":"ok"}`)
	c := p.client(Options{Token: "s3cret", UserAgent: "pricing-svc/2"})
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := p.last().header
	if h.Get("Authorization") != "Bearer s3cret" || h.Get("User-Agent") != "pricing-svc/2" {
		t.Errorf("headers %v", h)
	}
	if h.Get("Content-Type") != "" {
		t.Error("a request without a body has no Content-Type")
	}
}

func TestGetEscapesThePathAndAsksForMetadata(t *testing.T) {
	p := newPeer(t).reply(200, getOne)
	c := p.client(Options{})
	row, err := c.Get(context.Background(), "rider", "r/1 é", []string{"rider_stats:trips_7d", "rider_stats@1:avg_fare"}, WithMetadata())
	if err != nil {
		t.Fatal(err)
	}
	r := p.last()
	if r.method != http.MethodGet || r.rawPath != "/v1/features/rider/r%2F1%20%C3%A9" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	if r.query != "features=rider_stats%3Atrips_7d%2Crider_stats%401%3Aavg_fare&include_metadata=true" {
		t.Errorf("query %q", r.query)
	}
	if n, _ := row.Int64(0); n != 3 || row.Entity["rider"] != "r/1 é" {
		t.Errorf("row %+v", row)
	}
	if ts, ok := row.EventTime(0); !ok || !ts.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("event time %v %v", ts, ok)
	}
	if ts, ok := row.WriteTime(0); !ok || ts.Nanosecond() != 500_000_000 {
		t.Errorf("written at %v %v", ts, ok)
	}
	if _, ok := row.EventTime(1); ok {
		t.Error("no stored row: no event time")
	}
}

func TestGetWithoutFeaturesSendsNoQuery(t *testing.T) {
	p := newPeer(t).reply(200, getOne)
	if _, err := p.client(Options{}).Get(context.Background(), "rider", "r1", nil); err != nil {
		t.Fatal(err)
	}
	if q := p.last().query; q != "" {
		t.Errorf("query %q", q)
	}
}

func TestGetRefusesEmptyIDsWithoutARequest(t *testing.T) {
	p := newPeer(t)
	c := p.client(Options{})
	for _, args := range [][2]string{{"", "r1"}, {"rider", ""}} {
		_, err := c.Get(context.Background(), args[0], args[1], nil)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%v: %v", args, err)
		}
		if _, err := c.DeleteEntity(context.Background(), args[0], args[1]); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if p.count() != 0 {
		t.Error("nothing should be sent")
	}
}

func TestGetOfNoRowIsABadResponse(t *testing.T) {
	p := newPeer(t).reply(200, `{"features":[],"rows":[]}`)
	_, err := p.client(Options{}).Get(context.Background(), "rider", "r1", nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeBadResponse {
		t.Fatalf("%v", err)
	}
}

func TestBatchGet(t *testing.T) {
	p := newPeer(t).reply(200, `{"features":["rider_stats:trips_7d","driver_stats:rating"],"rows":[
		{"entity":{"rider":"r1","driver":"d1"},"values":[3,4.5],"statuses":["PRESENT","PRESENT"]},
		{"entity":{"rider":"r2","driver":"d2"},"values":[0,null],"statuses":["DEFAULTED","NOT_FOUND"]}]}`)
	c := p.client(Options{})
	resp, err := c.BatchGet(context.Background(),
		map[string][]string{"rider": {"r1", "r2"}, "driver": {"d1", "d2"}},
		[]string{"rider_stats:trips_7d", "driver_stats:rating"})
	if err != nil {
		t.Fatal(err)
	}
	body := p.lastJSON()
	if body["include_metadata"] != false || len(body["features"].([]any)) != 2 {
		t.Errorf("body %v", body)
	}
	if r := p.last(); r.method != http.MethodPost || r.rawPath != "/v1/features/get" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	if len(resp.Rows) != 2 || resp.Rows[1].Status(1) != StatusNotFound || resp.Rows[1].Status(0) != StatusDefaulted {
		t.Fatalf("%+v", resp)
	}
	if resp.Index("driver_stats:rating") != 1 || resp.Index("nope") != -1 {
		t.Error("Index")
	}
	if f, err := resp.Rows[0].Float64(1); err != nil || f != 4.5 {
		t.Errorf("%v %v", f, err)
	}
	if resp.Rows[0].EventTimes != nil {
		t.Error("no metadata asked: no event times")
	}
	if _, ok := resp.Rows[0].EventTime(0); ok {
		t.Error("no metadata asked: no event time")
	}
}

func TestWriteEncodesRowsAndValueTypes(t *testing.T) {
	p := newPeer(t).reply(200, `{"results":[{"status":"WRITTEN","revision":1},{"status":"STALE","revision":4,"message":"older event time than the stored row"}]}`)
	c := p.client(Options{})
	at := time.Date(2026, 11, 26, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	res, err := c.Write(context.Background(), []WriteRow{
		{Group: "rider_stats", Version: 1, EntityID: "r1", EventTime: at, Values: map[string]any{
			"trips_7d": int64(9007199254740993), "avg_fare": 12.5, "home_city": "<sf>", "is_premium": false,
			"avatar": []byte{0x89, 'P', 'N', 'G'}, "vec": []float32{0.1, -2}, "gone": nil,
		}},
		{Group: "rider_stats", EntityID: "r2", EntityType: "rider", IfRevision: Revision(0), Values: map[string]any{"trips_7d": 1}},
	}, WithLane(LaneBatch), WithWriter("pricing-job"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Written() || res[1].Status != StatusStale || res[1].Revision != 4 || res[1].Message == "" {
		t.Fatalf("%+v", res)
	}
	raw := string(p.last().body)
	for _, want := range []string{
		`"event_time":"2026-11-26T10:00:00.123456Z"`, `"trips_7d":9007199254740993`, `"avatar":"iVBORw=="`,
		`"vec":[0.1,-2]`, `"gone":null`, `"home_city":"<sf>"`, `"if_revision":0`, `"mode":"upsert"`,
		`"lane":"batch"`, `"writer":"pricing-job"`, `"entity_type":"rider"`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("body lacks %s: %s", want, raw)
		}
	}
	rows := p.lastJSON()["rows"].([]any)
	if _, ok := rows[1].(map[string]any)["event_time"]; ok {
		t.Error("a zero EventTime is left out")
	}
	if _, ok := rows[1].(map[string]any)["version"]; ok {
		t.Error("a zero Version is left out")
	}
}

func TestWriteModes(t *testing.T) {
	p := newPeer(t).reply(200, `{"results":[{"status":"CONFLICT","revision":2,"message":"create needs an absent row"}]}`)
	c := p.client(Options{})
	rows := []WriteRow{{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}}}
	ctx := context.Background()
	for _, tc := range []struct {
		call func() ([]WriteResult, error)
		mode string
	}{
		{func() ([]WriteResult, error) { return c.Create(ctx, rows) }, "create"},
		{func() ([]WriteResult, error) { return c.Update(ctx, rows, WithMode(ModeCreate)) }, "update"},
		{func() ([]WriteResult, error) { return c.Write(ctx, rows, WithMode(ModeUpdate)) }, "update"},
		{func() ([]WriteResult, error) { return c.Write(ctx, rows) }, "upsert"},
	} {
		res, err := tc.call()
		if err != nil || res[0].Status != StatusConflict || res[0].Written() {
			t.Fatalf("%v %v", res, err)
		}
		if body := p.lastJSON(); body["mode"] != tc.mode || body["lane"] != "sdk" || body["writer"] != "" {
			t.Errorf("body %v, want mode %s", body, tc.mode)
		}
	}
}

func TestWriteWithoutRowsSendsNothing(t *testing.T) {
	p := newPeer(t)
	res, err := p.client(Options{}).Write(context.Background(), nil)
	if err != nil || res != nil || p.count() != 0 {
		t.Fatalf("%v %v %d", res, err, p.count())
	}
}

func TestWriteRefusesUnknownModeAndLane(t *testing.T) {
	p := newPeer(t)
	c := p.client(Options{})
	rows := []WriteRow{{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}}}
	for _, opt := range []WriteOption{WithMode("replace"), WithLane("kafka")} {
		if _, err := c.Write(context.Background(), rows, opt); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%v", err)
		}
	}
	if _, err := c.Write(context.Background(), []WriteRow{{Group: "g", EntityID: "e", Values: map[string]any{"f": make(chan int)}}}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("an unencodable value: %v", err)
	}
	if p.count() != 0 {
		t.Error("nothing should be sent")
	}
}

func TestWriteWithFewerResultsThanRowsIsABadResponse(t *testing.T) {
	p := newPeer(t).reply(200, `{"results":[]}`)
	_, err := p.client(Options{}).Write(context.Background(), []WriteRow{{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeBadResponse {
		t.Fatal(err)
	}
}

func TestDeleteAndDeleteEntity(t *testing.T) {
	p := newPeer(t).reply(200, `{"deleted":3}`)
	c := p.client(Options{})
	n, err := c.Delete(context.Background(), "rider", []string{"r1", "r2"}, []string{"rider_stats", "rider_emb@1"})
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if r := p.last(); r.method != http.MethodPost || r.rawPath != "/v1/features/delete" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	if body := p.lastJSON(); body["entity_type"] != "rider" || len(body["groups"].([]any)) != 2 {
		t.Errorf("%v", body)
	}
	p.only(200, `{"entity_type":"rider","entity_id":"r/1","deleted":2}`)
	res, err := c.DeleteEntity(context.Background(), "rider", "r/1")
	if err != nil || res.Deleted != 2 || res.EntityID != "r/1" {
		t.Fatal(res, err)
	}
	if r := p.last(); r.method != http.MethodDelete || r.rawPath != "/v1/entities/rider/r%2F1" || r.body != nil && len(r.body) != 0 {
		t.Errorf("%s %s %q", r.method, r.rawPath, r.body)
	}
}

func TestSearch(t *testing.T) {
	p := newPeer(t).reply(200, `{"results":[{"entity_id":"r7","score":0.98},{"entity_id":"r2","score":0.5}]}`)
	c := p.client(Options{})
	hits, err := c.Search(context.Background(), SearchArgs{Group: "rider_emb", Vector: []float32{0.1, 0.2}})
	if err != nil || len(hits) != 2 || hits[0].EntityID != "r7" || hits[0].Score != 0.98 {
		t.Fatal(hits, err)
	}
	raw := string(p.last().body)
	if raw != `{"group":"rider_emb","vector":[0.1,0.2],"k":10,"feature":""}` {
		t.Errorf("body %s", raw)
	}
	_, err = c.Search(context.Background(), SearchArgs{
		Group: "rider_emb@2", Vector: []float32{1}, K: 3, Feature: "vec",
		Filter: map[string]any{"home_city": []string{"sf"}}, MinScore: Score(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw := string(p.last().body); raw != `{"group":"rider_emb@2","vector":[1],"k":3,"feature":"vec","filter":{"home_city":["sf"]},"min_score":0}` {
		t.Errorf("body %s", raw)
	}
}

func TestBaseURLPathPrefixIsKept(t *testing.T) {
	p := newPeer(t).reply(200, `{"status":"ok"}`)
	c := p.client(Options{URL: p.srv.URL + "/dsf/"})
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.last().rawPath; got != "/dsf/healthz" {
		t.Errorf("path %q", got)
	}
}

func TestReadyAndNotReady(t *testing.T) {
	p := newPeer(t).reply(200, `{"status":"ok","backends":{"rows":"ok","vectors":"ok"}}`)
	c := p.client(Options{})
	r, err := c.Ready(context.Background())
	if err != nil || r.Status != "ok" || r.Backends["rows"] != "ok" {
		t.Fatal(r, err)
	}
	p.only(503, `{"status":"unavailable","backends":{"rows":"error: disk"}}`)
	_, err = c.Ready(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "error: disk") {
		t.Fatal(err)
	}
	if p.count() != 2 {
		t.Errorf("probes are not retried: %d requests", p.count())
	}
}

func TestConnectionsAreReused(t *testing.T) {
	p := newPeer(t).reply(200, getOne)
	c := p.client(Options{})
	for i := 0; i < 20; i++ {
		if _, err := c.BatchGet(context.Background(), map[string][]string{"rider": {"r1"}}, []string{"rider_stats:trips_7d"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.newConns.Load(); n != 1 {
		t.Errorf("20 sequential calls opened %d connections", n)
	}
	// Error answers are read to the end too, so their connection is reused.
	p.only(400, `{"code":"INVALID_REQUEST","message":"boom","request_id":"req-1"}`)
	for i := 0; i < 5; i++ {
		_, _ = c.BatchGet(context.Background(), map[string][]string{"rider": {"r1"}}, []string{"x"})
	}
	if n := p.newConns.Load(); n != 1 {
		t.Errorf("error answers opened %d connections", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	p := newPeer(t).reply(200, getOne)
	c := p.client(Options{PoolSize: 8})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				if _, err := c.Get(context.Background(), "rider", "r1", nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A dial may race with a connection coming back to the pool; 64 calls
	// still share a handful of connections.
	if n := p.newConns.Load(); n > 16 {
		t.Errorf("8 goroutines opened %d connections for 64 calls", n)
	}
}

func TestUnknownResponseFieldsAreIgnored(t *testing.T) {
	p := newPeer(t).reply(200, `{"results":[{"status":"WRITTEN","revision":1,"shard":7}],"took_ms":3}`)
	res, err := p.client(Options{}).Write(context.Background(), []WriteRow{{Group: "g", EntityID: "e", Values: map[string]any{"f": 1}}})
	if err != nil || !res[0].Written() {
		t.Fatal(res, err)
	}
}

func TestRawJSONDecoding(t *testing.T) {
	var resp GetResponse
	if err := decodeJSON([]byte(`{"features":["a:b"],"rows":[]} {}`), &resp); err == nil {
		t.Error("trailing data should be refused")
	}
	if err := json.Unmarshal([]byte(`{"features":["a:b"],"rows":[]}`), &resp); err != nil {
		t.Error(err)
	}
}
