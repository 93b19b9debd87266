//go:build integration

package dsfeatures_test

// Integration tests against a real daemon: go test -tags integration with
// DSF_URL set (skipped otherwise). tests/e2e/test_go_sdk.py runs them with
// data written from Python beforehand and reads back from Python what they
// write, through this contract:
//
//	DSF_URL              the daemon's base URL
//	DSF_GO_ENTITY_TYPE   the entity type of both groups
//	DSF_GO_GROUP         a scalar group: trips_7d int64 (default 0), avg_fare float64,
//	                     home_city string, is_premium bool (default false),
//	                     signup_at timestamp, avatar bytes, langs list<string>
//	DSF_GO_EMB_GROUP     an embedding group: vec vector(4, cosine), home_city string
//	DSF_GO_PREFIX        prefix of every entity id below
//	DSF_GO_PY_WRITTEN=1  Python wrote the PREFIX-py-* rows (pyRows) before
//
// Without DSF_GO_GROUP the test registers its own groups and writes the
// Python side's rows itself, so it also runs alone against any daemon.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	dsfeatures "github.com/dsfeatures/dsfeatures/sdk_go_compat"
)

var eventTime = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type names struct {
	url, entityType, group, embGroup, prefix string
	pyWritten                                bool
}

func (n names) id(suffix string) string { return n.prefix + "-" + suffix }

func (n names) ref(feature string) string { return n.group + ":" + feature }

func setup(t *testing.T) (*dsfeatures.Client, names) {
	t.Helper()
	n := names{url: os.Getenv("DSF_URL")}
	if n.url == "" {
		t.Skip("DSF_URL is not set: no daemon to test against")
	}
	client, err := dsfeatures.NewClient(dsfeatures.Options{URL: n.url, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	n.group = os.Getenv("DSF_GO_GROUP")
	n.embGroup = os.Getenv("DSF_GO_EMB_GROUP")
	n.entityType = os.Getenv("DSF_GO_ENTITY_TYPE")
	n.prefix = os.Getenv("DSF_GO_PREFIX")
	n.pyWritten = os.Getenv("DSF_GO_PY_WRITTEN") == "1"
	if n.group == "" {
		token := randomToken(t)
		n.group, n.embGroup, n.entityType, n.prefix = token+"_stats", token+"_emb", token+"_rider", token
		registerGroups(t, client, n)
	}
	if !n.pyWritten {
		writePythonSide(t, client, n)
	}
	return client, n
}

func randomToken(t *testing.T) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "g" + hex.EncodeToString(b)
}

func registerGroups(t *testing.T, c *dsfeatures.Client, n names) {
	ctx := context.Background()
	for _, g := range []dsfeatures.FeatureGroup{
		{
			Name: n.group, Version: 1, EntityType: n.entityType, Owner: dsfeatures.Owner{Team: "go-sdk"},
			Features: []dsfeatures.Feature{
				{Name: "trips_7d", Type: "int64", Default: 0}, {Name: "avg_fare", Type: "float64"},
				{Name: "home_city", Type: "string"}, {Name: "is_premium", Type: "bool", Default: false},
				{Name: "signup_at", Type: "timestamp"}, {Name: "avatar", Type: "bytes"},
				{Name: "langs", Type: "list<string>"},
			},
		},
		{
			Name: n.embGroup, Version: 1, EntityType: n.entityType, Kind: dsfeatures.KindEmbedding,
			Owner: dsfeatures.Owner{Team: "go-sdk"},
			Features: []dsfeatures.Feature{
				{Name: "vec", Type: "vector", Dimension: 4, Metric: dsfeatures.MetricCosine},
				{Name: "home_city", Type: "string"},
			},
		},
	} {
		if _, err := c.RegisterGroup(ctx, g); err != nil {
			t.Fatalf("register %s: %v", g.Name, err)
		}
	}
}

// pyRows are the rows tests/e2e/test_go_sdk.py writes from Python.
func pyRows(n names) []dsfeatures.WriteRow {
	return []dsfeatures.WriteRow{
		{Group: n.group, EntityID: n.id("py-1"), EventTime: eventTime, Values: map[string]any{
			"trips_7d": int64(9007199254740993), "avg_fare": 12.5, "home_city": "sf", "is_premium": true,
			"signup_at": "2024-02-29T12:30:00.250000Z", "avatar": []byte("\x89PNG"), "langs": []string{"en", "es"},
		}},
		{Group: n.group, EntityID: n.id("py-2"), EventTime: eventTime, Values: map[string]any{"trips_7d": 2}},
		{Group: n.group, EntityID: n.id("py-gdpr"), EventTime: eventTime, Values: map[string]any{"trips_7d": 5}},
		{Group: n.embGroup, EntityID: n.id("py-gdpr"), EventTime: eventTime, Values: map[string]any{"vec": []float32{0.5, 0.5, 0.5, 0.5}, "home_city": "gdpr"}},
		{Group: n.embGroup, EntityID: n.id("py-e1"), EventTime: eventTime, Values: map[string]any{"vec": []float32{1, 0, 0, 0}, "home_city": "sf"}},
		{Group: n.embGroup, EntityID: n.id("py-e2"), EventTime: eventTime, Values: map[string]any{"vec": []float32{0, 1, 0, 0}, "home_city": "nyc"}},
		{Group: n.embGroup, EntityID: n.id("py-e3"), EventTime: eventTime, Values: map[string]any{"vec": []float32{0.7, 0.7, 0, 0}, "home_city": "sf"}},
	}
}

func writePythonSide(t *testing.T, c *dsfeatures.Client, n names) {
	res, err := c.Write(context.Background(), pyRows(n))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Written() {
			t.Fatalf("row %d: %+v", i, r)
		}
	}
}

func TestIntegrationHealth(t *testing.T) {
	c, _ := setup(t)
	h, err := c.Health(context.Background())
	if err != nil || h["status"] != "ok" {
		t.Fatal(h, err)
	}
	r, err := c.Ready(context.Background())
	if err != nil || r.Status != "ok" {
		t.Fatal(r, err)
	}
}

func TestIntegrationReadsWhatPythonWrote(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	features := []string{
		n.ref("trips_7d"), n.ref("avg_fare"), n.ref("home_city"), n.ref("is_premium"),
		n.ref("signup_at"), n.ref("avatar"), n.ref("langs"),
	}
	resp, err := c.BatchGet(ctx, map[string][]string{n.entityType: {n.id("py-1"), n.id("py-2"), n.id("nobody")}},
		features, dsfeatures.WithMetadata())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Features, features) || len(resp.Rows) != 3 {
		t.Fatalf("%+v", resp)
	}
	r1 := &resp.Rows[0]
	if r1.Entity[n.entityType] != n.id("py-1") {
		t.Errorf("entity %v", r1.Entity)
	}
	for i := range features {
		if r1.Status(i) != dsfeatures.StatusPresent {
			t.Errorf("py-1 %s: %s", features[i], r1.Status(i))
		}
		if at, ok := r1.EventTime(i); !ok || !at.Equal(eventTime) {
			t.Errorf("py-1 %s event time %v", features[i], at)
		}
		if w, ok := r1.WriteTime(i); !ok || time.Since(w) > time.Hour {
			t.Errorf("py-1 %s written at %v", features[i], w)
		}
	}
	if v, err := r1.Int64(0); err != nil || v != 9007199254740993 {
		t.Errorf("trips_7d beyond 2^53: %d %v", v, err)
	}
	if v, err := r1.Float64(1); err != nil || v != 12.5 {
		t.Errorf("avg_fare %v %v", v, err)
	}
	if v, err := r1.String(2); err != nil || v != "sf" {
		t.Errorf("home_city %v %v", v, err)
	}
	if v, err := r1.Bool(3); err != nil || !v {
		t.Errorf("is_premium %v %v", v, err)
	}
	if v, err := r1.Time(4); err != nil || !v.Equal(time.Date(2024, 2, 29, 12, 30, 0, 250_000_000, time.UTC)) {
		t.Errorf("signup_at %v %v", v, err)
	}
	if v, err := r1.Bytes(5); err != nil || string(v) != "\x89PNG" {
		t.Errorf("avatar %v %v", v, err)
	}
	if v, err := r1.List(6); err != nil || !reflect.DeepEqual(v, []any{"en", "es"}) {
		t.Errorf("langs %v %v", v, err)
	}
	r2 := &resp.Rows[1]
	wantStatuses := []dsfeatures.Status{
		dsfeatures.StatusPresent, dsfeatures.StatusNotFound, dsfeatures.StatusNotFound, dsfeatures.StatusDefaulted,
		dsfeatures.StatusNotFound, dsfeatures.StatusNotFound, dsfeatures.StatusNotFound,
	}
	if !reflect.DeepEqual(r2.Statuses, wantStatuses) {
		t.Errorf("py-2 statuses %v", r2.Statuses)
	}
	if v, _ := r2.Int64(0); v != 2 {
		t.Errorf("py-2 trips_7d %d", v)
	}
	if v, err := r2.Bool(3); err != nil || v {
		t.Errorf("py-2 is_premium default %v %v", v, err)
	}
	if _, err := r2.Float64(1); !errors.Is(err, dsfeatures.ErrNoValue) {
		t.Errorf("py-2 avg_fare %v", err)
	}
	r3 := &resp.Rows[2]
	if r3.Status(0) != dsfeatures.StatusDefaulted || r3.Status(1) != dsfeatures.StatusNotFound {
		t.Errorf("nobody %v", r3.Statuses)
	}
	if _, ok := r3.EventTime(0); ok {
		t.Error("nobody has no event time")
	}

	row, err := c.Get(ctx, n.entityType, n.id("py-1"), []string{n.ref("trips_7d"), n.group + "@1:home_city"})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Int64(0); v != 9007199254740993 || row.EventTimes != nil {
		t.Errorf("Get %+v", row)
	}
	all, err := c.Get(ctx, n.entityType, n.id("py-1"), nil)
	if err != nil || all.Len() < 7 {
		t.Fatalf("Get of every feature: %+v %v", all, err)
	}
}

// TestIntegrationWritesForPython writes the PREFIX-go-* rows that
// tests/e2e/test_go_sdk.py reads back.
func TestIntegrationWritesForPython(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	signup := time.Date(2025, 1, 2, 3, 4, 5, 678901000, time.FixedZone("CET", 3600))
	res, err := c.Write(ctx, []dsfeatures.WriteRow{{
		Group: n.group, Version: 1, EntityID: n.id("go-1"), EntityType: n.entityType, EventTime: eventTime,
		Values: map[string]any{
			"trips_7d": int64(9007199254740995), "avg_fare": 0.25, "home_city": "go-城市 \"q\" <x>",
			"is_premium": true, "signup_at": signup, "avatar": []byte{0, 1, 2, 255}, "langs": []string{"go"},
		},
	}}, dsfeatures.WithWriter("go-sdk-test"))
	if err != nil || len(res) != 1 || !res[0].Written() || res[0].Revision < 1 {
		t.Fatalf("%+v %v", res, err)
	}

	// create: only an absent row.
	row2 := dsfeatures.WriteRow{Group: n.group, EntityID: n.id("go-2"), Values: map[string]any{"trips_7d": 7}}
	if res, err := c.Create(ctx, []dsfeatures.WriteRow{row2}); err != nil || !res[0].Written() {
		t.Fatalf("create: %+v %v", res, err)
	}
	row2.Values = map[string]any{"trips_7d": 8}
	res, err = c.Create(ctx, []dsfeatures.WriteRow{row2})
	if err != nil || res[0].Status != dsfeatures.StatusConflict || res[0].Message == "" {
		t.Fatalf("create again: %+v %v", res, err)
	}

	// Event-time order: an older row is STALE and does not overwrite.
	newer := dsfeatures.WriteRow{Group: n.group, EntityID: n.id("go-3"), EventTime: eventTime, Values: map[string]any{"trips_7d": 30}}
	older := dsfeatures.WriteRow{Group: n.group, EntityID: n.id("go-3"), EventTime: eventTime.Add(-time.Hour), Values: map[string]any{"trips_7d": 29}}
	res, err = c.Write(ctx, []dsfeatures.WriteRow{newer, older})
	if err != nil || res[0].Status != dsfeatures.StatusWritten || res[1].Status != dsfeatures.StatusStale {
		t.Fatalf("stale: %+v %v", res, err)
	}

	// update with a revision condition: a partial update of an existing row.
	res, err = c.Write(ctx, []dsfeatures.WriteRow{{Group: n.group, EntityID: n.id("go-4"), EventTime: eventTime,
		Values: map[string]any{"trips_7d": 1, "home_city": "la"}}})
	if err != nil || !res[0].Written() {
		t.Fatal(res, err)
	}
	rev := res[0].Revision
	stale := dsfeatures.WriteRow{Group: n.group, EntityID: n.id("go-4"), IfRevision: dsfeatures.Revision(rev + 5),
		Values: map[string]any{"home_city": "nope"}}
	if res, err := c.Update(ctx, []dsfeatures.WriteRow{stale}); err != nil || res[0].Status != dsfeatures.StatusConflict {
		t.Fatalf("update with a wrong revision: %+v %v", res, err)
	}
	fresh := dsfeatures.WriteRow{Group: n.group, EntityID: n.id("go-4"), IfRevision: dsfeatures.Revision(rev),
		Values: map[string]any{"home_city": "sea", "is_premium": true}}
	if res, err := c.Update(ctx, []dsfeatures.WriteRow{fresh}); err != nil || !res[0].Written() || res[0].Revision != rev+1 {
		t.Fatalf("update: %+v %v", res, err)
	}
	if res, err := c.Update(ctx, []dsfeatures.WriteRow{{Group: n.group, EntityID: n.id("go-absent"), Values: map[string]any{"trips_7d": 1}}}); err != nil || res[0].Status != dsfeatures.StatusConflict {
		t.Fatalf("update of an absent row: %+v %v", res, err)
	}

	// Read back from Go.
	resp, err := c.BatchGet(ctx, map[string][]string{n.entityType: {n.id("go-1"), n.id("go-2"), n.id("go-3"), n.id("go-4")}},
		[]string{n.ref("trips_7d"), n.ref("home_city"), n.ref("is_premium"), n.ref("signup_at"), n.ref("avatar")})
	if err != nil {
		t.Fatal(err)
	}
	got := func(i, j int) any { return resp.Rows[i].Value(j) }
	if v, _ := resp.Rows[0].Int64(0); v != 9007199254740995 {
		t.Errorf("go-1 trips_7d %v", got(0, 0))
	}
	if v, _ := resp.Rows[0].String(1); v != "go-城市 \"q\" <x>" {
		t.Errorf("go-1 home_city %q", v)
	}
	if v, _ := resp.Rows[0].Time(3); !v.Equal(signup) {
		t.Errorf("go-1 signup_at %v", got(0, 3))
	}
	if v, _ := resp.Rows[0].Bytes(4); string(v) != "\x00\x01\x02\xff" {
		t.Errorf("go-1 avatar %v", got(0, 4))
	}
	if v, _ := resp.Rows[1].Int64(0); v != 7 {
		t.Errorf("go-2 trips_7d %v", got(1, 0))
	}
	if v, _ := resp.Rows[2].Int64(0); v != 30 {
		t.Errorf("go-3 trips_7d %v", got(2, 0))
	}
	if v, _ := resp.Rows[3].Int64(0); v != 1 {
		t.Errorf("go-4 trips_7d kept by the partial update: %v", got(3, 0))
	}
	if v, _ := resp.Rows[3].String(1); v != "sea" {
		t.Errorf("go-4 home_city %v", got(3, 1))
	}
}

func TestIntegrationDelete(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	id := n.id("go-del")
	if _, err := c.Write(ctx, []dsfeatures.WriteRow{{Group: n.group, EntityID: id, EventTime: eventTime, Values: map[string]any{"trips_7d": 1}}}); err != nil {
		t.Fatal(err)
	}
	deleted, err := c.Delete(ctx, n.entityType, []string{id, n.id("go-del-absent")}, []string{n.group})
	if err != nil || deleted != 1 {
		t.Fatalf("%d %v", deleted, err)
	}
	row, err := c.Get(ctx, n.entityType, id, []string{n.ref("trips_7d"), n.ref("avg_fare")})
	if err != nil || row.Status(0) != dsfeatures.StatusDefaulted || row.Status(1) != dsfeatures.StatusNotFound {
		t.Fatalf("%+v %v", row, err)
	}
}

// TestIntegrationErasure erases PREFIX-py-gdpr (a scalar and an embedding
// row) from Go; tests/e2e/test_go_sdk.py checks it is gone from Python.
func TestIntegrationErasure(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	id := n.id("py-gdpr")
	res, err := c.DeleteEntity(ctx, n.entityType, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.EntityType != n.entityType || res.EntityID != id || res.Deleted != 2 {
		t.Fatalf("%+v", res)
	}
	resp, err := c.BatchGet(ctx, map[string][]string{n.entityType: {id}}, []string{n.ref("trips_7d"), n.embGroup + ":vec"})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.Rows[0].Statuses; s[0] != dsfeatures.StatusDefaulted || s[1] != dsfeatures.StatusNotFound {
		t.Errorf("after erasure: %v", s)
	}
	hits, err := c.Search(ctx, dsfeatures.SearchArgs{Group: n.embGroup, Vector: []float32{0.5, 0.5, 0.5, 0.5}, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if h.EntityID == id {
			t.Errorf("an erased entity is still found by search: %+v", h)
		}
	}
	again, err := c.DeleteEntity(ctx, n.entityType, id)
	if err != nil || again.Deleted != 0 {
		t.Errorf("erasing twice: %+v %v", again, err)
	}
}

func TestIntegrationSearch(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	hits, err := c.Search(ctx, dsfeatures.SearchArgs{Group: n.embGroup, Vector: []float32{0.9, 0.1, 0, 0}, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].EntityID != n.id("py-e1") || hits[1].EntityID != n.id("py-e3") || hits[0].Score < hits[1].Score {
		t.Fatalf("%+v", hits)
	}
	hits, err = c.Search(ctx, dsfeatures.SearchArgs{
		Group: n.embGroup + "@1", Feature: "vec", Vector: []float32{0, 1, 0, 0}, K: 5,
		Filter: map[string]any{"home_city": []string{"sf"}}, MinScore: dsfeatures.Score(0.6), // cosine scores are (1 + cos) / 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].EntityID != n.id("py-e3") {
		t.Fatalf("filtered: %+v", hits)
	}

	// Written from Go, then found from Go; readable by key too.
	res, err := c.Write(ctx, []dsfeatures.WriteRow{{Group: n.embGroup, EntityID: n.id("go-e1"), EventTime: eventTime,
		Values: map[string]any{"vec": []float32{0, 0, 0.1, 1}, "home_city": "go"}}})
	if err != nil || !res[0].Written() {
		t.Fatal(res, err)
	}
	hits, err = c.Search(ctx, dsfeatures.SearchArgs{Group: n.embGroup, Vector: []float32{0, 0, 0, 1}, K: 1})
	if err != nil || len(hits) != 1 || hits[0].EntityID != n.id("go-e1") {
		t.Fatalf("%+v %v", hits, err)
	}
	row, err := c.Get(ctx, n.entityType, n.id("go-e1"), []string{n.embGroup + ":vec"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := row.Vector(0); err != nil || !reflect.DeepEqual(v, []float32{0, 0, 0.1, 1}) {
		t.Errorf("vector by key: %v %v", v, err)
	}
	_, err = c.Search(ctx, dsfeatures.SearchArgs{Group: n.embGroup, Vector: []float32{1, 2}})
	if !errors.Is(err, dsfeatures.ErrInvalidRequest) {
		t.Errorf("wrong dimension: %v", err)
	}
}

func TestIntegrationErrors(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	var apiErr *dsfeatures.APIError

	_, err := c.BatchGet(ctx, map[string][]string{n.entityType: {"x"}}, []string{n.ref("nope")})
	if !errors.Is(err, dsfeatures.ErrUnknownFeature) || !errors.Is(err, dsfeatures.ErrInvalidRequest) ||
		!errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.RequestID == "" {
		t.Errorf("unknown feature: %v", err)
	}
	_, err = c.Write(ctx, []dsfeatures.WriteRow{
		{Group: n.group, EntityID: n.id("go-bad-ok"), Values: map[string]any{"trips_7d": 1}},
		{Group: n.group, EntityID: n.id("go-bad"), Values: map[string]any{"trips_7d": "three"}},
	})
	if !errors.Is(err, dsfeatures.ErrInvalidRequest) || !strings.Contains(err.Error(), "rows[1].values.trips_7d") {
		t.Errorf("wrong type: %v", err)
	}
	row, err := c.Get(ctx, n.entityType, n.id("go-bad-ok"), []string{n.ref("trips_7d")})
	if err != nil || row.Status(0) != dsfeatures.StatusDefaulted {
		t.Errorf("nothing of a refused write is written: %+v %v", row, err)
	}
	_, err = c.BatchGet(ctx, map[string][]string{n.entityType: {"a", "b"}, "other": {"c"}}, []string{n.ref("trips_7d")})
	if !errors.Is(err, dsfeatures.ErrInvalidRequest) {
		t.Errorf("unequal lists: %v", err)
	}
	if _, err := c.GetGroup(ctx, n.group+"_nope"); !errors.Is(err, dsfeatures.ErrNotFound) {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := c.GetGroupVersion(ctx, n.group, 99); !errors.Is(err, dsfeatures.ErrNotFound) {
		t.Errorf("unknown version: %v", err)
	}
	changed := dsfeatures.FeatureGroup{Name: n.group, Version: 1, EntityType: n.entityType,
		Owner: dsfeatures.Owner{Team: "go-sdk"}, Features: []dsfeatures.Feature{{Name: "trips_7d", Type: "float64"}}}
	if _, err := c.RegisterGroup(ctx, changed); !errors.Is(err, dsfeatures.ErrConflict) {
		t.Errorf("changed definition: %v", err)
	}
}

func TestIntegrationRegistry(t *testing.T) {
	c, n := setup(t)
	ctx := context.Background()
	gv, err := c.GetGroup(ctx, n.group)
	if err != nil || gv.LatestActive != 1 || len(gv.Versions) != 1 {
		t.Fatalf("%+v %v", gv, err)
	}
	d := gv.Versions[0].Definition
	if d.EntityType != n.entityType || d.Kind != dsfeatures.KindScalar || len(d.Features) != 7 || gv.Versions[0].Fingerprint == "" {
		t.Errorf("%+v", d)
	}
	again, err := c.RegisterGroup(ctx, d)
	if err != nil || again.Status != dsfeatures.RegisterUnchanged {
		t.Errorf("registering the stored definition again: %+v %v", again, err)
	}
	groups, err := c.ListGroups(ctx, dsfeatures.ListGroupsArgs{EntityType: n.entityType})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, g := range groups {
		listed = append(listed, g.Name)
	}
	if len(listed) != 2 || !strings.Contains(strings.Join(listed, ","), n.embGroup) {
		t.Errorf("listed %v", listed)
	}

	// A temporary group: register two versions, retire the first.
	tmp := n.group + "_tmp"
	g := dsfeatures.FeatureGroup{Name: tmp, Version: 1, EntityType: n.entityType, Owner: dsfeatures.Owner{Team: "go-sdk"},
		Features: []dsfeatures.Feature{{Name: "x", Type: "int64"}}, Tags: []string{"go"}, Description: "temporary"}
	res, err := c.RegisterGroup(ctx, g)
	if err != nil || res.Status != dsfeatures.RegisterCreated {
		t.Fatalf("%+v %v", res, err)
	}
	g.Description = "temporary, described"
	if res, err := c.RegisterGroup(ctx, g); err != nil || res.Status != dsfeatures.RegisterUpdated {
		t.Fatalf("descriptive change: %+v %v", res, err)
	}
	g.Version = 2
	g.Features = []dsfeatures.Feature{{Name: "x", Type: "float64"}}
	if res, err := c.RegisterGroup(ctx, g); err != nil || res.Status != dsfeatures.RegisterCreated {
		t.Fatalf("version 2: %+v %v", res, err)
	}
	retired, err := c.RetireGroupVersion(ctx, tmp, 1)
	if err != nil || !retired.Retired || retired.RetiredAt.IsZero() {
		t.Fatalf("%+v %v", retired, err)
	}
	one, err := c.GetGroupVersion(ctx, tmp, 1)
	if err != nil || !one.Retired || one.Definition.Description != "temporary, described" {
		t.Fatalf("%+v %v", one, err)
	}
	gv, err = c.GetGroup(ctx, tmp)
	if err != nil || gv.LatestActive != 2 || len(gv.Versions) != 2 {
		t.Fatalf("%+v %v", gv, err)
	}
	_, err = c.BatchGet(ctx, map[string][]string{n.entityType: {"x"}}, []string{tmp + "@1:x"})
	if !errors.Is(err, dsfeatures.ErrUnknownFeature) {
		t.Errorf("reading a retired version: %v", err)
	}
	if _, err := c.RetireGroupVersion(ctx, tmp, 9); !errors.Is(err, dsfeatures.ErrNotFound) {
		t.Errorf("retiring an unknown version: %v", err)
	}
}

func TestIntegrationDeadlineFromContext(t *testing.T) {
	c, n := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_, err := c.BatchGet(ctx, map[string][]string{n.entityType: {"x"}}, []string{n.ref("trips_7d")})
	if !errors.Is(err, dsfeatures.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v", err)
	}
}
