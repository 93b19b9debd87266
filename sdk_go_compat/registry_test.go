package dsfeatures

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

const registered = `{"definition":{"name":"rider_stats","version":1,"entity_type":"rider","features":[{"name":"trips_7d","type":"int64","default":0},{"name":"avg_fare","type":"float64"}],"owner":{"team":"pricing"},"lineage":{}},"fingerprint":"f00d","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00.5Z"}`

func TestRegisterGroup(t *testing.T) {
	p := newPeer(t).reply(201, `{"status":"created","group":`+registered+`,"similar":["rider_stats_old"]}`)
	c := p.client(Options{})
	res, err := c.RegisterGroup(context.Background(), FeatureGroup{
		Name: "rider_stats", Version: 1, EntityType: "rider",
		Features: []Feature{{Name: "trips_7d", Type: "int64", Default: 0}, {Name: "avg_fare", Type: "float64"}},
		Owner:    Owner{Team: "pricing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.last(); r.method != http.MethodPost || r.rawPath != "/v1/registry/groups" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	// Zero optional fields are left out so that the daemon applies its defaults.
	want := `{"name":"rider_stats","version":1,"entity_type":"rider","features":[{"name":"trips_7d","type":"int64","default":0},{"name":"avg_fare","type":"float64"}],"owner":{"team":"pricing"}}`
	if got := string(p.last().body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if res.Status != RegisterCreated || res.Similar[0] != "rider_stats_old" || res.Group.Fingerprint != "f00d" {
		t.Errorf("%+v", res)
	}
	d := res.Group.Definition
	if d.Kind != KindScalar || d.Tier != 3 || d.Lineage == nil || d.Features[0].Default != json.Number("0") {
		t.Errorf("defaults the daemon leaves out are filled in: %+v", d)
	}
	if !res.Group.UpdatedAt.Equal(time.Date(2026, 11, 26, 10, 0, 0, 500_000_000, time.UTC)) || !res.Group.RetiredAt.IsZero() {
		t.Errorf("%+v", res.Group)
	}
}

func TestRegisterSendsDefaultsItIsGiven(t *testing.T) {
	cl, err := registerCall(FeatureGroup{
		Name: "e", Version: 2, EntityType: "rider", Kind: KindEmbedding, Tier: 1, TTLSeconds: 60,
		Features:  []Feature{{Name: "vec", Type: "vector", Dimension: 8, Metric: MetricCosine}, {Name: "p", Type: "bool", Default: false}},
		Owner:     Owner{Team: "t", Contact: "c"},
		Carryover: &Carryover{MaxDays: 0}, Rollup: &Rollup{SourcePeriod: "hour", TargetPeriod: "day"},
		Lineage: &Lineage{Sources: []string{"s"}}, Tags: []string{"x"}, Description: "d", JoinKey: "rider_id",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"e","version":2,"entity_type":"rider","features":[{"name":"vec","type":"vector","dimension":8,"metric":"cosine"},{"name":"p","type":"bool","default":false}],"owner":{"team":"t","contact":"c"},"kind":"embedding","tier":1,"ttl_seconds":60,"carryover":{"max_days":0},"rollup":{"source_period":"hour","target_period":"day"},"lineage":{"sources":["s"]},"tags":["x"],"description":"d","join_key":"rider_id"}`
	if string(cl.body) != want {
		t.Errorf("body\n got %s\nwant %s", cl.body, want)
	}
}

func TestGetGroupAndVersions(t *testing.T) {
	p := newPeer(t).reply(200, `{"name":"rider stats","latest_active":null,"versions":[`+registered+`]}`)
	c := p.client(Options{})
	gv, err := c.GetGroup(context.Background(), "rider stats")
	if err != nil || gv.LatestActive != 0 || len(gv.Versions) != 1 {
		t.Fatal(gv, err)
	}
	if r := p.last(); r.method != http.MethodGet || r.rawPath != "/v1/registry/groups/rider%20stats" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	p.only(200, registered)
	g, err := c.GetGroupVersion(context.Background(), "rider_stats", 1)
	if err != nil || g.Definition.Name != "rider_stats" {
		t.Fatal(g, err)
	}
	if r := p.last(); r.rawPath != "/v1/registry/groups/rider_stats/versions/1" {
		t.Errorf("%s", r.rawPath)
	}
	p.only(200, `{"definition":{"name":"rider_stats","version":1,"entity_type":"rider","features":[{"name":"a","type":"int64"}],"owner":{"team":"p"}},"fingerprint":"f","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T11:00:00Z","retired":true,"retired_at":"2026-11-26T11:00:00Z"}`)
	g, err = c.RetireGroupVersion(context.Background(), "rider_stats", 1)
	if err != nil || !g.Retired || g.RetiredAt.IsZero() {
		t.Fatal(g, err)
	}
	if r := p.last(); r.method != http.MethodPost || r.rawPath != "/v1/registry/groups/rider_stats/versions/1/retire" {
		t.Errorf("%s %s", r.method, r.rawPath)
	}
	for _, v := range []int{0, -1} {
		if _, err := c.GetGroupVersion(context.Background(), "g", v); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("version %d: %v", v, err)
		}
		if _, err := c.RetireGroupVersion(context.Background(), "g", v); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("version %d: %v", v, err)
		}
	}
	if _, err := c.GetGroup(context.Background(), ""); !errors.Is(err, ErrInvalidRequest) {
		t.Error(err)
	}
	p.only(404, `{"code":"NOT_FOUND","message":"unknown feature group 'nope'","request_id":"r"}`)
	if _, err := c.GetGroup(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Error(err)
	}
}

func TestListGroups(t *testing.T) {
	p := newPeer(t).reply(200, `{"groups":[{"name":"rider_stats","entity_type":"rider","kind":"scalar","versions":[1,2],"latest_active":2,"owner":{"team":"pricing"},"tier":2}]}`)
	c := p.client(Options{})
	groups, err := c.ListGroups(context.Background(), ListGroupsArgs{})
	if err != nil || len(groups) != 1 || groups[0].LatestActive != 2 || groups[0].Versions[1] != 2 {
		t.Fatal(groups, err)
	}
	if q := p.last().query; q != "" {
		t.Errorf("no filter: query %q", q)
	}
	if _, err := c.ListGroups(context.Background(), ListGroupsArgs{Query: "fare & rides", EntityType: "rider", Owner: "pricing", Tag: "demo"}); err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(p.last().query)
	if q.Get("q") != "fare & rides" || q.Get("entity_type") != "rider" || q.Get("owner") != "pricing" || q.Get("tag") != "demo" {
		t.Errorf("query %v", q)
	}
}
