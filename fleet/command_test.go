package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// TestCommands sends every command on every topic kind it may come on and
// checks the controller call and the one reply.
func TestCommands(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)

	sha := strings.Repeat("ab", 32)
	cases := []struct {
		topic, payload string
		want           call
	}{
		{"onair/box1/cmd/live", `{"id":"1","title":"Keynote","private":false}`, call{CmdLive, LiveArgs{Title: ptr("Keynote"), Private: ptr(false)}}},
		{"onair/box1/cmd/live", ``, call{CmdLive, LiveArgs{}}},
		{"onair/box1/cmd/stop", `{"id":"2"}`, call{CmdStop, nil}},
		{"onair/fleet/cmd/stop", `{}`, call{CmdStop, nil}},
		{"onair/group/venue-a/cmd/live", `{"id":"g1","title":"Group"}`, call{CmdLive, LiveArgs{Title: ptr("Group")}}},
		{"onair/box1/cmd/set", `{"id":"3","title":"T","private":true,"comments_enabled":false,"bitrate_kbps":1800,"uplink_url":"https://media.example.org/whip","uplink_token":"s3cret","uplink_enabled":true}`,
			call{CmdSet, SetArgs{Title: ptr("T"), Private: ptr(true), CommentsEnabled: ptr(false), BitrateKbps: ptr(1800),
				UplinkURL: ptr("https://media.example.org/whip"), UplinkToken: ptr("s3cret"), UplinkEnabled: ptr(true)}}},
		{"onair/box1/cmd/set", `{"uplink_url":""}`, call{CmdSet, SetArgs{UplinkURL: ptr("")}}},
		{"onair/box1/cmd/reboot", `{"id":"4"}`, call{CmdReboot, nil}},
		{"onair/box1/cmd/ota", `{"id":"5","url":"https://updates.example.org/onair-v0.3.0.bundle","version":"v0.3.0","sha256":"` + sha + `","downgrade":true}`,
			call{CmdOTA, OTAArgs{URL: "https://updates.example.org/onair-v0.3.0.bundle", Version: "v0.3.0", SHA256: sha, Downgrade: true}}},
		{"onair/box1/cmd/comment_remove", `{"id":"6","comment":"c-42"}`, call{CmdCommentRemove, "c-42"}},
		{"onair/fleet/cmd/viewer_block", `{"id":"7","viewer":"v-9"}`, call{CmdViewerBlock, "v-9"}},
		{"onair/group/venue-a/cmd/replay_delete", `{"id":"8","replay":"r-1"}`, call{CmdReplayDelete, "r-1"}},
	}
	for i, tc := range cases {
		obs.publish(tc.topic, tc.payload)
		r := decode[Reply](t, obs.next(replyTopic).Payload)
		if !r.OK || r.Error != "" || r.Cmd != tc.want.Name {
			t.Fatalf("case %d %s: reply %+v", i, tc.topic, r)
		}
		if got := bx.ctl.last(); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("case %d %s: controller got %#v, want %#v", i, tc.topic, got, tc.want)
		}
	}
}

// TestCommandErrorsPassThrough: what the controller refuses is the reply's
// error, word for word.
func TestCommandErrorsPassThrough(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)
	bx.ctl.mu.Lock()
	bx.ctl.fail = map[string]error{CmdCommentRemove: fmt.Errorf("comment_remove: %w", ErrNotAvailable)}
	bx.ctl.mu.Unlock()
	obs.publish("onair/box1/cmd/comment_remove", `{"id":"x","comment":"1"}`)
	r := decode[Reply](t, obs.next(replyTopic).Payload)
	if r.OK || r.ID != "x" || r.Error != "comment_remove: not available in this firmware" {
		t.Fatalf("reply %+v", r)
	}
}

// TestOtherGroupIgnored: a group the box is not in gets no reply; the next
// reply seen is the one to the marker command.
func TestOtherGroupIgnored(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)
	obs.publish("onair/group/venue-b/cmd/stop", `{"id":"other"}`)
	obs.publish("onair/otherbox/cmd/stop", `{"id":"other2"}`)
	obs.publish("onair/box1/cmd/stop", `{"id":"marker"}`)
	if r := decode[Reply](t, obs.next(replyTopic).Payload); r.ID != "marker" {
		t.Fatalf("reply %+v to a command for someone else", r)
	}
	if n := bx.ctl.count(CmdStop); n != 1 {
		t.Fatalf("stop ran %d times", n)
	}
}

// TestMalformedCommands: every kind of bad input gets one ok=false reply
// with a clear error; nothing reaches the controller and the box goes on.
func TestMalformedCommands(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)
	cases := []struct{ name, payload, id, want string }{
		{"live", `{"id":"a","title":`, "", "not valid JSON"},
		{"live", `not json`, "", "must be a JSON object"},
		{"live", `[1,2]`, "", "must be a JSON object"},
		{"live", `"live"`, "", "must be a JSON object"},
		{"live", `null`, "", "must be a JSON object"},
		{"live", "\xff\xfe", "", "not UTF-8"},
		{"live", `{"id":5}`, "", `"id" must be a string`},
		{"launch", `{"id":"b"}`, "b", `unknown command "launch"`},
		{"live", `{"id":"c","title":5}`, "c", `argument "title": want a string`},
		{"live", `{"id":"d","private":"yes"}`, "d", `argument "private": want true or false`},
		{"live", `{"id":"e","titel":"x"}`, "e", `unknown argument "titel"`},
		{"live", `{"id":"f","title":"` + strings.Repeat("x", 121) + `"}`, "f", "longer than 120"},
		{"live", `{"id":"g","title":"a\nb"}`, "g", "one line"},
		{"stop", `{"id":"h","now":true}`, "h", "stop takes none"},
		{"set", `{"id":"i"}`, "i", "no setting given"},
		{"set", `{"id":"j","bitrate_kbps":"fast"}`, "j", "whole number"},
		{"set", `{"id":"k","bitrate_kbps":1.5}`, "k", "whole number"},
		{"set", `{"id":"l","bitrate_kbps":99999999}`, "l", "out of range"},
		{"set", `{"id":"m","uplink_url":"ftp://x"}`, "m", "not an http(s) URL"},
		{"ota", `{"id":"n"}`, "n", `argument "url" is required`},
		{"ota", `{"id":"o","url":"https://x/b","sha256":"abc"}`, "o", "64 hex digits"},
		{"ota", `{"id":"p","url":"file:///etc/passwd"}`, "p", "not an http(s) URL"},
		{"comment_remove", `{"id":"q"}`, "q", `"comment" is required`},
		{"viewer_block", `{"id":"r","viewer":""}`, "r", "must not be empty"},
		{"replay_delete", `{"id":"s","replay":7}`, "s", "want a string"},
		{"live", `{"id":"t"}` + strings.Repeat(" ", maxCommandBytes), "", "too large"},
	}
	for _, tc := range cases {
		obs.publish("onair/box1/cmd/"+tc.name, tc.payload)
		r := decode[Reply](t, obs.next(replyTopic).Payload)
		if r.OK || r.ID != tc.id || r.Cmd != tc.name || !strings.Contains(r.Error, tc.want) {
			t.Errorf("%s %.40q: reply %+v, want id %q and error with %q", tc.name, tc.payload, r, tc.id, tc.want)
		}
	}
	if n := bx.ctl.total(); n != 0 {
		t.Fatalf("controller called %d times for bad commands", n)
	}
	obs.publish("onair/box1/cmd/stop", `{"id":"ok"}`)
	if r := decode[Reply](t, obs.next(replyTopic).Payload); !r.OK || r.ID != "ok" {
		t.Fatalf("box not answering after bad commands: %+v", r)
	}
}

// TestDuplicateID: a repeated id within 10 minutes is answered from memory
// and not run again; after 10 minutes it runs again; without id every
// command runs.
func TestDuplicateID(t *testing.T) {
	b := startBroker(t, "")
	clock := newFakeClock()
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url(), withFakeClock(clock))
	obs.next(availTopic)
	bx.ctl.mu.Lock()
	bx.ctl.fail = map[string]error{CmdReboot: fmt.Errorf("reboot refused: an update is installing")}
	bx.ctl.mu.Unlock()

	send := func(topic, payload string) Reply {
		obs.publish(topic, payload)
		return decode[Reply](t, obs.next(replyTopic).Payload)
	}
	first := send("onair/box1/cmd/live", `{"id":"dup","title":"A"}`)
	again := send("onair/fleet/cmd/live", `{"id":"dup","title":"A"}`)
	if first != again || !first.OK {
		t.Fatalf("replies differ: %+v then %+v", first, again)
	}
	if n := bx.ctl.count(CmdLive); n != 1 {
		t.Fatalf("live ran %d times for one id", n)
	}
	// A failure is remembered too: the command did run.
	r1 := send("onair/box1/cmd/reboot", `{"id":"rb"}`)
	r2 := send("onair/box1/cmd/reboot", `{"id":"rb"}`)
	if r1 != r2 || r1.OK || bx.ctl.count(CmdReboot) != 1 {
		t.Fatalf("failed command: %+v then %+v, ran %d", r1, r2, bx.ctl.count(CmdReboot))
	}

	clock.Advance(replyMemoryTTL - time.Second)
	send("onair/box1/cmd/live", `{"id":"dup","title":"A"}`)
	if n := bx.ctl.count(CmdLive); n != 1 {
		t.Fatalf("live ran again within 10 minutes")
	}
	clock.Advance(time.Second)
	send("onair/box1/cmd/live", `{"id":"dup","title":"A"}`)
	if n := bx.ctl.count(CmdLive); n != 2 {
		t.Fatalf("live ran %d times; after 10 minutes the id is new again", n)
	}
	for i := 0; i < 3; i++ {
		if r := send("onair/box1/cmd/stop", `{}`); !r.OK || r.ID != "" {
			t.Fatalf("reply %+v", r)
		}
	}
	if n := bx.ctl.count(CmdStop); n != 3 {
		t.Fatalf("stop without id ran %d times, want 3", n)
	}
}

// TestReplyMemoryBounded: the memory never holds more than its limit and
// forgets the oldest first.
func TestReplyMemoryBounded(t *testing.T) {
	m := newReplyMemory(10*time.Minute, 100)
	now := time.Unix(0, 0)
	for i := 0; i < 10000; i++ {
		m.put(fmt.Sprint(i), Reply{ID: fmt.Sprint(i)}, now)
		if m.len() > 100 {
			t.Fatalf("memory holds %d", m.len())
		}
	}
	if _, ok := m.get("9899", now); ok {
		t.Fatal("oldest not forgotten")
	}
	if _, ok := m.get("9999", now); !ok {
		t.Fatal("newest forgotten")
	}
	if _, ok := m.get("9999", now.Add(10*time.Minute)); ok {
		t.Fatal("kept past its time")
	}
	if m.len() != 0 || cap(m.order) > 1000 {
		t.Fatalf("after expiry: %d entries, order cap %d", m.len(), cap(m.order))
	}
}

// TestEvents: type, ts, boot and seq per the contract; reserved names refused.
func TestEvents(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), eventTopic)
	bx := startBox(t, b.url(), withFakeClock(newFakeClock()))
	for _, typ := range []string{EventWentLive, EventStopped, EventButton, EventError, EventOTAProgress} {
		if err := bx.Event(typ, map[string]any{"x": 1}); err != nil {
			t.Fatal(err)
		}
	}
	for i, typ := range []string{EventWentLive, EventStopped, EventButton, EventError, EventOTAProgress} {
		m := obs.next(eventTopic)
		ev := decode[map[string]any](t, m.Payload)
		if m.Retained || m.QoS != 1 || ev["type"] != typ || ev["seq"] != float64(i+1) || ev["boot"] != "boot-1" || ev["ts"] != "2026-11-25T10:00:00.000Z" {
			t.Fatalf("event %d: %+v", i, m)
		}
	}
	for _, k := range []string{"type", "ts", "boot", "seq"} {
		if err := bx.Event(EventError, map[string]any{k: "x"}); err == nil {
			t.Errorf("field %q accepted", k)
		}
	}
	if err := bx.Event("", nil); err == nil {
		t.Error("event without type accepted")
	}
}

// TestRetainedCommandRefused: a retained command would run again at every
// reconnect, so the one the broker hands out from its store is refused.
func TestRetainedCommandRefused(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, "onair/box1/cmd/live")
	if tok := obs.c.Publish("onair/box1/cmd/live", 1, true, `{"id":"ret"}`); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatal("publish retained command")
	}
	// Once the observer has it, the broker is done delivering it live: the
	// box, subscribing later, gets only the retained copy.
	obs.next("onair/box1/cmd/live")
	bx := startBox(t, b.url())
	if r := decode[Reply](t, obs.next(replyTopic).Payload); r.OK || r.ID != "ret" || !strings.Contains(r.Error, "retained") {
		t.Fatalf("retained command: %+v", r)
	}
	if n := bx.ctl.total(); n != 0 {
		t.Fatalf("controller called %d times", n)
	}
}

// TestDocumentedErrors: the error table of docs/mqtt.md, word for word.
func TestDocumentedErrors(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "mqtt.md"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, payload string }{
		{"live", `{"id": "a", "title":`},
		{"live", `[1,2]`},
		{"live", `{"id": 5}`},
		{"launch", `{}`},
		{"live", `{"title": 5}`},
		{"live", `{"titel": "x"}`},
		{"stop", `{"now": true}`},
		{"set", `{}`},
		{"set", `{"bitrate_kbps": 1.5}`},
		{"ota", `{}`},
	}
	for _, tc := range cases {
		_, err := parseCommand(tc.name, []byte(tc.payload))
		if err == nil {
			t.Fatalf("%s %s accepted", tc.name, tc.payload)
		}
		if !strings.Contains(string(doc), "`"+err.Error()+"`") {
			t.Errorf("docs/mqtt.md does not show the error %q", err)
		}
	}
}

// TestBusyAndExactlyOneReply: with the controller stuck, a flood of
// commands overflows the queue; the overflow is answered busy at once and
// every command still gets exactly one reply.
func TestBusyAndExactlyOneReply(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)
	release := make(chan struct{})
	bx.ctl.mu.Lock()
	bx.ctl.block = release
	bx.ctl.mu.Unlock()
	const n = inboundMax + 10
	for i := 0; i < n; i++ {
		obs.publish("onair/box1/cmd/stop", fmt.Sprintf(`{"id":"b%d"}`, i))
	}
	busy := 0
	for busy < 9 { // at least n - inboundMax - 1 (the one being run) are busy
		r := decode[Reply](t, obs.next(replyTopic).Payload)
		if r.OK || !strings.Contains(r.Error, "busy") {
			t.Fatalf("reply %+v while the controller is stuck", r)
		}
		busy++
	}
	close(release)
	seen := map[string]int{}
	for len(seen) < n-busy {
		r := decode[Reply](t, obs.next(replyTopic).Payload)
		seen[r.ID]++
	}
	obs.publish("onair/box1/cmd/stop", `{"id":"last"}`)
	for {
		r := decode[Reply](t, obs.next(replyTopic).Payload)
		if r.ID == "last" {
			break
		}
		seen[r.ID]++
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("command %s answered %d times", id, k)
		}
	}
	if len(seen)+busy != n {
		t.Errorf("%d answered + %d busy, want %d", len(seen), busy, n)
	}
}

// TestControllerPanic: a bug in the controller is an error reply, not a
// dead daemon.
func TestControllerPanic(t *testing.T) {
	b := startBroker(t, "")
	obs := watch(t, b.url(), replyTopic, availTopic)
	bx := startBox(t, b.url())
	obs.next(availTopic)
	bx.ctl.mu.Lock()
	bx.ctl.panicOn = CmdReboot
	bx.ctl.mu.Unlock()
	obs.publish("onair/box1/cmd/reboot", `{"id":"p"}`)
	if r := decode[Reply](t, obs.next(replyTopic).Payload); r.OK || !strings.Contains(r.Error, "internal error") {
		t.Fatalf("reply %+v", r)
	}
	obs.publish("onair/box1/cmd/stop", `{"id":"after"}`)
	if r := decode[Reply](t, obs.next(replyTopic).Payload); !r.OK {
		t.Fatalf("reply %+v after a panic", r)
	}
}
