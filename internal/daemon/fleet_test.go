//go:build cgo

package daemon

import (
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
)

// TestFleetCommandsDriveTheBroadcast runs onaird against a real broker
// (mochi-mqtt in process) and drives it as an operator would.
func TestFleetCommandsDriveTheBroadcast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broker := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	broker.AddHook(new(auth.AllowHook), nil)
	broker.AddListener(listeners.NewNet("t", ln))
	if err := broker.Serve(); err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	url := "tcp://" + ln.Addr().String()

	msgs := make(chan mqtt.Message, 1000)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("operator")
	operator := mqtt.NewClient(opts)
	if tok := operator.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("operator connect: %v", tok.Error())
	}
	defer operator.Disconnect(100)
	if tok := operator.Subscribe("onair/box1/#", 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	r := start(t, func(c *config.Config) {
		c.Video.Width, c.Video.Height = 320, 240
		c.DeviceID = "box1"
		c.MQTT.Broker = url
	})
	var stash []mqtt.Message // seen, not yet asked for
	decode := func(m mqtt.Message) map[string]any {
		var doc map[string]any
		if json.Unmarshal(m.Payload(), &doc) != nil {
			doc = map[string]any{"raw": string(m.Payload())}
		}
		return doc
	}
	next := func(topic string, match func(map[string]any) bool) map[string]any {
		t.Helper()
		for i, m := range stash {
			if d := decode(m); m.Topic() == topic && (match == nil || match(d)) {
				stash = append(stash[:i], stash[i+1:]...)
				return d
			}
		}
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if d := decode(m); m.Topic() == topic && (match == nil || match(d)) {
					return d
				}
				stash = append(stash, m)
			case <-timeout:
				t.Fatalf("no matching message on %s", topic)
			}
		}
	}
	next("onair/box1/availability", func(d map[string]any) bool { return d["raw"] == "online" })
	next("onair/box1/status", func(d map[string]any) bool { return d["state"] == "idle" })

	send := func(name, payload string) map[string]any {
		t.Helper()
		operator.Publish("onair/box1/cmd/"+name, 1, false, payload).Wait()
		return next("onair/box1/reply", func(d map[string]any) bool { return d["cmd"] == name })
	}
	if rep := send("live", `{"id":"c1","title":"From the fleet"}`); rep["ok"] != true || rep["id"] != "c1" {
		t.Fatalf("live: %v", rep)
	}
	if st, _ := r.d.Hub().Status(); st.State != broadcast.Live || st.Title != "From the fleet" {
		t.Fatalf("after cmd/live: %+v", st)
	}
	next("onair/box1/event", func(d map[string]any) bool { return d["type"] == "went_live" })
	next("onair/box1/status", func(d map[string]any) bool { return d["state"] == "live" })

	if rep := send("set", `{"id":"c2","uplink_enabled":true,"title":"x"}`); rep["ok"] != false || !strings.Contains(rep["error"].(string), "no uplink_url") {
		t.Fatalf("set uplink without a URL: %v", rep)
	}
	if st, _ := r.d.Hub().Status(); st.Title != "From the fleet" {
		t.Fatalf("a refused set changed the title to %q", st.Title)
	}
	if rep := send("set", `{"id":"c2b","private":true,"comments_enabled":false}`); rep["ok"] != true {
		t.Fatalf("set private: %v", rep)
	}
	if st, _ := r.d.Hub().Status(); !st.Private {
		t.Fatal("set private did not make the broadcast private")
	}
	if rep := send("set", `{"id":"c3","bitrate_kbps":1200}`); rep["ok"] != true {
		t.Fatalf("set bitrate: %v", rep)
	}
	if rep := send("live", `{not json`); rep["ok"] != false {
		t.Fatalf("bad JSON: %v", rep)
	}
	if rep := send("stop", `{"id":"c4"}`); rep["ok"] != true {
		t.Fatalf("stop: %v", rep)
	}
	next("onair/box1/event", func(d map[string]any) bool { return d["type"] == "stopped" })
	if st, _ := r.d.Hub().Status(); st.State != broadcast.Idle {
		t.Fatalf("after cmd/stop: %s", st.State)
	}
	// A clean stop says offline.
	r.stop()
	next("onair/box1/availability", func(d map[string]any) bool { return d["raw"] == "offline" })
}
