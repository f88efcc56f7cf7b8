package fleet

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mosquitto is Debian's broker, started for one test on a loopback port
// (never the system service).
type mosquitto struct {
	t    *testing.T
	bin  string
	port int
	conf string
	cmd  *exec.Cmd
}

func startMosquitto(t *testing.T, port int) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/mosquitto"); statErr != nil {
			t.Fatal("mosquitto is not installed: apt-get install mosquitto mosquitto-clients")
		}
		bin = "/usr/sbin/mosquitto"
	}
	for _, c := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not installed: apt-get install mosquitto-clients", c)
		}
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, port: port, conf: conf}
	m.start(bin)
	t.Cleanup(m.kill)
	return m
}

func (m *mosquitto) start(bin string) {
	m.t.Helper()
	m.cmd = exec.Command(bin, "-c", m.conf)
	m.cmd.Stderr = os.Stderr
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	eventually(m.t, func() bool {
		c, err := net.Dial("tcp", m.addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "mosquitto to listen on "+m.addr())
}

// kill stops the broker the hard way (SIGKILL), as a crash would.
func (m *mosquitto) kill() {
	if m.cmd != nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
		m.cmd = nil
	}
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }
func (m *mosquitto) url() string  { return "tcp://" + m.addr() }

// one reads one message on topic with a fresh mosquitto_sub: what a
// newcomer to the broker finds there (retained messages). Output is
// "<retained flag> <payload>".
func (m *mosquitto) one(topic string) (retained bool, payload string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(m.port),
		"-q", "1", "-t", topic, "-C", "1", "-F", "%r %p").Output()
	if err != nil {
		m.t.Fatalf("mosquitto_sub %s: %v", topic, err)
	}
	flag, rest, _ := strings.Cut(strings.TrimRight(string(out), "\n"), " ")
	return flag == "1", rest
}

func (m *mosquitto) pub(topic, payload string) {
	m.t.Helper()
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(m.port),
		"-q", "1", "-t", topic, "-m", payload).CombinedOutput()
	if err != nil {
		m.t.Fatalf("mosquitto_pub %s: %v %s", topic, err, out)
	}
}

// follower is a long-running mosquitto_sub whose lines ("<topic> <payload>")
// the test reads.
type follower struct {
	cmd   *exec.Cmd
	lines chan string
}

func (m *mosquitto) follow(topics ...string) *follower {
	m.t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(m.port), "-q", "1", "-F", "%t %p", "-t", "test/probe"}
	for _, t := range topics {
		args = append(args, "-t", t)
	}
	f := &follower{cmd: exec.Command("mosquitto_sub", args...), lines: make(chan string, 256)}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := bufio.NewScanner(out)
		for s.Scan() {
			f.lines <- s.Text()
		}
	}()
	m.t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-done
		_ = f.cmd.Wait()
	})
	// Subscribed once it hears its own probe.
	eventually(m.t, func() bool {
		m.pub("test/probe", "hello")
		select {
		case l := <-f.lines:
			return strings.HasPrefix(l, "test/probe ")
		case <-time.After(50 * time.Millisecond):
			return false
		}
	}, "mosquitto_sub to subscribe")
	return f
}

func (f *follower) next(t *testing.T, topic string) string {
	t.Helper()
	timeout := time.After(patience)
	for {
		select {
		case l := <-f.lines:
			if tp, payload, _ := strings.Cut(l, " "); tp == topic {
				return payload
			}
		case <-timeout:
			t.Fatalf("mosquitto_sub saw nothing on %s", topic)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestMosquittoContract checks the topic contract with Mosquitto and its
// command-line clients as the independent side: presence, the retained
// status, a command and its reply, the Last Will on a cut connection, and
// the box coming back after the broker is killed and restarted.
func TestMosquittoContract(t *testing.T) {
	if testing.Short() {
		t.Skip("contract test with Debian's mosquitto runs without -short")
	}
	m := startMosquitto(t, freePort(t))
	var cut cuttable
	bx := startBox(t, m.url(), func(o *Options) { o.dial = cut.dial })
	eventually(t, func() bool { return bx.Stats().Connected }, "the box to connect")
	eventually(t, func() bool { return bx.Stats().StatusPublished > 0 }, "the first status")

	if retained, p := m.one(availTopic); !retained || p != "online" {
		t.Fatalf("availability: retained=%v %q, want retained online", retained, p)
	}
	retained, p := m.one(statusTopic)
	if st := decode[map[string]any](t, p); !retained || st["state"] != "live" || st["title"] != "Keynote" {
		t.Fatalf("status: retained=%v %s", retained, p)
	}
	if retained, p := m.one("homeassistant/device/onair_box1/config"); !retained || !strings.Contains(p, `"cmps"`) {
		t.Fatalf("discovery: retained=%v %s", retained, p)
	}

	f := m.follow(replyTopic, availTopic, statusTopic, eventTopic)
	m.pub("onair/box1/cmd/live", `{"id":"mq-1","title":"From mosquitto"}`)
	if r := decode[Reply](t, f.next(t, replyTopic)); !r.OK || r.ID != "mq-1" || r.Cmd != "live" {
		t.Fatalf("reply %+v", r)
	}
	m.pub("onair/fleet/cmd/nope", `{"id":"mq-2"}`)
	if r := decode[Reply](t, f.next(t, replyTopic)); r.OK || r.ID != "mq-2" || !strings.Contains(r.Error, "unknown command") {
		t.Fatalf("reply %+v", r)
	}
	m.pub("onair/group/venue-a/cmd/stop", `{"id":"mq-3"}`)
	if r := decode[Reply](t, f.next(t, replyTopic)); !r.OK || r.ID != "mq-3" {
		t.Fatalf("reply %+v", r)
	}

	// A cut connection: Mosquitto publishes the Will, the box comes back.
	cut.cut()
	for f.next(t, availTopic) != "offline" { // the box may be back before the Will
	}
	if p := f.next(t, availTopic); p != "online" {
		t.Fatalf("after reconnecting: %q, want online", p)
	}

	// The broker is killed (its retained messages are gone: no
	// persistence) and restarted: the box reconnects and republishes.
	m.kill()
	eventually(t, func() bool { return !bx.Stats().Connected }, "the box to notice the broker is gone")
	m.start(m.bin)
	// The first read may see the box's publish live (retain flag 0) if it
	// subscribed before the box was back; the second finds it retained.
	for range 2 {
		if _, p := m.one(availTopic); p != "online" {
			t.Fatalf("after the broker restart availability: %q", p)
		}
		if _, p := m.one(statusTopic); !strings.Contains(p, `"state":"live"`) {
			t.Fatalf("after the broker restart status: %s", p)
		}
	}
	if retained, _ := m.one(availTopic); !retained {
		t.Fatal("availability not retained after the broker restart")
	}
	if retained, _ := m.one(statusTopic); !retained {
		t.Fatal("status not retained after the broker restart")
	}

	// A clean stop says offline itself.
	if err := bx.Close(); err != nil {
		t.Fatal(err)
	}
	if retained, p := m.one(availTopic); !retained || p != "offline" {
		t.Fatalf("after a clean stop availability: retained=%v %q", retained, p)
	}
}

// TestMosquittoOutage: Mosquitto is killed; while it is down the box raises
// events, and the daemon is even restarted; when the broker is back every
// event arrives once, in order (seq per boot, boots in order), followed by
// online and status.
func TestMosquittoOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test with Debian's mosquitto runs without -short")
	}
	m := startMosquitto(t, freePort(t))
	dir := t.TempDir()
	clock := newFakeClock()
	first := startBox(t, m.url(), withFakeClock(clock), func(o *Options) { o.OutboxDir = dir })
	eventually(t, func() bool { return first.Stats().Connected }, "the box to connect")

	m.kill()
	eventually(t, func() bool { return !first.Stats().Connected }, "the box to notice the broker is gone")
	for i := 1; i <= 3; i++ {
		if err := first.Event(EventButton, map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Close(); err != nil { // the daemon restarts during the outage
		t.Fatal(err)
	}
	second := startBox(t, m.url(), withFakeClock(clock), func(o *Options) { o.OutboxDir = dir; o.BootID = "boot-2" })
	for i := 4; i <= 5; i++ {
		if err := second.Event(EventButton, map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}

	m.start(m.bin)
	f := m.follow(eventTopic, availTopic)
	// The box retries on its (fake) clock: it is back once time moves.
	eventually(t, func() bool {
		clock.Advance(200 * time.Millisecond)
		return second.Stats().Connected
	}, "the box to reconnect")
	if p := f.next(t, availTopic); p != "online" {
		t.Fatalf("availability %q after the outage", p)
	}
	want := []struct {
		boot string
		seq  float64
	}{{"boot-1", 1}, {"boot-1", 2}, {"boot-1", 3}, {"boot-2", 1}, {"boot-2", 2}}
	for i, w := range want {
		ev := decode[map[string]any](t, f.next(t, eventTopic))
		if ev["n"] != float64(i+1) || ev["boot"] != w.boot || ev["seq"] != w.seq {
			t.Fatalf("event %d: %v, want boot %s seq %v", i+1, ev, w.boot, w.seq)
		}
	}
	// Nothing more: the next event seen is a new one, not a repeat.
	if err := second.Event(EventError, map[string]any{"error": "marker"}); err != nil {
		t.Fatal(err)
	}
	if ev := decode[map[string]any](t, f.next(t, eventTopic)); ev["error"] != "marker" {
		t.Fatalf("after the outage's events: %v, want the marker", ev)
	}
}
