// Package fleet connects the box to an operator's MQTT broker (MQTT 3.1.1,
// paho): presence with a Last Will, the retained status document, telemetry,
// events, commands with exactly one reply each, and Home Assistant
// discovery. The topic contract is docs/mqtt.md.
//
// The package manages its own connection instead of paho's auto-reconnect:
// paho's backoff has no jitter (a thousand boxes would reconnect in lockstep
// after a broker restart) and its memory store may reorder after a reconnect.
// Each connection is a fresh clean session; QoS 1 events and replies wait in
// an ordered outbox until the broker acknowledges them.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/status"
)

// Tunables of the contract (docs/mqtt.md).
const (
	// statusMinInterval spaces status publishes that no state change asked for.
	statusMinInterval = time.Second
	// replyMemoryTTL is how long a command id is remembered.
	replyMemoryTTL = 10 * time.Minute
	// replyMemoryMax bounds the remembered replies.
	replyMemoryMax = 4096
	// outboxMax bounds the QoS 1 messages kept while the broker is away.
	outboxMax = 1000
	// inboundMax bounds commands waiting to run; more are refused as busy.
	inboundMax = 64
	// commandTimeout bounds one command (going live waits for a keyframe).
	commandTimeout = time.Minute
	// discoveryDelayMax spreads the discovery re-send after Home Assistant
	// restarts, so a fleet does not answer all at once.
	discoveryDelayMax = 5 * time.Second
	// quickTimeout bounds broker round trips that must not hold up a stop.
	quickTimeout = 5 * time.Second
)

// ErrNoBroker is returned by New when mqtt.broker is empty: MQTT is off.
var ErrNoBroker = errors.New("fleet: no MQTT broker configured (mqtt.broker is empty)")

// Options configure a Client.
type Options struct {
	// Config is the mqtt section of the config file.
	Config config.MQTT
	// DeviceID names the box in topics; neither "fleet" nor "group".
	DeviceID string
	// Status builds the full status document now.
	Status func() status.Document
	// Changes returns a channel closed at the next status change (adapt
	// broadcast.Hub.Status). Nil: the status is only polled once a second.
	Changes func() <-chan struct{}
	// Telemetry returns the counters of the telemetry message; CPU and RSS
	// are filled in here when left zero. Nil: fps, bitrate and viewers are
	// taken from the status document.
	Telemetry func() Telemetry
	// Commands carries out commands; nil refuses every command.
	Commands Controller
	// Clock is real time when nil.
	Clock Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
	// BootID names this run of the daemon in events (their seq starts at 1
	// with it); empty: a random one.
	BootID string
	// OutboxDir keeps events and replies that wait for the broker on disk,
	// so they survive a daemon restart (<data_dir>/mqtt-outbox on the data
	// partition); empty: in memory only.
	OutboxDir string
	// MinBackoff and MaxBackoff bound the wait between connection attempts;
	// zero: 1 s and 2 min.
	MinBackoff, MaxBackoff time.Duration

	// dial replaces paho's connection opener (tests cut connections).
	dial mqtt.OpenConnectionFunc
}

// Stats are counters for logs and metrics.
type Stats struct {
	Connected bool
	// Connects counts successful connections (the first and reconnects).
	Connects uint64
	// ConnectFailures counts failed connection attempts.
	ConnectFailures uint64
	// StatusPublished counts status documents the broker acknowledged.
	StatusPublished uint64
	// TelemetrySkipped counts telemetry messages not sent while offline.
	TelemetrySkipped uint64
	// Commands counts commands answered (including refused ones).
	Commands uint64
	// OutboxQueued is the number of events and replies waiting for the broker.
	OutboxQueued int
	// OutboxDropped counts events and replies dropped because the outbox was full.
	OutboxDropped uint64
}

// Client is the box's fleet connection. Use New, then Run; Close stops it.
type Client struct {
	opt    Options
	log    *slog.Logger
	clock  Clock
	topics topics
	bootID string

	outbox     *outbox
	inbound    chan inbound
	haOnline   chan struct{}
	statusKick chan struct{}
	staleWill  chan struct{}
	replies    *replyMemory // only the command loop touches it

	seqMu sync.Mutex
	seq   uint64

	mu          sync.Mutex
	conn        mqtt.Client // nil while not connected
	connChanged chan struct{}

	rndMu sync.Mutex
	rnd   *mrand.Rand

	lastStatusKey   []byte // only the status loop touches it
	lastCPUSeconds  float64
	lastCPUAt       time.Time
	connects        atomic.Uint64
	connectFailures atomic.Uint64
	statusPublished atomic.Uint64
	telemetrySkips  atomic.Uint64
	commands        atomic.Uint64

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

// inbound is a command as it came off the network.
type inbound struct {
	name     string
	payload  []byte
	retained bool
}

// New checks the options and makes a client; nothing connects before Run.
func New(opt Options) (*Client, error) {
	cfg := opt.Config
	if cfg.Broker == "" {
		return nil, ErrNoBroker
	}
	if err := checkDeviceID(opt.DeviceID); err != nil {
		return nil, err
	}
	if cfg.BaseTopic == "" {
		cfg.BaseTopic = "onair"
	}
	if strings.ContainsAny(cfg.BaseTopic, "+#") {
		return nil, fmt.Errorf("fleet: base topic %q must not contain + or #", cfg.BaseTopic)
	}
	for _, g := range cfg.Groups {
		if g == "" || strings.ContainsAny(g, "+#/") {
			return nil, fmt.Errorf("fleet: group %q must be non-empty without +, # or /", g)
		}
	}
	if cfg.TelemetryInterval.D() <= 0 {
		cfg.TelemetryInterval = config.Duration(10 * time.Second)
	}
	if _, err := tlsConfig(cfg); err != nil { // refuse bad files now, not at every attempt
		return nil, err
	}
	opt.Config = cfg
	if opt.Status == nil {
		return nil, errors.New("fleet: Options.Status is required")
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 2 * time.Minute
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = opt.MinBackoff
	}
	if opt.BootID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
		opt.BootID = hex.EncodeToString(b[:])
	}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	box, err := newOutbox(outboxMax, opt.OutboxDir)
	if err != nil {
		return nil, err
	}
	return &Client{
		opt: opt, log: opt.Logger.With("component", "fleet"), clock: opt.Clock,
		topics: newTopics(cfg.BaseTopic, opt.DeviceID, cfg.Groups), bootID: opt.BootID,
		outbox:      box,
		inbound:     make(chan inbound, inboundMax),
		haOnline:    make(chan struct{}, 1),
		staleWill:   make(chan struct{}, 1),
		statusKick:  make(chan struct{}, 1),
		replies:     newReplyMemory(replyMemoryTTL, replyMemoryMax),
		connChanged: make(chan struct{}),
		rnd:         mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
	}, nil
}

// HubChanges adapts broadcast.Hub.Status to Options.Changes.
func HubChanges(h *broadcast.Hub) func() <-chan struct{} {
	return func() <-chan struct{} {
		_, changed := h.Status()
		return changed
	}
}

// checkDeviceID refuses ids that would collide with the fleet-wide topics
// or break topic syntax.
func checkDeviceID(id string) error {
	switch {
	case id == "":
		return errors.New("fleet: device id is empty")
	case id == "fleet" || id == "group":
		return fmt.Errorf("fleet: %q is not a valid device id: it is reserved for fleet-wide topics", id)
	case len(id) > 64:
		return fmt.Errorf("fleet: device id %q is longer than 64 bytes", id)
	case strings.ContainsAny(id, "/+#"):
		return fmt.Errorf("fleet: device id %q must not contain /, + or #", id)
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("fleet: device id %q must not contain spaces or control characters", id)
	}
	return nil
}

// BootID returns the id that this run's events carry.
func (c *Client) BootID() string { return c.bootID }

// Run connects and keeps the box connected until ctx ends or Close is
// called; then it publishes offline itself and disconnects. It returns nil
// after a clean stop.
func (c *Client) Run(ctx context.Context) error {
	c.runMu.Lock()
	if c.done != nil || c.closed {
		c.runMu.Unlock()
		return errors.New("fleet: Run called twice or after Close")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	done := c.done
	c.runMu.Unlock()
	defer close(done)
	defer cancel()

	c.log.Info("mqtt starting", "broker", c.opt.Config.Broker, "device_id", c.opt.DeviceID,
		"base_topic", c.opt.Config.BaseTopic, "groups", c.opt.Config.Groups, "boot", c.bootID)
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){c.statusLoop, c.telemetryLoop, c.commandLoop, c.outboxLoop, c.discoveryLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	last := c.connectionLoop(ctx)
	wg.Wait()
	if last != nil {
		c.setCurrent(nil)
		c.stopClean(last)
	}
	c.log.Info("mqtt stopped")
	return nil
}

// Close stops Run and waits for it; a Run after Close returns at once.
func (c *Client) Close() error {
	c.runMu.Lock()
	cancel, done := c.cancel, c.done
	c.closed = true
	c.runMu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// Stats returns the counters now.
func (c *Client) Stats() Stats {
	cl, _ := c.current()
	queued, dropped := c.outbox.stats()
	return Stats{
		Connected: cl != nil, Connects: c.connects.Load(), ConnectFailures: c.connectFailures.Load(),
		StatusPublished: c.statusPublished.Load(), TelemetrySkipped: c.telemetrySkips.Load(),
		Commands: c.commands.Load(), OutboxQueued: queued, OutboxDropped: dropped,
	}
}

// Connected tells whether the box is connected to the broker now (the
// update agent's "can still reach the fleet" health check).
func (c *Client) Connected() bool {
	conn, _ := c.current()
	return conn != nil
}

// current returns the connected client (nil while down) and a channel
// closed at the next change of it.
func (c *Client) current() (mqtt.Client, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.connChanged
}

func (c *Client) setCurrent(cl mqtt.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cl
	close(c.connChanged)
	c.connChanged = make(chan struct{})
}

func (c *Client) random(n time.Duration) time.Duration {
	c.rndMu.Lock()
	defer c.rndMu.Unlock()
	if n <= 0 {
		return 0
	}
	return time.Duration(c.rnd.Int64N(int64(n)))
}

func (c *Client) backoff(attempt int) time.Duration {
	c.rndMu.Lock()
	defer c.rndMu.Unlock()
	return backoff(attempt, c.opt.MinBackoff, c.opt.MaxBackoff, c.rnd)
}

// sleep waits d on the clock; false when ctx ended first.
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-c.clock.After(d):
		return true
	}
}

// connectionLoop connects, and after every failure or loss waits a growing,
// jittered delay before the next attempt. It returns the live connection
// (or nil) when ctx ends.
func (c *Client) connectionLoop(ctx context.Context) mqtt.Client {
	attempt := 0
	for {
		cl, lost, err := c.connect(ctx)
		if ctx.Err() != nil {
			return cl
		}
		if err != nil {
			c.connectFailures.Add(1)
			wait := c.backoff(attempt)
			if attempt == 0 {
				c.log.Warn("mqtt connect failed; retrying with backoff", "broker", c.opt.Config.Broker, "error", err, "retry_in", wait)
			} else {
				c.log.Debug("mqtt connect failed", "error", err, "attempt", attempt+1, "retry_in", wait)
			}
			attempt++
			if !c.sleep(ctx, wait) {
				return nil
			}
			continue
		}
		c.connects.Add(1)
		c.log.Info("mqtt connected", "broker", c.opt.Config.Broker, "after_attempts", attempt+1)
		attempt = 0
		c.setCurrent(cl)
		select {
		case c.statusKick <- struct{}{}:
		default:
		}
		if err := c.publishDiscovery(ctx, cl); err != nil {
			c.log.Warn("home assistant discovery not published", "error", err)
		}
	connected:
		for {
			select {
			case <-ctx.Done():
				return cl
			case <-c.staleWill:
				// The broker published our previous connection's Will after
				// this one came up (it noticed the old one late, or took the
				// session over): say online again so the retained value is right.
				c.log.Info("mqtt stale Last Will seen; publishing online again")
				if err := wait(ctx, cl.Publish(c.topics.availability, 1, true, "online")); err != nil && ctx.Err() == nil {
					c.log.Warn("mqtt online not republished", "error", err)
				}
			case <-lost:
				break connected
			}
		}
		c.setCurrent(nil)
		// Everybody lost the broker at the same moment: wait a random part
		// of the first delay before coming back.
		wait := c.backoff(0)
		c.log.Warn("mqtt connection lost; reconnecting", "retry_in", wait)
		if !c.sleep(ctx, wait) {
			return nil
		}
	}
}

// connect makes one connection: a fresh paho client with the Last Will,
// subscribed to the command topics, with online published.
func (c *Client) connect(ctx context.Context) (mqtt.Client, <-chan struct{}, error) {
	cfg := c.opt.Config
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	lost := make(chan struct{})
	var lostOnce sync.Once
	o := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID("onair-"+c.opt.DeviceID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(keepAlive(cfg.KeepAlive.D())).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetOrderMatters(true). // commands reach the queue in arrival order; the handler never blocks
		SetWill(c.topics.availability, "offline", 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.log.Debug("mqtt connection lost", "error", err)
			lostOnce.Do(func() { close(lost) })
		})
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	if c.opt.dial != nil {
		o.SetCustomOpenConnectionFn(c.opt.dial)
	}
	cl := mqtt.NewClient(o)
	// The connect timeout bounds this wait, so a stop is never held long.
	if tok := cl.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		cl.Disconnect(0)
		if tok.Error() != nil {
			return nil, nil, fmt.Errorf("connect to %s: %w", cfg.Broker, tok.Error())
		}
		return nil, nil, fmt.Errorf("connect to %s: timed out", cfg.Broker)
	}
	fail := func(what string, err error) (mqtt.Client, <-chan struct{}, error) {
		cl.Disconnect(0)
		return nil, nil, fmt.Errorf("%s on %s: %w", what, cfg.Broker, err)
	}
	filters := map[string]byte{haStatusTopic: 1, c.topics.availability: 1}
	for _, f := range c.topics.commandFilters {
		filters[f] = 1
	}
	sub := cl.SubscribeMultiple(filters, c.onMessage)
	if err := wait(ctx, sub); err != nil {
		return fail("subscribe", err)
	}
	for topic, code := range sub.(*mqtt.SubscribeToken).Result() {
		if code >= 0x80 {
			return fail("subscribe", fmt.Errorf("broker refused %s (check its ACL)", topic))
		}
	}
	if err := wait(ctx, cl.Publish(c.topics.availability, 1, true, "online")); err != nil {
		return fail("publish online", err)
	}
	return cl, lost, nil
}

// wait waits for a token, or for ctx.
func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopClean publishes offline itself (the broker drops the Will on a clean
// DISCONNECT) and disconnects.
func (c *Client) stopClean(cl mqtt.Client) {
	if cl.IsConnectionOpen() {
		tok := cl.Publish(c.topics.availability, 1, true, "offline")
		if !tok.WaitTimeout(quickTimeout) || tok.Error() != nil {
			c.log.Warn("mqtt offline not published on stop", "error", tok.Error())
		}
	}
	cl.Disconnect(250)
}

// onMessage runs on paho's network goroutine: it only hands messages on.
func (c *Client) onMessage(_ mqtt.Client, m mqtt.Message) {
	topic := m.Topic()
	if topic == haStatusTopic {
		if strings.TrimSpace(string(m.Payload())) == "online" {
			select {
			case c.haOnline <- struct{}{}:
			default:
			}
		}
		return
	}
	if topic == c.topics.availability {
		// A retained offline at subscribe time predates our online; a live
		// one is a stale Will and must be answered.
		if !m.Retained() && string(m.Payload()) == "offline" {
			select {
			case c.staleWill <- struct{}{}:
			default:
			}
		}
		return
	}
	name := topic[strings.LastIndexByte(topic, '/')+1:]
	if len(name) > 64 {
		name = name[:64]
	}
	in := inbound{name: name, payload: m.Payload(), retained: m.Retained()}
	select {
	case c.inbound <- in:
	default:
		cmd, _ := parseCommand(in.name, in.payload)
		c.reply(Reply{ID: cmd.ID, Cmd: in.name, Error: "busy: too many commands waiting, try again"})
	}
}

func (c *Client) commandLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-c.inbound:
			c.handle(ctx, in)
		}
	}
}

// handle answers one command exactly once.
func (c *Client) handle(ctx context.Context, in inbound) {
	c.commands.Add(1)
	cmd, err := parseCommand(in.name, in.payload)
	if err == nil && in.retained {
		// A retained command would run again at every reconnect.
		err = errors.New("retained command refused: publish commands without the retain flag")
	}
	if err == nil && c.opt.Commands == nil {
		err = errors.New("this box takes no commands")
	}
	if err != nil {
		c.log.Warn("mqtt command refused", "cmd", in.name, "id", cmd.ID, "error", err)
		c.reply(Reply{ID: cmd.ID, Cmd: in.name, Error: err.Error()})
		return
	}
	if cmd.ID != "" {
		if r, ok := c.replies.get(cmd.ID, c.clock.Now()); ok {
			c.log.Info("mqtt command id seen before: answered from memory, not run again", "cmd", in.name, "id", cmd.ID)
			c.reply(r)
			return
		}
	}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	err = cmd.run(cctx, c.opt.Commands)
	cancel()
	r := Reply{ID: cmd.ID, Cmd: cmd.Name, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
		c.log.Warn("mqtt command failed", "cmd", cmd.Name, "id", cmd.ID, "error", err)
	} else {
		c.log.Info("mqtt command done", "cmd", cmd.Name, "id", cmd.ID)
	}
	if cmd.ID != "" {
		c.replies.put(cmd.ID, r, c.clock.Now())
	}
	c.reply(r)
}

func (c *Client) reply(r Reply) {
	payload, err := json.Marshal(r)
	if err != nil { // a struct of strings and a bool always marshals
		c.log.Error("mqtt reply not encoded", "error", err)
		return
	}
	if err := c.outbox.push(message{topic: c.topics.reply, payload: payload}); err != nil {
		c.log.Warn("mqtt reply kept in memory only", "error", err)
	}
}

// outboxLoop publishes queued events and replies one at a time, in order,
// removing each only once the broker has acknowledged it.
func (c *Client) outboxLoop(ctx context.Context) {
	for {
		m, ok := c.outbox.head()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-c.outbox.ready:
			}
			continue
		}
		cl, changed := c.current()
		if cl == nil {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		if err := wait(ctx, cl.Publish(m.topic, 1, false, m.payload)); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The connection is going away; the next one sends it again.
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-c.clock.After(quickTimeout):
			}
			continue
		}
		c.outbox.pop(m)
	}
}

func (c *Client) statusLoop(ctx context.Context) {
	changes := c.changes()
	tick := c.clock.After(statusMinInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			// Take the next channel before reading the status, so that a
			// change while publishing is published after it; a burst of
			// changes during one publish becomes one more publish.
			changes = c.changes()
			c.publishStatus(ctx, false)
		case <-c.statusKick:
			c.publishStatus(ctx, true)
		case <-tick:
			tick = c.clock.After(statusMinInterval)
			c.publishStatus(ctx, false)
		}
	}
}

func (c *Client) changes() <-chan struct{} {
	if c.opt.Changes == nil {
		return nil
	}
	return c.opt.Changes()
}

// publishStatus publishes the status when it differs from the last one
// published (uptime aside, which changes every second), or when forced
// after a (re)connect.
func (c *Client) publishStatus(ctx context.Context, force bool) {
	doc := c.opt.Status()
	payload, err := json.Marshal(doc)
	if err != nil {
		c.log.Error("status not encoded", "error", err)
		return
	}
	doc.UptimeS = 0
	key, _ := json.Marshal(doc)
	if !force && string(key) == string(c.lastStatusKey) {
		return
	}
	cl, _ := c.current()
	if cl == nil {
		return // published on connect
	}
	if err := wait(ctx, cl.Publish(c.topics.status, 1, true, payload)); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("status not published", "error", err)
		}
		return
	}
	c.lastStatusKey = key
	c.statusPublished.Add(1)
}

func (c *Client) telemetryLoop(ctx context.Context) {
	interval := c.opt.Config.TelemetryInterval.D()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(interval):
		}
		cl, _ := c.current()
		if cl == nil {
			// QoS 0 and stale by the time the broker is back: never queued.
			c.telemetrySkips.Add(1)
			continue
		}
		payload, err := json.Marshal(c.telemetry())
		if err != nil {
			c.log.Error("telemetry not encoded", "error", err)
			continue
		}
		// paho reports QoS 0 as sent even when the connection is going
		// away; losing one sample is what QoS 0 means.
		cl.Publish(c.topics.telemetry, 0, false, payload)
	}
}

func (c *Client) discoveryLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.haOnline:
		}
		// Home Assistant restarted and asks everybody again: answer after
		// a random delay so that a fleet does not answer at once.
		if !c.sleep(ctx, c.random(discoveryDelayMax)) {
			return
		}
		cl, _ := c.current()
		if cl == nil {
			continue // published on connect anyway
		}
		if err := c.publishDiscovery(ctx, cl); err != nil {
			c.log.Warn("home assistant discovery not published", "error", err)
		}
	}
}

func (c *Client) publishDiscovery(ctx context.Context, cl mqtt.Client) error {
	topic, payload, err := c.discovery()
	if err != nil {
		return err
	}
	if err := wait(ctx, cl.Publish(topic, 1, true, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// keepAlive is the MQTT keepalive: how long a box that hangs or loses its
// network without closing the connection stays "online" is about 1.5 times
// this. 0 means the default of 30 s.
func keepAlive(d time.Duration) time.Duration {
	if d <= 0 {
		return 30 * time.Second
	}
	return d
}
