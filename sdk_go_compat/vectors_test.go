package dsfeatures

// The shared wire vectors of ../tests/vectors (see its README.md), decoded with
// this package's types and compared with their "expect"; request vectors are
// also built with this package's request builders. tests/unit/test_vectors.py
// checks the same files against the daemon's own types.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const vectorsDir = "../tests/vectors"

type vector struct {
	Name         string          `json:"name"`
	Kind         string          `json:"kind"`
	Description  string          `json:"description"`
	HTTPStatus   int             `json:"http_status"`
	DaemonOutput *bool           `json:"daemon_output"`
	JSON         json.RawMessage `json:"json"`
	Expect       json.RawMessage `json:"expect"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no vectors under %s", vectorsDir)
	}
	sort.Strings(paths)
	out := make([]vector, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if v.Name != strings.TrimSuffix(filepath.Base(p), ".json") {
			t.Fatalf("%s: name %q is not the file's stem", p, v.Name)
		}
		out = append(out, v)
	}
	return out
}

// feastResponse is the answer of POST /get-online-features, which the SDK
// does not call; decoded here to keep the vector honest on the Go side too.
type feastResponse struct {
	Metadata struct {
		FeatureNames []string `json:"feature_names"`
	} `json:"metadata"`
	Results []struct {
		Values          []any       `json:"values"`
		Statuses        []string    `json:"statuses"`
		EventTimestamps []time.Time `json:"event_timestamps"`
	} `json:"results"`
}

// sentinels are the error classes named by error vectors.
var sentinels = map[string]error{
	"invalid_request":   ErrInvalidRequest,
	"unknown_feature":   ErrUnknownFeature,
	"not_found":         ErrNotFound,
	"conflict":          ErrConflict,
	"payload_too_large": ErrPayloadTooLarge,
	"unauthorized":      ErrUnauthorized,
	"forbidden":         ErrForbidden,
	"unavailable":       ErrUnavailable,
	"deadline_exceeded": ErrDeadlineExceeded,
}

// vectorChecks maps each kind to its check.
var vectorChecks = map[string]func(t *testing.T, v vector){
	"get_request":       checkGetRequest,
	"get_response":      checkGetResponse,
	"write_request":     checkWriteRequest,
	"write_response":    decodeAndMatch[struct{ Results []WriteResult }],
	"delete_request":    checkDeleteRequest,
	"delete_response":   decodeAndMatch[struct{ Deleted int }],
	"erase_response":    decodeAndMatch[EraseResult],
	"search_request":    checkSearchRequest,
	"search_response":   decodeAndMatch[struct{ Results []SearchHit }],
	"error":             checkError,
	"register_request":  checkRegisterRequest,
	"register_response": decodeAndMatch[RegisterResult],
	"registered_group":  decodeAndMatch[RegisteredGroup],
	"group_versions":    decodeAndMatch[GroupVersions],
	"group_list":        decodeAndMatch[struct{ Groups []GroupSummary }],
	"feast_response":    decodeAndMatch[feastResponse],
}

func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		v := v
		check, ok := vectorChecks[v.Kind]
		if !ok {
			t.Errorf("%s: unknown kind %q", v.Name, v.Kind)
			continue
		}
		seen[v.Kind] = true
		t.Run(v.Name, func(t *testing.T) { check(t, v) })
	}
	for kind := range vectorChecks {
		if !seen[kind] {
			t.Errorf("no vector of kind %q", kind)
		}
	}
}

func TestVectorsCoverEveryStatusAndSentinel(t *testing.T) {
	statuses := map[Status]bool{}
	writeStatuses := map[WriteStatus]bool{}
	classes := map[string]bool{}
	for _, v := range loadVectors(t) {
		switch v.Kind {
		case "get_response":
			var r GetResponse
			mustDecode(t, v.JSON, &r)
			for _, row := range r.Rows {
				for _, s := range row.Statuses {
					statuses[s] = true
				}
			}
		case "write_response":
			var r struct{ Results []WriteResult }
			mustDecode(t, v.JSON, &r)
			for _, res := range r.Results {
				writeStatuses[res.Status] = true
			}
		case "error":
			var e struct{ Is []string }
			mustDecode(t, v.Expect, &e)
			for _, c := range e.Is {
				classes[c] = true
			}
		}
	}
	for _, s := range []Status{StatusPresent, StatusNotFound, StatusExpired, StatusDefaulted, StatusUnavailable} {
		if !statuses[s] {
			t.Errorf("no vector with status %s", s)
		}
	}
	for _, s := range []WriteStatus{StatusWritten, StatusStale, StatusConflict} {
		if !writeStatuses[s] {
			t.Errorf("no vector with write status %s", s)
		}
	}
	for name := range sentinels {
		if !classes[name] {
			t.Errorf("no error vector of class %s", name)
		}
	}
}

// --- checks ----------------------------------------------------------------------------

func decodeAndMatch[T any](t *testing.T, v vector) {
	var got T
	mustDecode(t, v.JSON, &got)
	expectMatch(t, v.Expect, &got)
}

func checkGetRequest(t *testing.T, v vector) {
	var e struct {
		Entities        map[string][]string `json:"entities"`
		Features        []string            `json:"features"`
		IncludeMetadata bool                `json:"include_metadata"`
	}
	mustDecode(t, v.Expect, &e)
	var opts []ReadOption
	if e.IncludeMetadata {
		opts = append(opts, WithMetadata())
	}
	cl, err := batchGetCall(e.Entities, e.Features, readOpts(opts))
	if err != nil {
		t.Fatal(err)
	}
	expectSameDocument(t, cl.body, v.JSON)
	var got getRequest
	mustDecode(t, v.JSON, &got)
	expectMatch(t, v.Expect, &got)
}

func checkGetResponse(t *testing.T, v vector) {
	var got GetResponse
	mustDecode(t, v.JSON, &got)
	var e struct {
		Features []string `json:"features"`
		Rows     []struct {
			Values []map[string]any `json:"values"`
		} `json:"rows"`
	}
	mustDecode(t, v.Expect, &e)
	var plain struct {
		Rows []map[string]any `json:"rows"`
	}
	mustDecode(t, v.Expect, &plain)
	if !reflect.DeepEqual(got.Features, e.Features) {
		t.Fatalf("features: got %v, want %v", got.Features, e.Features)
	}
	if len(got.Rows) != len(e.Rows) {
		t.Fatalf("got %d rows, want %d", len(got.Rows), len(e.Rows))
	}
	for i := range got.Rows {
		row := &got.Rows[i]
		want := plain.Rows[i]
		delete(want, "values")
		if msg := mismatch(want, normalise(reflect.ValueOf(row)), fmt.Sprintf("$.rows[%d]", i)); msg != "" {
			t.Error(msg)
		}
		if row.Len() != len(e.Rows[i].Values) || len(row.Statuses) != row.Len() {
			t.Fatalf("row %d: %d values and %d statuses, want %d", i, row.Len(), len(row.Statuses), len(e.Rows[i].Values))
		}
		for j, typed := range e.Rows[i].Values {
			if msg := typedMismatch(row, j, typed); msg != "" {
				t.Errorf("$.rows[%d].values[%d]: %s", i, j, msg)
			}
		}
	}
}

// typedMismatch checks value j of row with the accessor its typed
// expectation names.
func typedMismatch(row *Row, j int, typed map[string]any) string {
	if len(typed) != 1 {
		return fmt.Sprintf("a typed expectation has one key, got %v", typed)
	}
	for kind, want := range typed {
		switch kind {
		case "null":
			if row.Value(j) != nil {
				return fmt.Sprintf("want null, got %v", row.Value(j))
			}
			if _, err := row.Int64(j); !errors.Is(err, ErrNoValue) {
				return fmt.Sprintf("Int64 of a null: want ErrNoValue, got %v", err)
			}
		case "int64":
			n, err := strconv.ParseInt(string(want.(json.Number)), 10, 64)
			if err != nil {
				return err.Error()
			}
			if got, err := row.Int64(j); err != nil || got != n {
				return fmt.Sprintf("Int64: want %d, got %d (%v)", n, got, err)
			}
		case "float64":
			f, _ := strconv.ParseFloat(string(want.(json.Number)), 64)
			if got, err := row.Float64(j); err != nil || got != f {
				return fmt.Sprintf("Float64: want %v, got %v (%v)", f, got, err)
			}
		case "string":
			if got, err := row.String(j); err != nil || got != want.(string) {
				return fmt.Sprintf("String: want %q, got %q (%v)", want, got, err)
			}
		case "bool":
			if got, err := row.Bool(j); err != nil || got != want.(bool) {
				return fmt.Sprintf("Bool: want %v, got %v (%v)", want, got, err)
			}
		case "timestamp":
			ts, err := time.Parse(time.RFC3339Nano, want.(string))
			if err != nil {
				return err.Error()
			}
			if got, err := row.Time(j); err != nil || !got.Equal(ts) {
				return fmt.Sprintf("Time: want %v, got %v (%v)", ts, got, err)
			}
		case "bytes":
			b, err := base64.StdEncoding.DecodeString(want.(string))
			if err != nil {
				return err.Error()
			}
			if got, err := row.Bytes(j); err != nil || !bytes.Equal(got, b) {
				return fmt.Sprintf("Bytes: want %v, got %v (%v)", b, got, err)
			}
		case "vector":
			items := want.([]any)
			got, err := row.Vector(j)
			if err != nil || len(got) != len(items) {
				return fmt.Sprintf("Vector: want %v, got %v (%v)", items, got, err)
			}
			for k, x := range items {
				f, _ := strconv.ParseFloat(string(x.(json.Number)), 64)
				if got[k] != float32(f) {
					return fmt.Sprintf("Vector item %d: want %v, got %v", k, float32(f), got[k])
				}
			}
		case "list":
			got, err := row.List(j)
			if err != nil {
				return err.Error()
			}
			if msg := mismatch(want, normalise(reflect.ValueOf(got)), "list"); msg != "" {
				return msg
			}
		default:
			return fmt.Sprintf("unknown typed expectation %q", kind)
		}
	}
	return ""
}

func checkWriteRequest(t *testing.T, v vector) {
	var e struct {
		Mode      WriteMode       `json:"mode"`
		Lane      Lane            `json:"lane"`
		Writer    string          `json:"writer"`
		Retryable bool            `json:"retryable"`
		Rows      json.RawMessage `json:"rows"`
	}
	mustDecode(t, v.Expect, &e)
	var got writeRequest
	mustDecode(t, v.JSON, &got)
	var want map[string]any
	mustDecode(t, v.Expect, &want)
	delete(want, "retryable")
	if msg := mismatch(want, normalise(reflect.ValueOf(&got)), "$"); msg != "" {
		t.Error(msg)
	}
	cl, err := writeCall(got.Rows, writeOptions{mode: e.Mode, lane: e.Lane, writer: e.Writer})
	if err != nil {
		t.Fatal(err)
	}
	expectSameDocument(t, cl.body, v.JSON)
	if cl.idempotent != e.Retryable {
		t.Errorf("retry safety: got %v, want %v", cl.idempotent, e.Retryable)
	}
}

func checkDeleteRequest(t *testing.T, v vector) {
	var e deleteRequest
	mustDecode(t, v.Expect, &e)
	cl, err := deleteCall(e.EntityType, e.EntityIDs, e.Groups)
	if err != nil {
		t.Fatal(err)
	}
	expectSameDocument(t, cl.body, v.JSON)
	decodeAndMatch[deleteRequest](t, v)
}

func checkSearchRequest(t *testing.T, v vector) {
	var e searchRequest
	mustDecode(t, v.Expect, &e)
	cl, err := searchCall(SearchArgs{
		Group: e.Group, Vector: e.Vector, K: e.K, Feature: e.Feature, Filter: e.Filter, MinScore: e.MinScore,
	})
	if err != nil {
		t.Fatal(err)
	}
	expectSameDocument(t, cl.body, v.JSON)
	decodeAndMatch[searchRequest](t, v)
}

func checkRegisterRequest(t *testing.T, v vector) {
	var g FeatureGroup
	mustDecode(t, v.JSON, &g)
	cl, err := registerCall(g)
	if err != nil {
		t.Fatal(err)
	}
	expectSameDocument(t, cl.body, v.JSON)
	expectMatch(t, v.Expect, &g)
}

func checkError(t *testing.T, v vector) {
	var e struct {
		Code      string   `json:"code"`
		Message   string   `json:"message"`
		RequestID string   `json:"request_id"`
		Is        []string `json:"is"`
		Retryable bool     `json:"retryable"`
	}
	mustDecode(t, v.Expect, &e)
	err := errorFromResponse(&call{method: "POST", path: "/v1/features/get"}, v.HTTPStatus, "", v.JSON)
	if err.Code != e.Code || err.Message != e.Message || err.RequestID != e.RequestID || err.Status != v.HTTPStatus {
		t.Errorf("got %+v, want code %q message %q request id %q status %d", err, e.Code, e.Message, e.RequestID, v.HTTPStatus)
	}
	var asErr *APIError
	if !errors.As(error(err), &asErr) {
		t.Error("errors.As(*APIError) failed")
	}
	for name, sentinel := range sentinels {
		want := false
		for _, c := range e.Is {
			want = want || c == name
		}
		if got := errors.Is(err, sentinel); got != want {
			t.Errorf("errors.Is(err, %v) = %v, want %v", sentinel, got, want)
		}
	}
	if err.Retryable() != e.Retryable || shouldRetry(err, true) != e.Retryable {
		t.Errorf("retryable: got %v, want %v", err.Retryable(), e.Retryable)
	}
	if shouldRetry(err, false) {
		t.Error("an answered error is never retried for a call that is not idempotent")
	}
}

// --- comparing ---------------------------------------------------------------------------

func mustDecode(t *testing.T, data []byte, out any) {
	t.Helper()
	if err := decodeJSON(data, out); err != nil {
		t.Fatalf("decode %T: %v", out, err)
	}
}

func expectMatch(t *testing.T, expect json.RawMessage, got any) {
	t.Helper()
	var want any
	mustDecode(t, expect, &want)
	if msg := mismatch(want, normalise(reflect.ValueOf(got)), "$"); msg != "" {
		t.Error(msg)
	}
}

// expectSameDocument checks that the SDK's request body is the vector's
// document, a null member being the same as an absent one.
func expectSameDocument(t *testing.T, body, doc []byte) {
	t.Helper()
	var a, b any
	mustDecode(t, body, &a)
	mustDecode(t, doc, &b)
	if !sameJSON(stripNulls(a), stripNulls(b)) {
		t.Errorf("the SDK sends\n  %s\nthe vector is\n  %s", body, compact(doc))
	}
}

func compact(doc []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return string(doc)
	}
	return b.String()
}

func stripNulls(x any) any {
	switch v := x.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, item := range v {
			if item != nil {
				out[k] = stripNulls(item)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = stripNulls(item)
		}
		return out
	}
	return x
}

func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && sameNumber(x, y)
	}
	return a == b
}

func sameNumber(a, b json.Number) bool {
	if ai, err := strconv.ParseInt(string(a), 10, 64); err == nil {
		if bi, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return ai == bi
		}
	}
	af, err1 := strconv.ParseFloat(string(a), 64)
	bf, err2 := strconv.ParseFloat(string(b), 64)
	return err1 == nil && err2 == nil && af == bf
}

var (
	timeType       = reflect.TypeOf(time.Time{})
	jsonNumberType = reflect.TypeOf(json.Number(""))
	timestampRE    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)
)

// normalise turns a decoded value into plain JSON-like values: structs become
// maps with every field under its JSON name (omitempty or not), times RFC
// 3339 strings (nil when zero), numbers json.Number.
func normalise(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return normalise(v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			ts := v.Interface().(time.Time)
			if ts.IsZero() {
				return nil
			}
			return ts.UTC().Format(time.RFC3339Nano)
		}
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = toSnake(f.Name)
			}
			out[name] = normalise(v.Field(i))
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = normalise(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = normalise(v.MapIndex(k))
		}
		return out
	case reflect.String:
		if v.Type() == jsonNumberType {
			return json.Number(v.String())
		}
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return json.Number(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return json.Number(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32:
		return json.Number(strconv.FormatFloat(v.Float(), 'g', -1, 32))
	case reflect.Float64:
		return json.Number(strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return fmt.Sprintf("<%s>", v.Type())
}

// toSnake names untagged fields of anonymous test structs as encoding/json
// would match them case-insensitively ("Results" -> "results").
func toSnake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mismatch says where actual differs from expect, or "" (rules in
// tests/vectors/README.md).
func mismatch(expect, actual any, path string) string {
	switch e := expect.(type) {
	case nil:
		if isZero(actual) {
			return ""
		}
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: expected an object, got %v", path, actual)
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			got, ok := a[k]
			if !ok {
				return fmt.Sprintf("%s.%s: missing", path, k)
			}
			if msg := mismatch(e[k], got, path+"."+k); msg != "" {
				return msg
			}
		}
		return ""
	case []any:
		a, ok := actual.([]any)
		if actual == nil && len(e) == 0 {
			return ""
		}
		if !ok || len(a) != len(e) {
			return fmt.Sprintf("%s: expected %v, got %v", path, e, actual)
		}
		for i := range e {
			if msg := mismatch(e[i], a[i], fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
		return ""
	case json.Number:
		if a, ok := actual.(json.Number); ok && sameNumber(e, a) {
			return ""
		}
	case bool:
		if a, ok := actual.(bool); ok && a == e {
			return ""
		}
	case string:
		if a, ok := actual.(string); ok && (a == e || sameInstant(e, a)) {
			return ""
		}
	}
	return fmt.Sprintf("%s: expected %v, got %v", path, expect, actual)
}

// isZero: Go has no null for plain fields, so null in expect also matches
// the zero value.
func isZero(x any) bool {
	switch v := x.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		return err == nil && f == 0 && !math.Signbit(f)
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func sameInstant(a, b string) bool {
	if !timestampRE.MatchString(a) || !timestampRE.MatchString(b) {
		return false
	}
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && ta.Equal(tb)
}

func TestMismatchRules(t *testing.T) {
	var doc any
	if err := decodeJSON([]byte(`{"a": 1, "t": "2026-11-26T10:00:00.5Z", "l": [], "n": null}`), &doc); err != nil {
		t.Fatal(err)
	}
	actual := map[string]any{
		"a": json.Number("1.0"), "t": "2026-11-26T10:00:00.500000Z", "l": nil, "n": json.Number("0"), "extra": true,
	}
	if msg := mismatch(doc, actual, "$"); msg != "" {
		t.Error(msg)
	}
	for _, bad := range []map[string]any{
		{"a": json.Number("2"), "t": "2026-11-26T10:00:00.5Z", "l": nil, "n": nil},
		{"a": json.Number("1"), "t": "2026-11-26T10:00:01Z", "l": nil, "n": nil},
		{"a": json.Number("1"), "t": "2026-11-26T10:00:00.5Z", "l": []any{true}, "n": nil},
		{"a": json.Number("1"), "t": "2026-11-26T10:00:00.5Z", "l": nil, "n": "x"},
		{"a": true, "t": "2026-11-26T10:00:00.5Z", "l": nil, "n": nil},
		{"t": "2026-11-26T10:00:00.5Z", "l": nil, "n": nil},
	} {
		if mismatch(doc, bad, "$") == "" {
			t.Errorf("%v should not match", bad)
		}
	}
	if !sameJSON(stripNulls(map[string]any{"a": nil, "b": json.Number("1e3")}), map[string]any{"b": json.Number("1000")}) {
		t.Error("null members and number spelling should not matter")
	}
}
