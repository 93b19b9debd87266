package dsfeatures

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Status is the per-value status of a read.
type Status string

// Read statuses. A missing entity or value is a status, never an error.
const (
	// StatusPresent: the stored value.
	StatusPresent Status = "PRESENT"
	// StatusNotFound: no value stored and the feature has no default; the value is null.
	StatusNotFound Status = "NOT_FOUND"
	// StatusExpired: the stored row is older than the group's TTL; the value is null.
	StatusExpired Status = "EXPIRED"
	// StatusDefaulted: no value stored; the value is the feature's default.
	StatusDefaulted Status = "DEFAULTED"
	// StatusUnavailable: the store holding the value failed or ran out of
	// time; the value is null and the rest of the answer is still served.
	StatusUnavailable Status = "UNAVAILABLE"
)

// WriteStatus is the outcome of one written row.
type WriteStatus string

// Write statuses.
const (
	// StatusWritten: the row was applied.
	StatusWritten WriteStatus = "WRITTEN"
	// StatusStale: the stored row has a newer event time; not applied.
	StatusStale WriteStatus = "STALE"
	// StatusConflict: a create, update or IfRevision condition failed; not applied.
	StatusConflict WriteStatus = "CONFLICT"
)

// WriteMode says how a write treats the stored row.
type WriteMode string

// Write modes.
const (
	// ModeUpsert replaces the row's values (the default).
	ModeUpsert WriteMode = "upsert"
	// ModeCreate only writes a row that does not exist yet (CONFLICT otherwise).
	ModeCreate WriteMode = "create"
	// ModeUpdate merges values into an existing row (CONFLICT if absent): a
	// partial update.
	ModeUpdate WriteMode = "update"
)

// Lane is the write lane recorded in the row metadata.
type Lane string

// Lanes.
const (
	// LaneSDK is the lane of direct SDK calls (the default).
	LaneSDK Lane = "sdk"
	// LaneBatch is the lane of batch jobs.
	LaneBatch Lane = "batch"
	// LaneStream is the lane of the streaming ingest service.
	LaneStream Lane = "stream"
)

// GetResponse is the answer of a BatchGet.
type GetResponse struct {
	// Features are the feature references of the request, in order; Values
	// and Statuses of every row follow this order.
	Features []string `json:"features"`
	// Rows hold one row per entity index of the request, in order.
	Rows []Row `json:"rows"`
}

// Index returns the position of a feature reference in Features (as it was
// written in the request), or -1.
func (r *GetResponse) Index(feature string) int {
	for i, f := range r.Features {
		if f == feature {
			return i
		}
	}
	return -1
}

// Row holds the values of one entity index, in the order of the request's
// features. Values are plain JSON decoded to any (numbers as json.Number, so
// int64 values stay exact); the typed accessors convert them.
type Row struct {
	// Entity maps each entity type of the request to this row's id.
	Entity map[string]string `json:"entity"`
	// Values are the values, null (nil) where the status says there is none.
	Values []any `json:"values"`
	// Statuses are the per-value statuses.
	Statuses []Status `json:"statuses"`
	// EventTimes are the event times of the stored rows (zero where no row
	// is stored); nil unless metadata was asked for.
	EventTimes []time.Time `json:"event_times,omitempty"`
	// WrittenAt are the times the stored rows were written (zero where no
	// row is stored); nil unless metadata was asked for.
	WrittenAt []time.Time `json:"written_at,omitempty"`
}

// Len is the number of values.
func (r *Row) Len() int { return len(r.Values) }

// Value returns value i as decoded (nil if null or out of range).
func (r *Row) Value(i int) any {
	if i < 0 || i >= len(r.Values) {
		return nil
	}
	return r.Values[i]
}

// Status returns the status of value i ("" if out of range).
func (r *Row) Status(i int) Status {
	if i < 0 || i >= len(r.Statuses) {
		return ""
	}
	return r.Statuses[i]
}

// Present reports whether value i is a stored value (status PRESENT).
func (r *Row) Present(i int) bool { return r.Status(i) == StatusPresent }

// EventTime returns the event time of the stored row behind value i, and
// whether there is one (metadata was asked for and a row is stored).
func (r *Row) EventTime(i int) (time.Time, bool) { return timeAt(r.EventTimes, i) }

// WriteTime returns when the stored row behind value i was written, and
// whether there is such a row (metadata was asked for and a row is stored).
func (r *Row) WriteTime(i int) (time.Time, bool) { return timeAt(r.WrittenAt, i) }

func timeAt(ts []time.Time, i int) (time.Time, bool) {
	if i < 0 || i >= len(ts) || ts[i].IsZero() {
		return time.Time{}, false
	}
	return ts[i], true
}

// value returns value i, or an error for an index out of range or a null
// value (wrapping ErrNoValue).
func (r *Row) value(i int) (any, error) {
	if i < 0 || i >= len(r.Values) {
		return nil, fmt.Errorf("dsfeatures: no value %d: the row has %d values", i, len(r.Values))
	}
	v := r.Values[i]
	if v == nil {
		return nil, fmt.Errorf("%w: value %d has status %s", ErrNoValue, i, r.Status(i))
	}
	return v, nil
}

func typeError(i int, v any, want string) error {
	return fmt.Errorf("dsfeatures: value %d is %s, not %s", i, jsonKind(v), want)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case json.Number, float64, float32, int, int64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// Int64 returns value i of an int64 feature, exactly.
func (r *Row) Int64(i int) (int64, error) {
	v, err := r.value(i)
	if err != nil {
		return 0, err
	}
	return toInt64(i, v)
}

func toInt64(i int, v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("dsfeatures: value %d (%s) is not an int64", i, x)
		}
		return n, nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	}
	return 0, typeError(i, v, "an int64")
}

// Float64 returns value i of a numeric feature.
func (r *Row) Float64(i int) (float64, error) {
	v, err := r.value(i)
	if err != nil {
		return 0, err
	}
	return toFloat64(i, v)
}

func toFloat64(i int, v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, fmt.Errorf("dsfeatures: value %d (%s) is not a float64", i, x)
		}
		return f, nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	}
	return 0, typeError(i, v, "a float64")
}

// String returns value i of a string feature.
func (r *Row) String(i int) (string, error) {
	v, err := r.value(i)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", typeError(i, v, "a string")
}

// Bool returns value i of a bool feature.
func (r *Row) Bool(i int) (bool, error) {
	v, err := r.value(i)
	if err != nil {
		return false, err
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, typeError(i, v, "a bool")
}

// Time returns value i of a timestamp feature (RFC 3339 on the wire).
func (r *Row) Time(i int) (time.Time, error) {
	v, err := r.value(i)
	if err != nil {
		return time.Time{}, err
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, typeError(i, v, "an RFC 3339 timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("dsfeatures: value %d (%q) is not an RFC 3339 timestamp", i, s)
	}
	return t, nil
}

// Bytes returns value i of a bytes feature (base64 on the wire).
func (r *Row) Bytes(i int) ([]byte, error) {
	v, err := r.value(i)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, typeError(i, v, "base64 bytes")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("dsfeatures: value %d is not base64: %v", i, err)
	}
	return b, nil
}

// Vector returns value i of a vector (embedding) feature.
func (r *Row) Vector(i int) ([]float32, error) {
	items, err := r.List(i)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(items))
	for j, x := range items {
		f, err := toFloat64(i, x)
		if err != nil || math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("dsfeatures: value %d item %d is not a float32", i, j)
		}
		out[j] = float32(f)
	}
	return out, nil
}

// List returns value i of a list feature, items decoded as for Value.
func (r *Row) List(i int) ([]any, error) {
	v, err := r.value(i)
	if err != nil {
		return nil, err
	}
	if l, ok := v.([]any); ok {
		return l, nil
	}
	return nil, typeError(i, v, "a list")
}

// WriteRow is one row to write: values of some features of one group for one
// entity.
type WriteRow struct {
	// Group is the feature group.
	Group string `json:"group"`
	// Version is the group version; 0 means its newest active version.
	Version int `json:"version,omitempty"`
	// EntityID is the entity id.
	EntityID string `json:"entity_id"`
	// EntityType, when set, is checked against the group's entity type.
	EntityType string `json:"entity_type,omitempty"`
	// Values maps feature names to values: bool, integers, floats, string,
	// []byte (sent as base64), time.Time (sent in UTC), slices of those, or
	// []float32 for a vector. A nil value clears the feature.
	Values map[string]any `json:"values"`
	// EventTime is when the values were true; zero means the time of the
	// write. A row with an older event time than the stored one is STALE.
	EventTime time.Time `json:"event_time"`
	// IfRevision, when not nil, makes the write conditional on the stored
	// row's revision (0: the row must be absent); see Revision.
	IfRevision *int64 `json:"if_revision,omitempty"`
}

// Revision returns a pointer to n, for WriteRow.IfRevision.
func Revision(n int64) *int64 { return &n }

// conditional reports whether replaying the row is harmless: at worst STALE
// (an event time) or CONFLICT (a revision condition).
func (r *WriteRow) conditional() bool { return !r.EventTime.IsZero() || r.IfRevision != nil }

type wireWriteRow struct {
	Group      string         `json:"group"`
	Version    int            `json:"version,omitempty"`
	EntityID   string         `json:"entity_id"`
	EntityType string         `json:"entity_type,omitempty"`
	Values     map[string]any `json:"values"`
	EventTime  string         `json:"event_time,omitempty"`
	IfRevision *int64         `json:"if_revision,omitempty"`
}

// MarshalJSON encodes the row as the daemon reads it (a zero EventTime is
// left out; times are RFC 3339 in UTC with microseconds).
func (r WriteRow) MarshalJSON() ([]byte, error) {
	w := wireWriteRow{
		Group:      r.Group,
		Version:    r.Version,
		EntityID:   r.EntityID,
		EntityType: r.EntityType,
		Values:     wireValues(r.Values),
		IfRevision: r.IfRevision,
	}
	if !r.EventTime.IsZero() {
		w.EventTime = formatTime(r.EventTime)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// wireValues returns values with time.Time values (and lists of them) in the
// daemon's form, RFC 3339 in UTC; the map is copied only when it has some.
func wireValues(values map[string]any) map[string]any {
	var out map[string]any
	for k, v := range values {
		var conv any
		switch x := v.(type) {
		case time.Time:
			conv = formatTime(x)
		case *time.Time:
			if x == nil {
				continue
			}
			conv = formatTime(*x)
		case []time.Time:
			items := make([]string, len(x))
			for i, t := range x {
				items[i] = formatTime(t)
			}
			conv = items
		default:
			continue
		}
		if out == nil {
			out = make(map[string]any, len(values))
			for k2, v2 := range values {
				out[k2] = v2
			}
		}
		out[k] = conv
	}
	if out == nil {
		return values
	}
	return out
}

// formatTime is RFC 3339 in UTC with a "Z", with six fractional digits when
// the time has a fraction (the daemon's precision is a microsecond).
func formatTime(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000Z07:00")
}

// WriteResult is the outcome of one written row.
type WriteResult struct {
	// Status is WRITTEN, STALE or CONFLICT.
	Status WriteStatus `json:"status"`
	// Revision is the row's revision after the call (the stored one when the
	// row was not applied, 0 if there is none).
	Revision int64 `json:"revision"`
	// Message says why a row was not applied.
	Message string `json:"message,omitempty"`
}

// Written reports whether the row was applied.
func (r WriteResult) Written() bool { return r.Status == StatusWritten }

// SearchHit is one neighbour found by Search.
type SearchHit struct {
	// EntityID is the neighbour's entity id.
	EntityID string `json:"entity_id"`
	// Score is higher for nearer neighbours.
	Score float64 `json:"score"`
}

// EraseResult is the answer of DeleteEntity (GDPR erasure).
type EraseResult struct {
	// EntityType is the erased entity's type.
	EntityType string `json:"entity_type"`
	// EntityID is the erased entity's id.
	EntityID string `json:"entity_id"`
	// Deleted is how many stored rows were erased, in every group and store.
	Deleted int `json:"deleted"`
}
