// Package dsfeatures is the Go client of dsfeatures, an online feature store:
// read ML feature values by entity key at inference time, write them, erase
// an entity (GDPR), search embeddings, and manage the feature registry.
//
// It has the operations of the Python SDK (dsfeatures.client), speaks the
// daemon's v1 HTTP API in JSON, and uses the standard library only.
//
// # Client
//
// Create one Client per daemon and share it between goroutines; it keeps a
// pool of keep-alive connections. Every field of Options documents its
// default, so Options{} talks to a local `dsfeatures serve`:
//
//	client, err := dsfeatures.NewClient(dsfeatures.Options{
//		URL:   "http://dsfeatures.internal:8080",
//		Token: os.Getenv("DSF_TOKEN"), // sent as "Authorization: Bearer ..."
//	})
//	if err != nil { ... }
//	defer client.Close()
//
// Every call takes a context.Context first. Its deadline bounds the whole
// call, retries included; Options.Timeout bounds each attempt.
//
// # Reading
//
// BatchGet reads many entities, of several entity types and feature groups,
// in one request; Get reads one entity. Feature references are
// "group:feature" (the group's newest active version) or
// "group@version:feature". Values come back in request order with a status
// per value (StatusPresent, StatusNotFound, StatusExpired, StatusDefaulted,
// StatusUnavailable): a missing entity is a status, not an error. Values are
// plain JSON; the typed accessors of Row (Int64, Float64, String, Bool,
// Time, Bytes, Vector, List) convert them, int64 exactly:
//
//	resp, err := client.BatchGet(ctx,
//		map[string][]string{"rider": {"r1", "r2"}},
//		[]string{"rider_stats:trips_7d", "rider_stats:avg_fare"})
//	for _, row := range resp.Rows {
//		trips, err := row.Int64(0) // errors.Is(err, dsfeatures.ErrNoValue) when null
//		...
//	}
//
// WithMetadata adds the event time and written-at time of each value.
//
// # Writing
//
// Write upserts rows (ModeUpsert replaces a row's values); Create only writes
// absent rows and Update merges into existing ones. WriteRow.IfRevision makes
// a row conditional on the stored revision. The daemon validates a whole
// request before writing anything, then answers one WriteResult per row:
// StatusWritten, StatusStale (the stored row has a newer event time) or
// StatusConflict (a condition failed).
//
// Delete removes some groups' rows of some entities; DeleteEntity erases an
// entity everywhere (GDPR). Search finds the nearest neighbours of a vector
// in an embedding group. RegisterGroup, GetGroup, GetGroupVersion,
// ListGroups and RetireGroupVersion manage the registry.
//
// # Errors
//
// A failed call returns an *APIError carrying the daemon's Code, HTTP Status,
// Message and RequestID. Use errors.Is with the sentinels to decide what to do:
//
//	switch {
//	case errors.Is(err, dsfeatures.ErrUnknownFeature): // fix the reference
//	case errors.Is(err, dsfeatures.ErrConflict):       // bump the group version
//	case errors.Is(err, dsfeatures.ErrUnavailable):    // retried already; degrade
//	}
//
// ErrUnknownFeature and ErrPayloadTooLarge are also ErrInvalidRequest. A call
// whose context deadline passes returns an error that matches both
// ErrDeadlineExceeded and context.DeadlineExceeded.
//
// # Retries
//
// A call is retried, up to Options.MaxRetries times with exponential backoff
// and jitter, when it failed for a transient reason: an answer 429, 502, 503
// or 504, a dropped connection, or an attempt timeout. Only calls that are
// safe to repeat are: reads, searches, deletes, erasures, registry calls, and
// writes that are conditional (mode create or update, or every row has an
// EventTime or an IfRevision), whose replay is at worst STALE or CONFLICT. A
// plain upsert without event times is never sent twice, except when the
// connection could not even be opened. Errors such as 400, 404 or 409 are
// never retried, and neither are Health and Ready.
package dsfeatures
