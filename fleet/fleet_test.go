package fleet

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/status"
)

const (
	availTopic  = "onair/box1/availability"
	statusTopic = "onair/box1/status"
	replyTopic  = "onair/box1/reply"
	eventTopic  = "onair/box1/event"
	telemTopic  = "onair/box1/telemetry"
)

// TestPresence: online retained at connect, readable by a late subscriber;
// a clean stop publishes offline itself.
func TestPresence(t *testing.T) {
	b := startBroker(t, "")
	bx := startBox(t, b.url())
	eventually(t, func() bool { return bx.Stats().Connected }, "connected")
	first := watch(t, b.url(), availTopic)
	if m := first.next(availTopic); m.Payload != "online" || !m.Retained || m.QoS != 1 {
		t.Fatalf("availability = %+v, want retained QoS 1 online", m)
	}
	if err := bx.Close(); err != nil {
		t.Fatal(err)
	}
	if m := first.next(availTopic); m.Payload != "offline" {
		t.Fatalf("after a clean stop availability = %q, want offline", m.Payload)
	}
	late := watch(t, b.url(), availTopic)
	if m := late.next(availTopic); m.Payload != "offline" || !m.Retained {
		t.Fatalf("a late subscriber reads %+v, want retained offline", m)
	}
}

// TestLastWillOnAbruptDisconnect: the TCP connection is cut without a
// DISCONNECT; the broker publishes the Will (offline), and the box comes
// back by itself and says online again.
func TestLastWillOnAbruptDisconnect(t *testing.T) {
	b := startBroker(t, "")
	var cut cuttable
	obs := watch(t, b.url(), availTopic, statusTopic)
	bx := startBox(t, b.url(), func(o *Options) { o.dial = cut.dial })
	if m := obs.next(availTopic); m.Payload != "online" {
		t.Fatalf("availability = %q, want online", m.Payload)
	}
	obs.next(statusTopic)
	cut.cut()
	// The box may be back before the broker sends the Will of the cut
	// connection; then it answers the stale Will with online again.
	obs.until(func(m received) bool { return m.Topic == availTopic && m.Payload == "offline" }, "the Will (offline)")
	if m := obs.next(availTopic); m.Payload != "online" {
		t.Fatalf("after reconnecting availability = %q, want online", m.Payload)
	}
	obs.next(statusTopic) // republished after the reconnect
	if s := bx.Stats(); s.Connects < 2 {
		t.Fatalf("connects = %d, want a reconnect", s.Connects)
	}
	late := watch(t, b.url(), availTopic)
	if m := late.next(availTopic); !m.Retained || m.Payload != "online" {
		t.Fatalf("retained availability %+v after the reconnect, want online", m)
	}
}

// TestStatusRetainedAndCoalesced: the status is retained QoS 1, published
// at once on a state change, while changes nobody signals (viewers, fps)
// go out at most once a second with the latest values only.
func TestStatusRetainedAndCoalesced(t *testing.T) {
	b := startBroker(t, "")
	clock := newFakeClock()
	obs := watch(t, b.url(), statusTopic)
	bx := startBox(t, b.url(), withFakeClock(clock))
	// Live subscribers get retain=0 (MQTT 3.1.1, 3.3.1.3); the retained
	// copy is checked with a late subscriber below.
	m := obs.next(statusTopic)
	if m.QoS != 1 {
		t.Fatalf("status %+v, want QoS 1", m)
	}
	if got := decode[status.Document](t, m.Payload); got.Title != "Keynote" {
		t.Fatalf("status title %q", got.Title)
	}

	// A state change goes out without the clock moving.
	bx.n.update(true, func(d *status.Document) { d.State = "idle"; d.LiveSince = nil })
	if m2 := obs.next(statusTopic); decode[status.Document](t, m2.Payload).State != "idle" {
		t.Fatalf("after a change %+v, want idle; first was %+v; stats %+v; observer connects %d", m2, m, bx.Stats(), obs.connects.Load())
	}

	// Unsignalled changes: nothing until the second is over, then one
	// document with the latest value.
	clock.waitFor(t, statusMinInterval)
	for v := 20; v <= 23; v++ {
		bx.n.update(false, func(d *status.Document) { d.Viewers = v })
	}
	clock.Advance(statusMinInterval)
	if got := decode[status.Document](t, obs.next(statusTopic).Payload); got.Viewers != 23 {
		t.Fatalf("viewers %d, want only the latest (23)", got.Viewers)
	}

	// Nothing changed but uptime: no publish at the next second. The next
	// status seen must be the one of the following state change.
	clock.waitFor(t, statusMinInterval)
	bx.n.update(false, func(d *status.Document) { d.UptimeS += 1 })
	clock.Advance(statusMinInterval)
	clock.waitFor(t, statusMinInterval) // the tick was handled
	bx.n.update(true, func(d *status.Document) { d.Title = "marker" })
	if got := decode[status.Document](t, obs.next(statusTopic).Payload); got.Title != "marker" {
		t.Fatalf("status %q published without a change", got.Title)
	}

	// A fresh subscriber reads the latest document from the broker.
	late := watch(t, b.url(), statusTopic)
	if got := late.next(statusTopic); !got.Retained || decode[status.Document](t, got.Payload).Title != "marker" {
		t.Fatalf("late subscriber got %+v", got)
	}
}

// TestTelemetry: every telemetry_interval, QoS 0, not retained.
func TestTelemetry(t *testing.T) {
	b := startBroker(t, "")
	clock := newFakeClock()
	obs := watch(t, b.url(), telemTopic, availTopic)
	bx := startBox(t, b.url(), withFakeClock(clock), func(o *Options) {
		o.Config.TelemetryInterval = config.Duration(10 * time.Second)
		o.Telemetry = func() Telemetry { return Telemetry{FPS: 29.9, BitrateKbps: 2400, FramesDropped: 3, Viewers: 7} }
	})
	obs.next(availTopic)
	eventually(t, func() bool { return bx.Stats().Connected }, "connected")
	clock.waitFor(t, 10*time.Second)
	clock.Advance(10 * time.Second)
	m := obs.next(telemTopic)
	if m.Retained || m.QoS != 0 {
		t.Fatalf("telemetry %+v, want QoS 0 not retained", m)
	}
	got := decode[map[string]any](t, m.Payload)
	if got["fps"] != 29.9 || got["frames_dropped"] != 3.0 || got["viewers"] != 7.0 || got["ts"] != "2026-11-25T10:00:10.000Z" {
		t.Fatalf("telemetry %v", got)
	}
	if rss, _ := got["rss_bytes"].(float64); rss <= 0 {
		t.Fatalf("rss_bytes %v, want the process's resident size", got["rss_bytes"])
	}
}

// TestReconnectAfterBrokerRestart: the broker goes away and comes back on
// the same address; the box reconnects with backoff, says online, publishes
// its status again, sends the events of the outage in order, and sent no
// telemetry while away.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := startBroker(t, "")
	addr := b.addr
	clock := newFakeClock()
	// The gate keeps the box off the new broker until the observer is
	// subscribed there, so nothing is published before anyone listens.
	var gate atomic.Bool
	gate.Store(true)
	bx := startBox(t, b.url(), withFakeClock(clock), func(o *Options) {
		o.Config.TelemetryInterval = config.Duration(10 * time.Second)
		o.dial = func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			if !gate.Load() {
				return nil, errors.New("network down (test gate)")
			}
			return net.Dial("tcp", uri.Host)
		}
	})
	eventually(t, func() bool { return bx.Stats().Connected }, "connected")
	gate.Store(false)
	b.stop()
	eventually(t, func() bool { return !bx.Stats().Connected }, "the box to notice the broker is gone")
	for i := 1; i <= 3; i++ {
		if err := bx.Event(EventButton, map[string]any{"press": "short", "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	clock.waitFor(t, 10*time.Second)
	clock.Advance(10 * time.Second) // telemetry due while offline: skipped, and a backoff over
	eventually(t, func() bool { return bx.Stats().TelemetrySkipped == 1 }, "telemetry skipped while offline")

	b2 := startBroker(t, addr)
	obs := watch(t, b2.url(), "onair/box1/#")
	gate.Store(true)
	// Keep moving time until a backoff ends and the box is back.
	eventually(t, func() bool {
		clock.Advance(200 * time.Millisecond)
		return bx.Stats().Connected
	}, "the box to reconnect")
	if m := obs.next(availTopic); m.Payload != "online" {
		t.Fatalf("availability %q after the restart", m.Payload)
	}
	obs.next(statusTopic)
	for i := 1; i <= 3; i++ {
		ev := decode[map[string]any](t, obs.next(eventTopic).Payload)
		if ev["n"] != float64(i) || ev["seq"] != float64(i) {
			t.Fatalf("event %d out of order: %v", i, ev)
		}
	}
	// Telemetry after the outage carries the time it was taken, not the
	// skipped sample's.
	clock.waitFor(t, 10*time.Second)
	clock.Advance(10 * time.Second)
	m := obs.next(telemTopic)
	if ts := decode[map[string]any](t, m.Payload)["ts"].(string); ts == "2026-11-25T10:00:10.000Z" {
		t.Fatal("telemetry from the outage was queued and sent")
	}
}

func TestDeviceIDRefused(t *testing.T) {
	for _, id := range []string{"", "fleet", "group", "a/b", "a+", "a#", "a b", strings.Repeat("x", 65)} {
		_, err := New(Options{Config: config.MQTT{Broker: "tcp://127.0.0.1:1"}, DeviceID: id, Status: sampleStatus})
		if err == nil {
			t.Errorf("device id %q accepted", id)
		}
	}
	if _, err := New(Options{Config: config.MQTT{}, DeviceID: "x", Status: sampleStatus}); err != ErrNoBroker {
		t.Errorf("no broker: %v, want ErrNoBroker", err)
	}
	if _, err := New(Options{Config: config.MQTT{Broker: "tcp://h:1", Groups: []string{"a/b"}}, DeviceID: "x", Status: sampleStatus}); err == nil {
		t.Error("group with / accepted")
	}
}

func TestBackoff(t *testing.T) {
	rnd := newTestRand()
	min, max := time.Second, time.Minute
	seen := map[time.Duration]bool{}
	for n := 0; n < 20; n++ {
		want := min << n
		if n > 10 || want > max {
			want = max
		}
		for i := 0; i < 50; i++ {
			d := backoff(n, min, max, rnd)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %s outside [%s, %s]", n, d, want/2, want)
			}
			if n == 0 {
				seen[d] = true
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("first delays not spread: %d distinct of 50", len(seen))
	}
}

func newTestRand() *mrand.Rand { return mrand.New(mrand.NewPCG(1, 2)) }

// TestDiscoveryResentWhenHomeAssistantStarts: discovery goes out at connect
// and again, after a random delay on the clock, when Home Assistant says
// online.
func TestDiscoveryResentWhenHomeAssistantStarts(t *testing.T) {
	const topic = "homeassistant/device/onair_box1/config"
	b := startBroker(t, "")
	clock := newFakeClock()
	obs := watch(t, b.url(), topic)
	startBox(t, b.url(), withFakeClock(clock))
	obs.next(topic)
	obs.publish("homeassistant/status", "offline")
	obs.publish("homeassistant/status", "online")
	eventually(t, func() bool {
		clock.Advance(discoveryDelayMax / 10)
		return obs.has(topic)
	}, "discovery after Home Assistant's birth message")
	if m := obs.next(topic); !strings.Contains(m.Payload, `"cmps"`) {
		t.Fatalf("discovery %s", m.Payload)
	}
}

// TestHubChanges: the adapter hands out the hub's change channel, which a
// real state change closes.
func TestHubChanges(t *testing.T) {
	hub := broadcast.New(broadcast.Options{})
	changes := HubChanges(hub)()
	hub.SetTitle("new")
	select {
	case <-changes:
	case <-time.After(patience):
		t.Fatal("change channel not closed by a title change")
	}
}

func TestRunAfterCloseAndTwice(t *testing.T) {
	c, err := New(Options{Config: config.MQTT{Broker: "tcp://127.0.0.1:1"}, DeviceID: "box1", Status: sampleStatus})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("Run after Close ran")
	}
}
