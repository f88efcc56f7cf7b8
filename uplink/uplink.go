// Package uplink pushes the broadcast to a media server over WHIP (RFC 9725)
// so that a server (MediaMTX, LiveKit, Janus, Cloudflare Stream, ...) can fan
// it out to audiences larger than the box serves itself. It is one more sink
// of the broadcast hub: it follows the hub's live state, reconnects with
// capped exponential backoff when the server or the network fails, and steers
// the shared encoder's bitrate from the server's congestion feedback.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/broadcast"
)

// State is where the uplink stands.
type State string

// The uplink's states.
const (
	// Off: the box is not live (or no uplink runs); nothing is sent.
	Off State = "off"
	// Connecting: an offer is on its way or ICE/DTLS are being set up;
	// also while a session hears nothing from the server (Status.Error
	// says so), until it answers again (up) or the session ends (retrying).
	Connecting State = "connecting"
	// Up: media flows to the server.
	Up State = "up"
	// Retrying: the last attempt failed (Status.Error says why); the next
	// one starts after a backoff delay.
	Retrying State = "retrying"
)

// Hub is what the uplink needs of the broadcast hub (*broadcast.Hub).
type Hub interface {
	// Status is the broadcast's state and a channel closed at its next change.
	Status() (broadcast.Status, <-chan struct{})
	// AddSink registers a consumer that starts at the next keyframe.
	AddSink(broadcast.SinkOptions) *broadcast.Sink
	// RequestKeyframe asks the encoder for a keyframe (PLI, FIR, reconnect).
	RequestKeyframe()
}

// Backoff shapes the delays between failed attempts: Initial, doubling up
// to Max, each spread by ±Jitter (a fraction) so that a fleet of boxes that
// lost the same server does not come back in lockstep.
type Backoff struct {
	Initial time.Duration // default 1 s
	Max     time.Duration // default 30 s
	Jitter  float64       // default 0.2; negative: none
}

// Delay is the wait before retry number attempt (0 for the first retry);
// r in [0, 1) picks the jitter.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	d := float64(b.Initial) * math.Pow(2, float64(min(attempt, 30)))
	d = min(d, float64(b.Max))
	return time.Duration(d * (1 + b.Jitter*(2*r-1)))
}

// Options configure an uplink.
type Options struct {
	// URL is the WHIP endpoint (uplink.whip_url). A user and password in it
	// (https://user:pass@host/...) are sent as Basic auth, which MediaMTX's
	// internal users need; logs and errors never show the password.
	URL string
	// BearerToken is sent as Authorization: Bearer when set.
	BearerToken string
	// ICEServers are STUN/TURN servers (webrtc.ice_servers).
	ICEServers []webrtc.ICEServer
	// MinBitrateKbps and MaxBitrateKbps bound the encoder bitrate chosen
	// from congestion feedback (uplink.min_bitrate_kbps, max_bitrate_kbps).
	MinBitrateKbps, MaxBitrateKbps int
	// StartBitrateKbps is the encoder's configured bitrate
	// (video.bitrate_kbps): adaptation starts there (within min and max) and
	// the encoder goes back to it when the broadcast ends.
	StartBitrateKbps int
	// Hub is the broadcast hub.
	Hub Hub
	// SetBitrate sets the encoder bitrate (pipeline.SetBitrate); nil leaves
	// the bitrate alone (the chosen value is still reported).
	SetBitrate func(kbps int)
	// SetFrameDivisor makes the encoder send every n-th picture (1: all);
	// the uplink lowers the frame rate this way when even MinBitrateKbps
	// does not fit, before the picture would freeze. nil: never.
	SetFrameDivisor func(n int)
	// Backoff between failed attempts; zero fields take their defaults.
	Backoff Backoff
	// Clock times the backoff and the bitrate controller; nil is real time.
	Clock Clock
	// HTTPClient carries the WHIP requests; nil is a client with a 10 s timeout.
	HTTPClient *http.Client
	// Net is the network the peer connection uses (pion's vnet in tests);
	// nil is the host's.
	Net transport.Net
	// OnStatus, when set, is called with every status change, in order, on
	// the uplink's goroutine; it must not block.
	OnStatus func(Status)
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

// Status is a snapshot of the uplink, for the status document and metrics.
type Status struct {
	// State is off, connecting, up or retrying.
	State State
	// Error is why the last attempt failed; kept while retrying and
	// connecting again, cleared when media flows.
	Error string
	// BitrateKbps is the encoder bitrate the uplink chose (0 while off).
	BitrateKbps int
	// FrameDivisor is 1 at the full frame rate, n when only every n-th
	// picture is sent because even the minimum bitrate does not fit.
	FrameDivisor int
	// EstimateKbps is the latest congestion estimate of the whole
	// connection (TWCC/GCC, else REMB); 0 when there is none. Its changes
	// alone do not wake Status watchers or call OnStatus.
	EstimateKbps int
	// Failures counts failed attempts since media last flowed steadily.
	Failures int
	// DownSince is when (on Options.Clock) the uplink, live, last stopped
	// sending or began trying; zero while up or off. The LED's "uplink
	// down" pattern compares it with its threshold.
	DownSince time.Time
}

// Uplink is the WHIP client. Make it with New, run it with Run.
type Uplink struct {
	opt      Options
	endpoint *url.URL
	log      *slog.Logger
	clock    Clock

	mu      sync.Mutex
	status  Status
	changed chan struct{}
}

// stableAfter is how long a connection must carry media before a later
// failure starts the backoff from the beginning again: a server that
// accepts and drops at once is not retried at full speed forever.
const stableAfter = 10 * time.Second

// New checks the options and makes an uplink in state off.
func New(opt Options) (*Uplink, error) {
	endpoint, err := url.Parse(opt.URL)
	if err != nil {
		return nil, fmt.Errorf("uplink: WHIP URL: %w", err)
	}
	if (endpoint.Scheme != "http" && endpoint.Scheme != "https") || endpoint.Host == "" {
		// Redacted: the URL may carry a password (Basic auth for MediaMTX).
		return nil, fmt.Errorf("uplink: WHIP URL %q is not an http(s) URL", endpoint.Redacted())
	}
	if opt.Hub == nil {
		return nil, errors.New("uplink: no hub")
	}
	if opt.MinBitrateKbps <= 0 || opt.MaxBitrateKbps < opt.MinBitrateKbps {
		return nil, fmt.Errorf("uplink: bitrate bounds %d..%d kbps are not a range", opt.MinBitrateKbps, opt.MaxBitrateKbps)
	}
	if opt.StartBitrateKbps <= 0 {
		opt.StartBitrateKbps = opt.MaxBitrateKbps
	}
	if opt.Backoff.Initial <= 0 {
		opt.Backoff.Initial = time.Second
	}
	if opt.Backoff.Max <= 0 {
		opt.Backoff.Max = 30 * time.Second
	}
	opt.Backoff.Max = max(opt.Backoff.Max, opt.Backoff.Initial)
	if opt.Backoff.Jitter == 0 {
		opt.Backoff.Jitter = 0.2
	}
	opt.Backoff.Jitter = min(max(opt.Backoff.Jitter, 0), 1)
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	u := &Uplink{opt: opt, endpoint: endpoint, log: opt.Logger, clock: opt.Clock, status: Status{State: Off}, changed: make(chan struct{})}
	if u.log == nil {
		u.log = slog.Default()
	}
	if u.clock == nil {
		u.clock = realClock{}
	}
	u.log = u.log.With("component", "uplink")
	return u, nil
}

// Status returns the current status and a channel closed at its next change.
func (u *Uplink) Status() (Status, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status, u.changed
}

func (u *Uplink) update(change func(*Status)) {
	u.mu.Lock()
	before := u.status
	change(&u.status)
	st := u.status
	// The estimate moves with every feedback packet; watchers (MQTT
	// status, the console) are woken only for what they show as changes.
	before.EstimateKbps = st.EstimateKbps
	if st == before {
		u.mu.Unlock()
		return
	}
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
	if u.opt.OnStatus != nil {
		u.opt.OnStatus(st)
	}
}

// Run follows the hub until ctx ends (one Run at a time per Uplink): each time the broadcast goes live it
// connects to the WHIP server and sends until the broadcast stops
// (DELETE of the session), reconnecting after failures. It returns nil
// when ctx ends, having ended the session.
func (u *Uplink) Run(ctx context.Context) error {
	defer u.update(func(s *Status) { *s = Status{State: Off} })
	for {
		if !u.waitLive(ctx) {
			return nil
		}
		liveCtx, done := u.whileLive(ctx)
		u.runLive(liveCtx)
		done()
		u.setBitrate(u.opt.StartBitrateKbps)
		u.setFrameDivisor(1)
		u.update(func(s *Status) { *s = Status{State: Off} })
		if ctx.Err() != nil {
			return nil
		}
	}
}

// waitLive blocks until the broadcast is live (true) or ctx ends (false).
func (u *Uplink) waitLive(ctx context.Context) bool {
	for {
		st, changed := u.opt.Hub.Status()
		if st.State == broadcast.Live {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// whileLive is a context that ends when the broadcast leaves live; done
// releases its watcher.
func (u *Uplink) whileLive(ctx context.Context) (context.Context, func()) {
	liveCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for {
			st, changed := u.opt.Hub.Status()
			if st.State != broadcast.Live {
				return
			}
			select {
			case <-changed:
			case <-liveCtx.Done():
				return
			}
		}
	}()
	return liveCtx, func() { cancel(); wg.Wait() }
}

// runLive connects, sends and reconnects until ctx ends.
func (u *Uplink) runLive(ctx context.Context) {
	ctrl := newController(u.opt.MinBitrateKbps, u.opt.MaxBitrateKbps, u.opt.StartBitrateKbps)
	u.setBitrate(ctrl.chosenKbps)
	now := u.clock.Now()
	u.update(func(s *Status) {
		*s = Status{State: Connecting, BitrateKbps: ctrl.chosenKbps, FrameDivisor: 1, DownSince: now}
	})
	failures := 0
	for {
		err := u.attempt(ctx, ctrl, &failures)
		if ctx.Err() != nil {
			return
		}
		delay := u.opt.Backoff.Delay(failures-1, rand.Float64())
		u.log.Warn("uplink failed, retrying", "in", delay.Round(time.Millisecond), "failures", failures, "err", err)
		wake, stop := after(u.clock, delay)
		select {
		case <-wake:
		case <-ctx.Done():
			stop()
			return
		}
		u.update(func(s *Status) { s.State = Connecting })
	}
}

// attempt runs one WHIP session from offer to its end and returns why it
// ended. Unless ctx ended, the failure is counted in failures (the failed
// attempts since media last flowed steadily) and reported as retrying.
func (u *Uplink) attempt(ctx context.Context, ctrl *controller, failures *int) error {
	s, err := u.connect(ctx, ctrl.chosenKbps)
	if err != nil {
		if ctx.Err() == nil {
			u.failed(err, failures, 0)
		}
		return err
	}
	upAt := u.clock.Now()
	u.log.Info("uplink up", "url", u.endpoint.Redacted(), "bitrate_kbps", ctrl.chosenKbps)
	u.update(func(st *Status) {
		st.State, st.Error, st.DownSince = Up, "", time.Time{}
	})
	err = s.run(ctx, ctrl)
	if err != nil && ctx.Err() == nil {
		// Reported before the session is closed: its DELETE waits up to
		// deleteTimeout for a server that a cut link made unreachable,
		// and the status must not say up meanwhile.
		u.failed(err, failures, u.clock.Now().Sub(upAt))
	}
	s.close()
	return err
}

// failed counts a failed attempt after media flowed for upFor and reports
// the uplink as retrying.
func (u *Uplink) failed(err error, failures *int, upFor time.Duration) {
	if upFor >= stableAfter {
		*failures = 0
	}
	*failures++
	n := *failures
	now := u.clock.Now()
	u.update(func(s *Status) {
		s.State, s.Error, s.Failures, s.EstimateKbps = Retrying, err.Error(), n, 0
		if s.DownSince.IsZero() { // it was up: down from now on
			s.DownSince = now
		}
	})
}

func (u *Uplink) setFrameDivisor(n int) {
	if u.opt.SetFrameDivisor != nil {
		u.opt.SetFrameDivisor(n)
	}
}

func (u *Uplink) setBitrate(kbps int) {
	if u.opt.SetBitrate != nil {
		u.opt.SetBitrate(kbps)
	}
}
