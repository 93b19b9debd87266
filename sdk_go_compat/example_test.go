package dsfeatures_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	dsfeatures "github.com/dsfeatures/dsfeatures/sdk_go_compat"
)

// demoDaemon stands in for `dsfeatures serve --demo` so that the examples run
// without one; it answers as the daemon does.
func demoDaemon() *httptest.Server {
	answers := map[string]string{
		"POST /v1/features/get": `{"features":["rider_stats:trips_7d","rider_stats:avg_fare"],"rows":[
			{"entity":{"rider":"r1"},"values":[9,27.32],"statuses":["PRESENT","PRESENT"]},
			{"entity":{"rider":"r404"},"values":[0,null],"statuses":["DEFAULTED","NOT_FOUND"]}]}`,
		"GET /v1/features/rider/r1": `{"features":["rider_stats:trips_7d"],"rows":[{"entity":{"rider":"r1"},"values":[9],
			"statuses":["PRESENT"],"event_times":["2026-11-01T00:00:00Z"],"written_at":["2026-11-26T19:18:16.043055Z"]}]}`,
		"POST /v1/features/write":      `{"results":[{"status":"WRITTEN","revision":2},{"status":"STALE","revision":1,"message":"older event time than the stored row"}]}`,
		"DELETE /v1/entities/rider/r1": `{"entity_type":"rider","entity_id":"r1","deleted":2}`,
		"POST /v1/embeddings/search":   `{"results":[{"entity_id":"r21","score":0.838},{"entity_id":"r14","score":0.792}]}`,
		"POST /v1/registry/groups":     `{"status":"created","group":{"definition":{"name":"rider_stats","version":2,"entity_type":"rider","features":[{"name":"trips_7d","type":"int64","default":0}],"owner":{"team":"pricing"},"lineage":{}},"fingerprint":"9c1e","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"},"similar":[]}`,
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(body), "rider_stats:nope") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"code":"UNKNOWN_FEATURE","message":"features[0]: group rider_stats@1 has no feature 'nope'","request_id":"9af43e3c"}`)
			return
		}
		answer, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code":"NOT_FOUND","message":"no route","request_id":"x"}`)
			return
		}
		_, _ = io.WriteString(w, answer)
	}))
}

func ExampleNewClient() {
	client, err := dsfeatures.NewClient(dsfeatures.Options{
		URL:     "http://127.0.0.1:8080",
		Token:   "", // when set, sent as "Authorization: Bearer <Token>"
		Timeout: 200 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	o := client.Options()
	fmt.Println(o.URL, o.Timeout, o.MaxRetries, o.UserAgent)
	// Output: http://127.0.0.1:8080 200ms 3 dsfeatures-go/0.1.0
}

func ExampleClient_BatchGet() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, err := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	resp, err := client.BatchGet(ctx,
		map[string][]string{"rider": {"r1", "r404"}},
		[]string{"rider_stats:trips_7d", "rider_stats:avg_fare"})
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range resp.Rows {
		trips, _ := row.Int64(0)
		fare, err := row.Float64(1)
		if errors.Is(err, dsfeatures.ErrNoValue) {
			fmt.Printf("%s trips=%d (%s) fare=none (%s)\n", row.Entity["rider"], trips, row.Status(0), row.Status(1))
			continue
		}
		fmt.Printf("%s trips=%d fare=%.2f\n", row.Entity["rider"], trips, fare)
	}
	// Output:
	// r1 trips=9 fare=27.32
	// r404 trips=0 (DEFAULTED) fare=none (NOT_FOUND)
}

func ExampleClient_Get() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	row, err := client.Get(context.Background(), "rider", "r1",
		[]string{"rider_stats:trips_7d"}, dsfeatures.WithMetadata())
	if err != nil {
		log.Fatal(err)
	}
	trips, _ := row.Int64(0)
	at, _ := row.EventTime(0)
	fmt.Println(trips, row.Status(0), at.Format(time.RFC3339))
	// Output: 9 PRESENT 2026-11-01T00:00:00Z
}

func ExampleClient_Write() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	// Rows with an event time are safe to retry: a replay is at worst STALE.
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	results, err := client.Write(context.Background(), []dsfeatures.WriteRow{
		{Group: "rider_stats", EntityID: "r1", EventTime: at,
			Values: map[string]any{"trips_7d": 3, "avg_fare": 12.5}},
		{Group: "rider_stats", EntityID: "r2", EventTime: at.Add(-time.Hour),
			Values: map[string]any{"trips_7d": 1}},
	}, dsfeatures.WithWriter("pricing-job"))
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		if r.Written() {
			fmt.Println(r.Status, "revision", r.Revision)
		} else {
			fmt.Println(r.Status, "-", r.Message)
		}
	}
	// Output:
	// WRITTEN revision 2
	// STALE - older event time than the stored row
}

func ExampleClient_DeleteEntity() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	// GDPR erasure: every group, version and store.
	res, err := client.DeleteEntity(context.Background(), "rider", "r1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("erased %s %s: %d rows\n", res.EntityType, res.EntityID, res.Deleted)
	// Output: erased rider r1: 2 rows
}

func ExampleClient_Search() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	hits, err := client.Search(context.Background(), dsfeatures.SearchArgs{
		Group:  "rider_emb",
		Vector: []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8},
		K:      2,
		Filter: map[string]any{"home_city": "sf"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits {
		fmt.Printf("%s %.3f\n", h.EntityID, h.Score)
	}
	// Output:
	// r21 0.838
	// r14 0.792
}

func ExampleClient_RegisterGroup() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	res, err := client.RegisterGroup(context.Background(), dsfeatures.FeatureGroup{
		Name:       "rider_stats",
		Version:    2,
		EntityType: "rider",
		Features:   []dsfeatures.Feature{{Name: "trips_7d", Type: "int64", Default: 0}},
		Owner:      dsfeatures.Owner{Team: "pricing"},
	})
	if errors.Is(err, dsfeatures.ErrConflict) {
		log.Fatal("version 2 holds another definition: bump the version")
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Group.Definition.Name, res.Group.Definition.Version, res.Group.Definition.Kind)
	// Output: created rider_stats 2 scalar
}

func ExampleAPIError() {
	daemon := demoDaemon()
	defer daemon.Close()
	client, _ := dsfeatures.NewClient(dsfeatures.Options{URL: daemon.URL})
	defer client.Close()

	_, err := client.BatchGet(context.Background(),
		map[string][]string{"rider": {"r1"}}, []string{"rider_stats:nope"})
	var apiErr *dsfeatures.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	fmt.Println(errors.Is(err, dsfeatures.ErrUnknownFeature), errors.Is(err, dsfeatures.ErrInvalidRequest),
		errors.Is(err, dsfeatures.ErrUnavailable))
	// Output:
	// 400 UNKNOWN_FEATURE
	// true true false
}
