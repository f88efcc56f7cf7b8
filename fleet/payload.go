package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// haStatusTopic is where Home Assistant announces itself (birth message).
const haStatusTopic = "homeassistant/status"

// topics are the box's topic names.
type topics struct {
	own                                           string // <base>/<id>
	availability, status, telemetry, event, reply string
	commandFilters                                []string
	deviceID                                      string
}

func newTopics(base, deviceID string, groups []string) topics {
	own := base + "/" + deviceID
	t := topics{
		own:          own,
		availability: own + "/availability", status: own + "/status", telemetry: own + "/telemetry",
		event: own + "/event", reply: own + "/reply", deviceID: deviceID,
		commandFilters: []string{own + "/cmd/+", base + "/fleet/cmd/+"},
	}
	for _, g := range groups {
		t.commandFilters = append(t.commandFilters, base+"/group/"+g+"/cmd/+")
	}
	return t
}

// Event types of the contract; other types may be added.
const (
	EventWentLive    = "went_live"
	EventStopped     = "stopped"
	EventButton      = "button"
	EventError       = "error"
	EventOTAProgress = "ota_progress"
	// EventOTAResult says how an update ended: installed (rebooting into its
	// trial), committed, rolled back or failed, with the reason.
	EventOTAResult = "ota_result"
)

// tsLayout is RFC 3339 with milliseconds, always UTC.
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

// Event publishes an event (QoS 1, not retained) with its type, the time,
// this run's boot id and the next sequence number, plus the given fields
// (which must not use those four names). Events wait in the outbox while
// the broker is away and arrive in order; with Options.OutboxDir Event
// returns once the event is on disk. Safe for concurrent use, also before
// Run.
func (c *Client) Event(typ string, fields map[string]any) error {
	if typ == "" {
		return errors.New("fleet: event without a type")
	}
	doc := make(map[string]any, len(fields)+4)
	for k, v := range fields {
		switch k {
		case "type", "ts", "boot", "seq":
			return fmt.Errorf("fleet: event %s: field %q is set by the event itself", typ, k)
		}
		doc[k] = v
	}
	doc["type"] = typ
	doc["boot"] = c.bootID
	// The sequence number is taken and the event queued under one lock, so
	// the outbox holds events in seq order.
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	doc["seq"] = c.seq + 1
	doc["ts"] = c.clock.Now().UTC().Format(tsLayout)
	payload, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("fleet: encode event %s: %w", typ, err)
	}
	c.seq++
	if err := c.outbox.push(message{topic: c.topics.event, payload: payload}); err != nil {
		return fmt.Errorf("event %s queued in memory only: %w", typ, err)
	}
	return nil
}

// Telemetry are the counters of the telemetry message.
type Telemetry struct {
	FPS           float64 `json:"fps"`
	BitrateKbps   float64 `json:"bitrate_kbps"`
	FramesDropped uint64  `json:"frames_dropped"`
	Viewers       int     `json:"viewers"`
	// CPUPercent is the daemon's CPU use since the last message (100 = one core).
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   uint64  `json:"rss_bytes"`
}

type telemetryPayload struct {
	TS string `json:"ts"`
	Telemetry
	OutboxQueued  int    `json:"outbox_queued"`
	OutboxDropped uint64 `json:"outbox_dropped"`
}

func (c *Client) telemetry() telemetryPayload {
	var t Telemetry
	if c.opt.Telemetry != nil {
		t = c.opt.Telemetry()
	} else {
		d := c.opt.Status()
		t = Telemetry{FPS: d.Video.FPS, BitrateKbps: d.Video.BitrateKbps, Viewers: d.Viewers}
	}
	now := c.clock.Now()
	if t.CPUPercent == 0 {
		if cpu, ok := processCPUSeconds(); ok {
			if elapsed := now.Sub(c.lastCPUAt).Seconds(); !c.lastCPUAt.IsZero() && elapsed > 0 {
				t.CPUPercent = float64(int64((cpu-c.lastCPUSeconds)/elapsed*1000+0.5)) / 10
			}
			c.lastCPUSeconds, c.lastCPUAt = cpu, now
		}
	}
	if t.RSSBytes == 0 {
		t.RSSBytes = processRSSBytes()
	}
	queued, dropped := c.outbox.stats()
	return telemetryPayload{TS: now.UTC().Format(tsLayout), Telemetry: t, OutboxQueued: queued, OutboxDropped: dropped}
}

// processCPUSeconds reads user+system time from /proc/self/stat. Linux
// reports it in USER_HZ ticks, 100 a second on every architecture we run on.
func processCPUSeconds() (float64, bool) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name may contain spaces; fields are counted after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / 100, true
}

func processRSSBytes() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
