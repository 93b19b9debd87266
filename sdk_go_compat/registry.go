package dsfeatures

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GroupKind is the kind of a feature group.
type GroupKind string

// Group kinds.
const (
	// KindScalar groups hold scalar and list features (the default).
	KindScalar GroupKind = "scalar"
	// KindEmbedding groups hold one vector feature (and scalar ones to filter
	// on), searchable with Search.
	KindEmbedding GroupKind = "embedding"
)

// Metric is the distance of a vector feature.
type Metric string

// Vector metrics.
const (
	MetricCosine Metric = "cosine"
	MetricL2     Metric = "l2"
	MetricDot    Metric = "dot"
)

// Feature is one feature of a group.
type Feature struct {
	// Name is the feature name (lower case, digits, underscores).
	Name string `json:"name"`
	// Type is bool, int64, float64, string, bytes, timestamp, list<T> of
	// those, or vector (float32, with Dimension and Metric).
	Type string `json:"type"`
	// Description says what the feature means.
	Description string `json:"description,omitempty"`
	// Default is served (status DEFAULTED) when an entity has no value; nil
	// means none.
	Default any `json:"default,omitempty"`
	// Dimension is the length of a vector feature.
	Dimension int `json:"dimension,omitempty"`
	// Metric is the distance of a vector feature.
	Metric Metric `json:"metric,omitempty"`
}

// Owner is who owns a group: a team and how to reach it.
type Owner struct {
	Team    string `json:"team"`
	Contact string `json:"contact,omitempty"`
}

// Lineage says where a group's values come from.
type Lineage struct {
	Sources        []string `json:"sources,omitempty"`
	UpstreamGroups []string `json:"upstream_groups,omitempty"`
	SQLFingerprint string   `json:"sql_fingerprint,omitempty"`
}

// Carryover keeps serving a batch value for MaxDays after a later run
// produced no row for it.
type Carryover struct {
	MaxDays int `json:"max_days"`
}

// Rollup says how values of a finer period aggregate into a coarser one.
type Rollup struct {
	// SourcePeriod and TargetPeriod are hour, day, week or month.
	SourcePeriod string `json:"source_period"`
	TargetPeriod string `json:"target_period"`
	// Aggregations maps features to sum, mean, min, max, last or count.
	Aggregations map[string]string `json:"aggregations,omitempty"`
}

// FeatureGroup is the definition of one version of a feature group. Zero
// optional fields take the daemon's defaults (kind scalar, tier 3, no TTL).
type FeatureGroup struct {
	Name       string    `json:"name"`
	Version    int       `json:"version"`
	EntityType string    `json:"entity_type"`
	Features   []Feature `json:"features"`
	Owner      Owner     `json:"owner"`
	Kind       GroupKind `json:"kind,omitempty"`
	// Tier is the urgency tier, 1 (most urgent) to 4.
	Tier int `json:"tier,omitempty"`
	// TTLSeconds: older values are served as EXPIRED; 0 never expires them.
	TTLSeconds  int64      `json:"ttl_seconds,omitempty"`
	Carryover   *Carryover `json:"carryover,omitempty"`
	Rollup      *Rollup    `json:"rollup,omitempty"`
	Lineage     *Lineage   `json:"lineage,omitempty"`
	Tags        []string   `json:"tags,omitempty"`
	Description string     `json:"description,omitempty"`
	// JoinKey is the entity key name of the Feast-compatible endpoint
	// (default: the entity type).
	JoinKey string `json:"join_key,omitempty"`
}

// UnmarshalJSON decodes a definition and fills in the daemon's defaults
// for the fields it leaves out of its answers (kind scalar, tier 3), so that
// a decoded definition reads as the daemon understands it. Default values
// stay json.Number.
func (g *FeatureGroup) UnmarshalJSON(data []byte) error {
	type plain FeatureGroup // without this method
	p := plain{Kind: KindScalar, Tier: 3}
	if err := decodeJSON(data, &p); err != nil {
		return err
	}
	*g = FeatureGroup(p)
	return nil
}

// RegisteredGroup is a group version as the registry stores it.
type RegisteredGroup struct {
	Definition FeatureGroup `json:"definition"`
	// Fingerprint identifies the definition's behaviour.
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Retired versions are no longer read or written.
	Retired bool `json:"retired,omitempty"`
	// RetiredAt is zero unless Retired.
	RetiredAt time.Time `json:"retired_at"`
}

// RegisterStatus is the outcome of RegisterGroup.
type RegisterStatus string

// Register statuses.
const (
	// RegisterCreated: a new group version (HTTP 201).
	RegisterCreated RegisterStatus = "created"
	// RegisterUnchanged: the same definition was registered already.
	RegisterUnchanged RegisterStatus = "unchanged"
	// RegisterUpdated: descriptive fields (description, tags...) changed.
	RegisterUpdated RegisterStatus = "updated"
)

// RegisterResult is the answer of RegisterGroup.
type RegisterResult struct {
	Status RegisterStatus  `json:"status"`
	Group  RegisteredGroup `json:"group"`
	// Similar names existing groups that look like duplicates.
	Similar []string `json:"similar"`
}

// GroupVersions is every version of one group, oldest first.
type GroupVersions struct {
	Name string `json:"name"`
	// LatestActive is the newest version that is not retired; 0 if none.
	LatestActive int               `json:"latest_active"`
	Versions     []RegisteredGroup `json:"versions"`
}

// GroupSummary is one line of ListGroups: the newest version's descriptive
// fields.
type GroupSummary struct {
	Name       string    `json:"name"`
	EntityType string    `json:"entity_type"`
	Kind       GroupKind `json:"kind"`
	Versions   []int     `json:"versions"`
	// LatestActive is the newest version that is not retired; 0 if none.
	LatestActive int      `json:"latest_active"`
	Owner        Owner    `json:"owner"`
	Tier         int      `json:"tier"`
	Description  string   `json:"description,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// ListGroupsArgs filter ListGroups; empty fields do not filter.
type ListGroupsArgs struct {
	// Query is free text matched against names, descriptions and features.
	Query string
	// EntityType keeps groups of this entity type.
	EntityType string
	// Owner keeps groups of this owning team.
	Owner string
	// Tag keeps groups with this tag.
	Tag string
}

// RegisterGroup registers one version of a feature group
// (POST /v1/registry/groups). Registering the same definition again is
// harmless (RegisterUnchanged).
//
// Errors: ErrInvalidRequest for a malformed definition (the message names the
// field), ErrConflict when this name and version already hold a different
// behaviour (bump the version), ErrUnavailable after retries.
func (c *Client) RegisterGroup(ctx context.Context, g FeatureGroup) (*RegisterResult, error) {
	cl, err := registerCall(g)
	if err != nil {
		return nil, err
	}
	var out RegisterResult
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func registerCall(g FeatureGroup) (*call, error) {
	body, err := encodeJSON(g)
	if err != nil {
		return nil, err
	}
	return &call{method: http.MethodPost, path: "/v1/registry/groups", body: body, idempotent: true}, nil
}

// GetGroup returns every version of one group (GET /v1/registry/groups/{name}).
// Errors: ErrNotFound for an unknown group.
func (c *Client) GetGroup(ctx context.Context, name string) (*GroupVersions, error) {
	n, err := segment("name", name)
	if err != nil {
		return nil, err
	}
	var out GroupVersions
	cl := &call{method: http.MethodGet, path: "/v1/registry/groups/" + n, idempotent: true}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetGroupVersion returns one version of a group, retired or not
// (GET /v1/registry/groups/{name}/versions/{version}).
// Errors: ErrNotFound for an unknown group or version.
func (c *Client) GetGroupVersion(ctx context.Context, name string, version int) (*RegisteredGroup, error) {
	p, err := versionPath(name, version)
	if err != nil {
		return nil, err
	}
	var out RegisteredGroup
	if err := c.do(ctx, &call{method: http.MethodGet, path: p, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireGroupVersion retires a group version: it stops being read and
// written; retiring twice is harmless
// (POST /v1/registry/groups/{name}/versions/{version}/retire).
// Errors: ErrNotFound for an unknown group or version.
func (c *Client) RetireGroupVersion(ctx context.Context, name string, version int) (*RegisteredGroup, error) {
	p, err := versionPath(name, version)
	if err != nil {
		return nil, err
	}
	var out RegisteredGroup
	if err := c.do(ctx, &call{method: http.MethodPost, path: p + "/retire", idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListGroups lists groups, optionally filtered (GET /v1/registry/groups).
func (c *Client) ListGroups(ctx context.Context, args ListGroupsArgs) ([]GroupSummary, error) {
	var out struct {
		Groups []GroupSummary `json:"groups"`
	}
	if err := c.do(ctx, listGroupsCall(args), &out); err != nil {
		return nil, err
	}
	return out.Groups, nil
}

func listGroupsCall(args ListGroupsArgs) *call {
	q := url.Values{}
	for k, v := range map[string]string{"q": args.Query, "entity_type": args.EntityType, "owner": args.Owner, "tag": args.Tag} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return &call{method: http.MethodGet, path: "/v1/registry/groups", query: q, idempotent: true}
}

func versionPath(name string, version int) (string, error) {
	n, err := segment("name", name)
	if err != nil {
		return "", err
	}
	if version < 1 {
		return "", invalidArg("version: expected an integer >= 1, got %d", version)
	}
	return "/v1/registry/groups/" + n + "/versions/" + strconv.Itoa(version), nil
}
