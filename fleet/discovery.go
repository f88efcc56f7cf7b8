package fleet

import (
	"encoding/json"
	"fmt"
	"strings"
)

// discoveryNodeID is the device's name in Home Assistant topics, which allow
// only letters, digits, _ and -.
func discoveryNodeID(deviceID string) string {
	var b strings.Builder
	b.WriteString("onair_")
	for _, r := range deviceID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// discovery returns the Home Assistant device-based discovery message: one
// retained config with the device, the origin and every entity. Entities
// read the retained status topic, so they show values as soon as Home
// Assistant subscribes; all go unavailable with the Last Will.
func (c *Client) discovery() (topic string, payload []byte, err error) {
	doc := c.opt.Status()
	node := discoveryNodeID(c.topics.deviceID)
	id := c.topics.deviceID
	firmware := doc.Firmware.Version
	if firmware == "" {
		firmware = "unknown"
	}
	model := doc.Board.Model
	if model == "" {
		model = "OnAir box"
	}
	device := map[string]any{
		"identifiers":  []string{node},
		"name":         "OnAir " + id,
		"manufacturer": "OnAir",
		"model":        model,
		"sw_version":   firmware,
	}
	if doc.Board.Serial != "" {
		device["serial_number"] = doc.Board.Serial
	}
	// Every entity carries its own topics: the shared-option inheritance of
	// device discovery differs between Home Assistant releases.
	entity := func(platform, key, name string, extra map[string]any) map[string]any {
		e := map[string]any{
			"platform":              platform,
			"name":                  name,
			"unique_id":             node + "_" + key,
			"availability_topic":    c.topics.availability,
			"payload_available":     "online",
			"payload_not_available": "offline",
		}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	sensor := func(key, name, template string, extra map[string]any) map[string]any {
		m := map[string]any{"state_topic": c.topics.status, "value_template": template}
		for k, v := range extra {
			m[k] = v
		}
		return entity("sensor", key, name, m)
	}
	components := map[string]any{
		"live": entity("binary_sensor", "live", "Live", map[string]any{
			"state_topic":    c.topics.status,
			"value_template": "{{ 'ON' if value_json.state == 'live' else 'OFF' }}",
			"device_class":   "running",
		}),
		"state": sensor("state", "State", "{{ value_json.state }}", map[string]any{
			"device_class": "enum",
			"options":      []string{"idle", "going_live", "live", "stopping", "error"},
		}),
		"viewers": sensor("viewers", "Viewers", "{{ value_json.viewers }}", map[string]any{
			"state_class": "measurement", "unit_of_measurement": "viewers", "icon": "mdi:account-group",
		}),
		"fps": sensor("fps", "Frame rate", "{{ value_json.video.fps }}", map[string]any{
			"state_class": "measurement", "unit_of_measurement": "fps", "entity_category": "diagnostic",
		}),
		"bitrate": sensor("bitrate", "Video bitrate", "{{ value_json.video.bitrate_kbps }}", map[string]any{
			"state_class": "measurement", "device_class": "data_rate", "unit_of_measurement": "kbit/s",
		}),
		"temperature": sensor("temperature", "Temperature", "{{ value_json.board.temperature_c }}", map[string]any{
			"state_class": "measurement", "device_class": "temperature", "unit_of_measurement": "°C",
			"entity_category": "diagnostic",
		}),
		"audio_level": sensor("audio_level", "Audio level", "{{ value_json.audio.peak_dbfs }}", map[string]any{
			"state_class": "measurement", "unit_of_measurement": "dBFS", "icon": "mdi:microphone",
		}),
		// Buttons send a fixed payload without id: never de-duplicated.
		"go_live": entity("button", "go_live", "Go live", map[string]any{
			"command_topic": c.topics.own + "/cmd/live", "payload_press": "{}", "icon": "mdi:broadcast",
		}),
		"stop": entity("button", "stop", "Stop", map[string]any{
			"command_topic": c.topics.own + "/cmd/stop", "payload_press": "{}", "icon": "mdi:stop",
		}),
		// The box has no update server to ask: latest is what it runs, and
		// an install started with the ota command shows as in progress.
		"firmware": entity("update", "firmware", "Firmware", map[string]any{
			"device_class":    "firmware",
			"state_topic":     c.topics.status,
			"value_template":  "{{ {'installed_version': value_json.firmware.version, 'latest_version': value_json.firmware.version, 'in_progress': value_json.firmware.ota_state == 'installing'} | to_json }}",
			"entity_category": "diagnostic",
		}),
	}
	msg := map[string]any{
		"dev":  device,
		"o":    map[string]any{"name": "onair", "sw_version": firmware, "support_url": "https://github.com/onair/onair"},
		"cmps": components,
		"qos":  1,
	}
	payload, err = json.Marshal(msg)
	if err != nil {
		return "", nil, fmt.Errorf("encode discovery: %w", err)
	}
	return "homeassistant/device/" + node + "/config", payload, nil
}
