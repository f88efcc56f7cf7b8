package fleet

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/config"
	"github.com/onair/onair/status"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares payload (indented for reading) with testdata/name.
func golden(t *testing.T, name string, payload []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, payload, "", "  "); err != nil {
		t.Fatalf("%s is not JSON: %v", name, err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, pretty.Bytes(), want)
	}
}

// offlineClient is a client that is never run: enough to build payloads.
func offlineClient(t *testing.T) *Client {
	t.Helper()
	clock := newFakeClock()
	clock.Advance(1500 * time.Millisecond)
	c, err := New(Options{
		Config:   config.MQTT{Broker: "tcp://127.0.0.1:1883", BaseTopic: "onair", TelemetryInterval: config.Duration(10 * time.Second)},
		DeviceID: "box1", Status: sampleStatus, Clock: clock, BootID: "4f1c2a9be07d3e55",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGoldenPayloads(t *testing.T) {
	c := offlineClient(t)
	doc, err := json.Marshal(sampleStatus())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json", doc)

	events := map[string]map[string]any{
		"event_went_live.json":    {"broadcast_id": "20261125T101500Z-1", "title": "Keynote"},
		"event_stopped.json":      {"broadcast_id": "20261125T101500Z-1"},
		"event_button.json":       {"press": "short"},
		"event_error.json":        {"error": "no video from the encoder within 3s"},
		"event_ota_progress.json": {"percent": 40, "phase": "installing", "version": "v0.3.0"},
	}
	types := map[string]string{
		"event_went_live.json": EventWentLive, "event_stopped.json": EventStopped, "event_button.json": EventButton,
		"event_error.json": EventError, "event_ota_progress.json": EventOTAProgress,
	}
	names := make([]string, 0, len(events))
	for n := range events {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.Event(types[n], events[n]); err != nil {
			t.Fatal(err)
		}
		m, _ := c.outbox.head()
		c.outbox.pop(m)
		if m.topic != "onair/box1/event" {
			t.Fatalf("event topic %s", m.topic)
		}
		golden(t, n, m.payload)
	}

	c.reply(Reply{ID: "42", Cmd: "live", OK: true})
	c.reply(Reply{ID: "43", Cmd: "comment_remove", Error: "comment_remove: not available in this firmware"})
	for _, n := range []string{"reply_ok.json", "reply_error.json"} {
		m, _ := c.outbox.head()
		c.outbox.pop(m)
		if m.topic != "onair/box1/reply" {
			t.Fatalf("reply topic %s", m.topic)
		}
		golden(t, n, m.payload)
	}

	c.opt.Telemetry = func() Telemetry {
		return Telemetry{FPS: 30, BitrateKbps: 2380.5, FramesDropped: 12, Viewers: 12, CPUPercent: 23.5, RSSBytes: 48 << 20}
	}
	tel, err := json.Marshal(c.telemetry())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "telemetry.json", tel)

	topic, disc, err := c.discovery()
	if err != nil {
		t.Fatal(err)
	}
	if topic != "homeassistant/device/onair_box1/config" {
		t.Fatalf("discovery topic %s", topic)
	}
	golden(t, "discovery.json", disc)
}

// haOptions are the options Home Assistant documents for each MQTT
// platform we use (www.home-assistant.io/integrations/<platform>.mqtt),
// limited to those this package may send. A typo in a key would be
// silently ignored by Home Assistant; here it fails.
var haOptions = map[string][]string{
	"common":        {"platform", "name", "unique_id", "availability_topic", "payload_available", "payload_not_available", "icon", "entity_category", "device_class"},
	"sensor":        {"state_topic", "value_template", "state_class", "unit_of_measurement", "options"},
	"binary_sensor": {"state_topic", "value_template"},
	"button":        {"command_topic", "payload_press"},
	"update":        {"state_topic", "value_template"},
}

var haDeviceClasses = map[string][]string{
	"sensor":        {"enum", "data_rate", "temperature"},
	"binary_sensor": {"running"},
	"update":        {"firmware"},
}

func TestDiscoveryFollowsHASchema(t *testing.T) {
	_, payload, err := offlineClient(t).discovery()
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Dev  map[string]any            `json:"dev"`
		O    map[string]any            `json:"o"`
		Cmps map[string]map[string]any `json:"cmps"`
		QoS  int                       `json:"qos"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		t.Fatal(err)
	}
	for k := range msg.Dev {
		if !slices.Contains([]string{"identifiers", "name", "manufacturer", "model", "sw_version", "serial_number"}, k) {
			t.Errorf("device key %q is not a documented device option", k)
		}
	}
	if msg.O["name"] == nil {
		t.Error("origin without name (required by device discovery)")
	}
	platforms := map[string]int{}
	for id, cmp := range msg.Cmps {
		p, _ := cmp["platform"].(string)
		platforms[p]++
		allowed := append(slices.Clone(haOptions["common"]), haOptions[p]...)
		if haOptions[p] == nil {
			t.Errorf("%s: platform %q not expected", id, p)
		}
		for k := range cmp {
			if !slices.Contains(allowed, k) {
				t.Errorf("%s (%s): option %q is not documented for the platform", id, p, k)
			}
		}
		if dc, ok := cmp["device_class"].(string); ok && !slices.Contains(haDeviceClasses[p], dc) {
			t.Errorf("%s: device class %q not valid for %s", id, dc, p)
		}
		if cmp["unique_id"] == nil || cmp["availability_topic"] != "onair/box1/availability" {
			t.Errorf("%s: no unique_id or availability", id)
		}
		if vt, ok := cmp["value_template"].(string); ok && !strings.HasPrefix(vt, "{{") {
			t.Errorf("%s: value_template %q", id, vt)
		}
	}
	want := map[string]int{"binary_sensor": 1, "sensor": 6, "button": 2, "update": 1}
	if !reflect.DeepEqual(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
}

// TestStatusSchemaMatchesDocument: docs/status.schema.json names exactly the
// fields status.Document has, with matching JSON types, at every level.
func TestStatusSchemaMatchesDocument(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "status.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	doc := sampleStatus()
	raw, _ := json.Marshal(doc)
	var value any
	_ = json.Unmarshal(raw, &value)
	defs, _ := schema["$defs"].(map[string]any)
	checkSchema(t, "status", defs, schema, value)
	idle := status.Document{State: "idle"}
	raw, _ = json.Marshal(idle)
	_ = json.Unmarshal(raw, &value)
	checkSchema(t, "idle status", defs, schema, value)
}

// checkSchema is a small JSON Schema check: type, required, properties,
// additionalProperties false and enum; enough for the status document.
func checkSchema(t *testing.T, path string, root, schema map[string]any, value any) {
	t.Helper()
	types := []string{}
	switch tp := schema["type"].(type) {
	case string:
		types = append(types, tp)
	case []any:
		for _, x := range tp {
			types = append(types, x.(string))
		}
	}
	kind := "null"
	switch v := value.(type) {
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	case string:
		kind = "string"
	case bool:
		kind = "boolean"
	case float64:
		kind = "number"
		if v == float64(int64(v)) && (slices.Contains(types, "integer") && !slices.Contains(types, "number")) {
			kind = "integer"
		}
	}
	if len(types) > 0 && !slices.Contains(types, kind) {
		t.Errorf("%s: %s, schema wants %v", path, kind, types)
		return
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, value) {
		t.Errorf("%s: %v not in enum %v", path, value, enum)
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return
	}
	props, _ := schema["properties"].(map[string]any)
	for k, p := range props {
		if ref, ok := p.(map[string]any)["$ref"].(string); ok {
			props[k] = root[strings.TrimPrefix(ref, "#/$defs/")]
		}
	}
	for _, r := range schema["required"].([]any) {
		if _, ok := obj[r.(string)]; !ok {
			t.Errorf("%s: required %q missing from the document", path, r)
		}
	}
	for k := range props {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s: schema property %q is not in the document", path, k)
		}
	}
	for k, v := range obj {
		sub, ok := props[k].(map[string]any)
		if !ok {
			t.Errorf("%s: document field %q is not in the schema", path, k)
			continue
		}
		checkSchema(t, path+"."+k, root, sub, v)
	}
	if schema["additionalProperties"] != false {
		t.Errorf("%s: schema should refuse additional properties", path)
	}
}
