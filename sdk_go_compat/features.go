package dsfeatures

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// ReadOption changes a read (Get, BatchGet).
type ReadOption func(*readOptions)

type readOptions struct{ metadata bool }

// WithMetadata also returns, per value, the event time and written-at time of
// the stored row (Row.EventTime, Row.WriteTime).
func WithMetadata() ReadOption { return func(o *readOptions) { o.metadata = true } }

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// getRequest is the body of POST /v1/features/get.
type getRequest struct {
	Entities        map[string][]string `json:"entities"`
	Features        []string            `json:"features"`
	IncludeMetadata bool                `json:"include_metadata"`
}

// Get reads features of one entity (GET /v1/features/{entity_type}/{entity_id}).
//
// features are references "group:feature" (the group's newest active
// version) or "group@version:feature"; none reads every feature of the newest
// active version of every group of entityType, in the daemon's order.
//
// A missing value is a status of the returned row, not an error. Errors:
// ErrInvalidRequest for a bad reference or id (ErrUnknownFeature for an
// unknown one), ErrUnavailable or ErrDeadlineExceeded after retries.
func (c *Client) Get(ctx context.Context, entityType, entityID string, features []string, opts ...ReadOption) (*Row, error) {
	cl, err := getCall(entityType, entityID, features, readOpts(opts))
	if err != nil {
		return nil, err
	}
	var resp GetResponse
	if err := c.do(ctx, cl, &resp); err != nil {
		return nil, err
	}
	if len(resp.Rows) == 0 {
		return nil, &APIError{Code: CodeBadResponse, Status: http.StatusOK, Message: "a single get answered no row"}
	}
	return &resp.Rows[0], nil
}

func getCall(entityType, entityID string, features []string, o readOptions) (*call, error) {
	et, err := segment("entity_type", entityType)
	if err != nil {
		return nil, err
	}
	id, err := segment("entity_id", entityID)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if len(features) > 0 {
		q.Set("features", strings.Join(features, ","))
	}
	if o.metadata {
		q.Set("include_metadata", "true")
	}
	return &call{method: http.MethodGet, path: "/v1/features/" + et + "/" + id, query: q, idempotent: true}, nil
}

// BatchGet reads features of many entities in one request
// (POST /v1/features/get).
//
// entities maps each entity type to ids; the lists have equal lengths and row
// i of the answer is made of the i-th id of every list, so that features of
// several entity types (a rider and a driver) come back in one row. features
// are references "group:feature" or "group@version:feature", of any groups
// keyed by the given entity types.
//
// Rows come back in request order with a status per value (a missing value
// is not an error). Errors: ErrInvalidRequest for a bad reference, id or
// unequal lists (ErrUnknownFeature for an unknown reference),
// ErrPayloadTooLarge, ErrUnavailable or ErrDeadlineExceeded after retries.
func (c *Client) BatchGet(ctx context.Context, entities map[string][]string, features []string, opts ...ReadOption) (*GetResponse, error) {
	cl, err := batchGetCall(entities, features, readOpts(opts))
	if err != nil {
		return nil, err
	}
	var resp GetResponse
	if err := c.do(ctx, cl, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func batchGetCall(entities map[string][]string, features []string, o readOptions) (*call, error) {
	body, err := encodeJSON(getRequest{Entities: entities, Features: features, IncludeMetadata: o.metadata})
	if err != nil {
		return nil, err
	}
	return &call{method: http.MethodPost, path: "/v1/features/get", body: body, idempotent: true}, nil
}

// WriteOption changes a write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	mode   WriteMode
	lane   Lane
	writer string
}

// WithMode sets the write mode (default ModeUpsert).
func WithMode(m WriteMode) WriteOption { return func(o *writeOptions) { o.mode = m } }

// WithLane sets the lane recorded in the row metadata (default LaneSDK).
func WithLane(l Lane) WriteOption { return func(o *writeOptions) { o.lane = l } }

// WithWriter sets who wrote, recorded in the row metadata (default: the
// daemon's name for the caller).
func WithWriter(name string) WriteOption { return func(o *writeOptions) { o.writer = name } }

// writeRequest is the body of POST /v1/features/write.
type writeRequest struct {
	Rows   []WriteRow `json:"rows"`
	Mode   WriteMode  `json:"mode"`
	Lane   Lane       `json:"lane"`
	Writer string     `json:"writer"`
}

// Write writes rows (POST /v1/features/write). The daemon validates the whole
// request first (one bad row refuses all, naming the row and field), then
// applies each row and answers one result per row, in order: WRITTEN, STALE
// (an older event time than stored) or CONFLICT (a mode or IfRevision
// condition failed).
//
// Retries: a plain upsert is retried after a failure only when every row has
// an EventTime or an IfRevision, so that a replay is harmless; create, update
// and conditional writes are always retried (a replay fails its condition).
// A write that cannot be retried fails with ErrUnavailable or
// ErrDeadlineExceeded and may have been applied.
//
// No rows gives no results without a request.
func (c *Client) Write(ctx context.Context, rows []WriteRow, opts ...WriteOption) ([]WriteResult, error) {
	o := writeOptions{mode: ModeUpsert, lane: LaneSDK}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	cl, err := writeCall(rows, o)
	if err != nil || cl == nil {
		return nil, err
	}
	var resp struct {
		Results []WriteResult `json:"results"`
	}
	if err := c.do(ctx, cl, &resp); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(rows) {
		return nil, &APIError{
			Code:    CodeBadResponse,
			Status:  http.StatusOK,
			Message: "the write answered a different number of results than rows",
		}
	}
	return resp.Results, nil
}

// Create writes rows that do not exist yet (CONFLICT for those that do): Write
// with ModeCreate.
func (c *Client) Create(ctx context.Context, rows []WriteRow, opts ...WriteOption) ([]WriteResult, error) {
	return c.Write(ctx, rows, withMode(opts, ModeCreate)...)
}

// Update merges values into existing rows (CONFLICT for absent ones): Write
// with ModeUpdate.
func (c *Client) Update(ctx context.Context, rows []WriteRow, opts ...WriteOption) ([]WriteResult, error) {
	return c.Write(ctx, rows, withMode(opts, ModeUpdate)...)
}

// withMode appends a mode option without writing into the caller's slice.
func withMode(opts []WriteOption, m WriteMode) []WriteOption {
	out := make([]WriteOption, 0, len(opts)+1)
	return append(append(out, opts...), WithMode(m))
}

// writeCall builds the write call, or nil when there is no row to write.
func writeCall(rows []WriteRow, o writeOptions) (*call, error) {
	switch o.mode {
	case ModeUpsert, ModeCreate, ModeUpdate:
	default:
		return nil, invalidArg("mode: expected upsert, create or update, got %q", o.mode)
	}
	switch o.lane {
	case LaneSDK, LaneBatch, LaneStream:
	default:
		return nil, invalidArg("lane: expected sdk, batch or stream, got %q", o.lane)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	body, err := encodeJSON(writeRequest{Rows: rows, Mode: o.mode, Lane: o.lane, Writer: o.writer})
	if err != nil {
		return nil, err
	}
	return &call{
		method:     http.MethodPost,
		path:       "/v1/features/write",
		body:       body,
		idempotent: writeIdempotent(rows, o.mode),
	}, nil
}

// writeIdempotent reports whether a write may be sent again after it may have
// reached the daemon. A replayed create/update/IfRevision write fails its
// condition instead of applying twice, and a replayed upsert with an event
// time is at worst STALE; a plain upsert stamped with the daemon's clock
// would apply twice.
func writeIdempotent(rows []WriteRow, mode WriteMode) bool {
	if mode != ModeUpsert {
		return true
	}
	for i := range rows {
		if !rows[i].conditional() {
			return false
		}
	}
	return true
}

// deleteRequest is the body of POST /v1/features/delete.
type deleteRequest struct {
	EntityType string   `json:"entity_type"`
	EntityIDs  []string `json:"entity_ids"`
	Groups     []string `json:"groups"`
}

// Delete deletes the rows of some groups for some entities
// (POST /v1/features/delete) and returns how many stored rows were deleted.
// groups are names (every version) or "name@version" (one version).
//
// Errors: ErrInvalidRequest (ErrUnknownFeature for an unknown group),
// ErrUnavailable or ErrDeadlineExceeded after retries.
func (c *Client) Delete(ctx context.Context, entityType string, entityIDs, groups []string) (int, error) {
	cl, err := deleteCall(entityType, entityIDs, groups)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Deleted int `json:"deleted"`
	}
	if err := c.do(ctx, cl, &resp); err != nil {
		return 0, err
	}
	return resp.Deleted, nil
}

func deleteCall(entityType string, entityIDs, groups []string) (*call, error) {
	body, err := encodeJSON(deleteRequest{EntityType: entityType, EntityIDs: entityIDs, Groups: groups})
	if err != nil {
		return nil, err
	}
	return &call{method: http.MethodPost, path: "/v1/features/delete", body: body, idempotent: true}, nil
}

// DeleteEntity erases everything stored for one entity, in every group,
// version and store (DELETE /v1/entities/{entity_type}/{entity_id}): the
// GDPR erasure. The daemon keeps an audit record of it.
//
// Errors: ErrInvalidRequest for a bad id, ErrUnavailable or
// ErrDeadlineExceeded after retries (repeat the erasure).
func (c *Client) DeleteEntity(ctx context.Context, entityType, entityID string) (*EraseResult, error) {
	cl, err := deleteEntityCall(entityType, entityID)
	if err != nil {
		return nil, err
	}
	var resp EraseResult
	if err := c.do(ctx, cl, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func deleteEntityCall(entityType, entityID string) (*call, error) {
	et, err := segment("entity_type", entityType)
	if err != nil {
		return nil, err
	}
	id, err := segment("entity_id", entityID)
	if err != nil {
		return nil, err
	}
	return &call{method: http.MethodDelete, path: "/v1/entities/" + et + "/" + id, idempotent: true}, nil
}

// SearchArgs are the arguments of Search.
type SearchArgs struct {
	// Group is the embedding group, optionally with a version ("rider_emb@2").
	Group string
	// Vector is the query vector; its length is the group's dimension.
	Vector []float32
	// K is how many hits at most, 1 to 1000. Default: 10.
	K int
	// Feature names the vector feature; may be empty when the group has one.
	Feature string
	// Filter keeps entities whose scalar feature equals a value, or is one of
	// a list of values ([]any, []string...).
	Filter map[string]any
	// MinScore, when not nil, drops hits scoring below it; see Score.
	MinScore *float64
}

// Score returns a pointer to f, for SearchArgs.MinScore.
func Score(f float64) *float64 { return &f }

// searchRequest is the body of POST /v1/embeddings/search.
type searchRequest struct {
	Group    string         `json:"group"`
	Vector   []float32      `json:"vector"`
	K        int            `json:"k"`
	Feature  string         `json:"feature"`
	Filter   map[string]any `json:"filter,omitempty"`
	MinScore *float64       `json:"min_score,omitempty"`
}

// Search finds the K nearest neighbours of a vector within an embedding group
// (POST /v1/embeddings/search); hits come best first.
//
// Errors: ErrInvalidRequest for a group that is not an embedding group, a
// wrong dimension or a bad filter (ErrUnknownFeature for an unknown group),
// ErrUnavailable or ErrDeadlineExceeded after retries.
func (c *Client) Search(ctx context.Context, args SearchArgs) ([]SearchHit, error) {
	cl, err := searchCall(args)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Results []SearchHit `json:"results"`
	}
	if err := c.do(ctx, cl, &resp); err != nil {
		return nil, err
	}
	return resp.Results, nil
}

func searchCall(args SearchArgs) (*call, error) {
	k := args.K
	if k == 0 {
		k = 10
	}
	body, err := encodeJSON(searchRequest{
		Group:    args.Group,
		Vector:   args.Vector,
		K:        k,
		Feature:  args.Feature,
		Filter:   args.Filter,
		MinScore: args.MinScore,
	})
	if err != nil {
		return nil, err
	}
	return &call{method: http.MethodPost, path: "/v1/embeddings/search", body: body, idempotent: true}, nil
}
