package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.uber.org/goleak"

	"github.com/onair/onair/config"
	"github.com/onair/onair/device/board"
	"github.com/onair/onair/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that should happen: it only
// turns a hang into a failure, it never decides what is correct.
const patience = 5 * time.Second

// broker is mochi-mqtt in process on a loopback port.
type broker struct {
	srv  *mochi.Server
	ln   net.Listener
	addr string
}

// startBroker starts a broker on addr ("" picks a free port).
func startBroker(t *testing.T, addr string) *broker {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	// After a restart the old socket may linger a moment on some kernels.
	for deadline := time.Now().Add(patience); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("t", ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &broker{srv: srv, ln: ln, addr: ln.Addr().String()}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) url() string { return "tcp://" + b.addr }

var errStopped = errors.New("broker stopped by the test")

// stop ends the broker. mochi v2.7.9's Close deadlocks when a client goes
// away at the same moment (Clients.GetByListener takes the read lock twice
// while Delete waits for the write lock), so the clients are dropped and
// gone before Close runs.
func (b *broker) stop() {
	if b.srv == nil {
		return
	}
	_ = b.ln.Close()
	for _, cl := range b.srv.Clients.GetAll() {
		cl.Stop(errStopped)
	}
	for deadline := time.Now().Add(patience); b.srv.Clients.Len() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	_ = b.srv.Close()
	b.srv = nil
}

// received is one message an observer saw.
type received struct {
	Topic    string
	Payload  string
	Retained bool
	QoS      byte
}

// observer is an independent MQTT client watching the box's topics.
type observer struct {
	t     *testing.T
	c     mqtt.Client
	msgs  chan received
	stash []received // seen but not yet asked for, in arrival order
	// connects counts the observer's own connections (reconnects re-read
	// retained messages).
	connects atomic.Int32
}

// watch connects an observer subscribed to filters; it reconnects and
// resubscribes by itself when the broker restarts.
func watch(t *testing.T, brokerURL string, filters ...string) *observer {
	t.Helper()
	o := &observer{t: t, msgs: make(chan received, 4096)}
	id := fmt.Sprintf("observer-%d", time.Now().UnixNano())
	probe := "test/probe/" + id
	subs := map[string]byte{probe: 1}
	for _, f := range filters {
		subs[f] = 1
	}
	probed := make(chan struct{}, 16)
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) {
			o.connects.Add(1)
			c.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) {
				if m.Topic() == probe {
					probed <- struct{}{}
					return
				}
				o.msgs <- received{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained(), QoS: m.Qos()}
			}).Wait()
			// The broker sends retained messages after the SUBACK; once our
			// own probe comes back, that is over, and whatever arrives from
			// now on is a live publish.
			c.Publish(probe, 1, false, "probe")
		})
	o.c = mqtt.NewClient(opts)
	o.c.Connect()
	select {
	case <-probed:
	case <-time.After(patience):
		t.Fatal("observer did not connect")
	}
	t.Cleanup(func() { o.c.Disconnect(0) })
	return o
}

// next returns the next message on topic, skipping others.
func (o *observer) next(topic string) received {
	o.t.Helper()
	return o.until(func(m received) bool { return m.Topic == topic }, "a message on "+topic)
}

// has reports, without waiting, whether a message on topic has arrived.
func (o *observer) has(topic string) bool {
	for {
		select {
		case m := <-o.msgs:
			o.stash = append(o.stash, m)
		default:
			for _, m := range o.stash {
				if m.Topic == topic {
					return true
				}
			}
			return false
		}
	}
}

// until returns the first message for which match is true; the others
// stay for later calls, so each topic is read in its own order.
func (o *observer) until(match func(received) bool, what string) received {
	o.t.Helper()
	for i, m := range o.stash {
		if match(m) {
			o.stash = append(o.stash[:i], o.stash[i+1:]...)
			return m
		}
	}
	timeout := time.After(patience)
	for {
		select {
		case m := <-o.msgs:
			if match(m) {
				return m
			}
			o.stash = append(o.stash, m)
		case <-timeout:
			o.t.Fatalf("waited in vain for %s", what)
		}
	}
}

func (o *observer) publish(topic, payload string) {
	o.t.Helper()
	if tok := o.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(patience) || tok.Error() != nil {
		o.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// eventually waits for cond, for state that has no message to wait on.
func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock moves only when told to.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), d: d, ch: ch})
	return ch
}

// Advance moves time on and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// waitFor waits until someone waits for a timer of duration d.
func (c *fakeClock) waitFor(t *testing.T, d time.Duration) {
	t.Helper()
	eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, w := range c.waiters {
			if w.d == d {
				return true
			}
		}
		return false
	}, fmt.Sprintf("a timer of %s", d))
}

// notifier is a tiny stand-in for the hub's change channel.
type notifier struct {
	mu  sync.Mutex
	doc status.Document
	ch  chan struct{}
}

func newNotifier(doc status.Document) *notifier {
	return &notifier{doc: doc, ch: make(chan struct{})}
}

func (n *notifier) Status() status.Document {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.doc
}

func (n *notifier) Changes() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// update changes the document; signal says whether watchers are told (a
// state change) or must find out by polling (viewers, fps).
func (n *notifier) update(signal bool, f func(*status.Document)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.doc)
	if signal {
		close(n.ch)
		n.ch = make(chan struct{})
	}
}

// sampleStatus is a full document with every field set.
func sampleStatus() status.Document {
	since := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	return status.Document{
		State: "live", BroadcastID: "20261125T101500Z-1", Title: "Keynote", LiveSince: &since,
		Viewers: 12, ViewersPeak: 14,
		Video: status.Video{Source: "v4l2", Encoder: "v4l2m2m", EncoderReason: "hardware encoder found",
			Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2380.5},
		Audio:           status.Audio{Source: "alsa", PeakDBFS: -18, RMSDBFS: -21},
		CameraConnected: true,
		Uplink:          status.Component{State: "off"}, Recording: status.Component{State: "recording"},
		StorageFreeMB: 80123,
		Board: board.Info{Model: "Raspberry Pi 4 Model B Rev 1.4", Serial: "10000000abcdef12",
			TemperatureC: 48.3},
		Firmware: status.Firmware{Version: "v0.2.0", Slot: "a", OTAState: "idle"},
		UptimeS:  3600,
	}
}

// call is one controller call.
type call struct {
	Name string
	Args any
}

// recorder is a Controller that records calls and fails on request.
type recorder struct {
	mu    sync.Mutex
	calls []call
	fail  map[string]error
	// block, when set, holds every call until it is closed.
	block chan struct{}
	// panicOn names a command whose call panics.
	panicOn string
}

func (r *recorder) record(name string, args any) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{name, args})
	block, err, panics := r.block, r.fail[name], r.panicOn == name
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	if panics {
		panic("controller bug")
	}
	return err
}

func (r *recorder) Live(_ context.Context, a LiveArgs) error { return r.record(CmdLive, a) }
func (r *recorder) Stop(context.Context) error               { return r.record(CmdStop, nil) }
func (r *recorder) Set(_ context.Context, a SetArgs) error   { return r.record(CmdSet, a) }
func (r *recorder) Reboot(context.Context) error             { return r.record(CmdReboot, nil) }
func (r *recorder) OTA(_ context.Context, a OTAArgs) error   { return r.record(CmdOTA, a) }
func (r *recorder) CommentRemove(_ context.Context, id string) error {
	return r.record(CmdCommentRemove, id)
}
func (r *recorder) ViewerBlock(_ context.Context, id string) error {
	return r.record(CmdViewerBlock, id)
}
func (r *recorder) ReplayDelete(_ context.Context, id string) error {
	return r.record(CmdReplayDelete, id)
}

func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.Name == name {
			n++
		}
	}
	return n
}

func (r *recorder) last() call {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return call{}
	}
	return r.calls[len(r.calls)-1]
}

// box is a fleet client under test, running until the test ends.
type box struct {
	*Client
	n     *notifier
	ctl   *recorder
	clock *fakeClock
	done  chan error
}

type boxOption func(*Options)

func startBox(t *testing.T, brokerURL string, opts ...boxOption) *box {
	t.Helper()
	n := newNotifier(sampleStatus())
	b := &box{n: n, ctl: &recorder{}, done: make(chan error, 1)}
	opt := Options{
		Config: config.MQTT{Broker: brokerURL, BaseTopic: "onair", Groups: []string{"venue-a"},
			TelemetryInterval: config.Duration(time.Hour)},
		DeviceID: "box1", Status: n.Status, Changes: n.Changes, Commands: b.ctl,
		BootID: "boot-1", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: testLogger(t),
	}
	for _, o := range opts {
		o(&opt)
	}
	if fc, ok := opt.Clock.(*fakeClock); ok {
		b.clock = fc
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	b.Client = c
	go func() { b.done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if err := <-b.done; err != nil {
			t.Error(err)
		}
	})
	return b
}

func withFakeClock(c *fakeClock) boxOption { return func(o *Options) { o.Clock = c } }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("FLEET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func decode[T any](t *testing.T, payload string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(payload), &v); err != nil {
		t.Fatalf("decode %q: %v", payload, err)
	}
	return v
}

// cuttable records the box's TCP connections so a test can cut them
// without a DISCONNECT, as a pulled network cable or a crash would: the
// broker sees the socket close, the box reads EOF.
type cuttable struct {
	mu    sync.Mutex
	conns []*cutConn
}

// cutConn reports EOF once cut; paho takes "use of closed network
// connection" for a close of its own and would not notice the loss.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.cut.Load() {
		return n, io.EOF
	}
	return n, err
}

func (c *cuttable) dial(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	conn, err := net.Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: conn}
	c.mu.Lock()
	c.conns = append(c.conns, cc)
	c.mu.Unlock()
	return cc, nil
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.cut.Store(true)
		_ = conn.Conn.Close()
	}
	c.conns = nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}
