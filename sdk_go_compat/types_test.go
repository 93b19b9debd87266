package dsfeatures

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func decodeRow(t *testing.T, doc string) *Row {
	t.Helper()
	var r Row
	if err := decodeJSON([]byte(doc), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestRowAccessors(t *testing.T) {
	r := decodeRow(t, `{"entity":{"rider":"r1"},
		"values":[9223372036854775807, 12.5, "sf", true, "2024-02-29T12:30:00.25Z", "iVBORw0KGgo=", [0.5, -1e-3], ["en","es"], null, 3],
		"statuses":["PRESENT","PRESENT","PRESENT","PRESENT","PRESENT","PRESENT","PRESENT","PRESENT","EXPIRED","DEFAULTED"]}`)
	if n, err := r.Int64(0); err != nil || n != 9223372036854775807 {
		t.Errorf("Int64: %d %v", n, err)
	}
	if f, err := r.Float64(1); err != nil || f != 12.5 {
		t.Errorf("Float64: %v %v", f, err)
	}
	if f, err := r.Float64(9); err != nil || f != 3 {
		t.Errorf("Float64 of an integer: %v %v", f, err)
	}
	if s, err := r.String(2); err != nil || s != "sf" {
		t.Errorf("String: %v %v", s, err)
	}
	if b, err := r.Bool(3); err != nil || !b {
		t.Errorf("Bool: %v %v", b, err)
	}
	if ts, err := r.Time(4); err != nil || !ts.Equal(time.Date(2024, 2, 29, 12, 30, 0, 250_000_000, time.UTC)) {
		t.Errorf("Time: %v %v", ts, err)
	}
	if b, err := r.Bytes(5); err != nil || string(b[1:4]) != "PNG" {
		t.Errorf("Bytes: %v %v", b, err)
	}
	if v, err := r.Vector(6); err != nil || len(v) != 2 || v[0] != 0.5 || v[1] != -0.001 {
		t.Errorf("Vector: %v %v", v, err)
	}
	if l, err := r.List(7); err != nil || len(l) != 2 || l[1] != "es" {
		t.Errorf("List: %v %v", l, err)
	}
	if _, err := r.Int64(8); !errors.Is(err, ErrNoValue) || !strings.Contains(err.Error(), "EXPIRED") {
		t.Errorf("null: %v", err)
	}
	if r.Status(8) != StatusExpired || r.Present(8) || !r.Present(0) || r.Status(99) != "" || r.Value(-1) != nil {
		t.Error("Status, Present, Value")
	}
	if r.Len() != 10 {
		t.Error("Len")
	}
}

func TestRowAccessorErrors(t *testing.T) {
	r := decodeRow(t, `{"entity":{},"values":[12.5, "x", 1, "not a time", "%%%", [1, "a"], 1e400],"statuses":[]}`)
	for name, err := range map[string]error{
		"Int64 of a float":     func() error { _, err := r.Int64(0); return err }(),
		"Int64 of a string":    func() error { _, err := r.Int64(1); return err }(),
		"String of a number":   func() error { _, err := r.String(2); return err }(),
		"Bool of a number":     func() error { _, err := r.Bool(2); return err }(),
		"Time of a bad string": func() error { _, err := r.Time(3); return err }(),
		"Time of a number":     func() error { _, err := r.Time(2); return err }(),
		"Bytes of bad base64":  func() error { _, err := r.Bytes(4); return err }(),
		"Vector of strings":    func() error { _, err := r.Vector(5); return err }(),
		"List of a number":     func() error { _, err := r.List(2); return err }(),
		"Float64 of a string":  func() error { _, err := r.Float64(1); return err }(),
		"Float64 out of range": func() error { _, err := r.Float64(6); return err }(),
		"out of range":         func() error { _, err := r.Int64(7); return err }(),
		"negative index":       func() error { _, err := r.String(-1); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if errors.Is(err, ErrNoValue) {
			t.Errorf("%s: not ErrNoValue: %v", name, err)
		}
	}
}

func TestRowMetadata(t *testing.T) {
	r := decodeRow(t, `{"entity":{},"values":[1,null],"statuses":["PRESENT","NOT_FOUND"],
		"event_times":["2026-11-26T10:00:00Z",null],"written_at":["2026-11-26T10:00:00.000001Z",null]}`)
	if ts, ok := r.EventTime(0); !ok || ts.Hour() != 10 {
		t.Error("EventTime")
	}
	if ts, ok := r.WriteTime(0); !ok || ts.Nanosecond() != 1000 {
		t.Error("WriteTime")
	}
	if _, ok := r.EventTime(1); ok {
		t.Error("null event time")
	}
	if _, ok := r.WriteTime(5); ok {
		t.Error("out of range")
	}
}

func TestFormatTime(t *testing.T) {
	for in, want := range map[time.Time]string{
		time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC):                           "2026-11-26T10:00:00Z",
		time.Date(2026, 11, 26, 11, 0, 0, 500_000_000, time.FixedZone("", 3600)): "2026-11-26T10:00:00.500000Z",
		time.Date(2026, 11, 26, 10, 0, 0, 999, time.UTC):                         "2026-11-26T10:00:00Z",
		time.Date(2026, 11, 26, 10, 0, 0, 1_999, time.UTC):                       "2026-11-26T10:00:00.000001Z",
	} {
		if got := formatTime(in); got != want {
			t.Errorf("%v: got %s, want %s", in, got, want)
		}
	}
}

func TestWriteRowJSON(t *testing.T) {
	b, err := encodeJSON(WriteRow{Group: "g", EntityID: "e", Values: map[string]any{"f": "<b>"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"group":"g","entity_id":"e","values":{"f":"<b>"}}` {
		t.Errorf("%s", b)
	}
	var back WriteRow
	if err := json.Unmarshal([]byte(`{"group":"g","entity_id":"e","values":{},"event_time":"2026-11-26T10:00:00Z","if_revision":0,"version":null}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.IfRevision == nil || *back.IfRevision != 0 || back.EventTime.IsZero() || back.Version != 0 {
		t.Errorf("%+v", back)
	}
	if !back.conditional() || (&WriteRow{}).conditional() {
		t.Error("conditional")
	}
	if *Revision(7) != 7 || *Score(0.5) != 0.5 {
		t.Error("pointer helpers")
	}
}

func TestWriteResultWritten(t *testing.T) {
	if !(WriteResult{Status: StatusWritten}).Written() || (WriteResult{Status: StatusStale}).Written() {
		t.Error("Written")
	}
}

func TestWriteRowSendsTimeValuesInUTC(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	at := time.Date(2025, 1, 2, 3, 4, 5, 678901234, cet)
	values := map[string]any{"at": at, "ats": []time.Time{at, at.Add(time.Hour)}, "ptr": &at, "n": 1}
	b, err := encodeJSON(WriteRow{Group: "g", EntityID: "e", Values: values})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"group":"g","entity_id":"e","values":{"at":"2025-01-02T02:04:05.678901Z","ats":["2025-01-02T02:04:05.678901Z","2025-01-02T03:04:05.678901Z"],"n":1,"ptr":"2025-01-02T02:04:05.678901Z"}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if _, ok := values["at"].(time.Time); !ok {
		t.Error("the caller's map is left as it is")
	}
}
