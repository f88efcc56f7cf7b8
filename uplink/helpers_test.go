package uplink

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// fakeClock is a manual Clock: timers fire when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{}
}

type fakeTimer struct {
	at   time.Time
	d    time.Duration
	f    func()
	done bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1000, 0), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// Advance moves time on and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// waitBackoff waits for a pending timer longer than the controller's tick
// (a backoff delay) and returns its duration.
func (c *fakeClock) waitBackoff(ctx context.Context, t *testing.T) time.Duration {
	t.Helper()
	for {
		c.mu.Lock()
		changed := c.changed
		for _, tm := range c.timers {
			if !tm.done && tm.d > controlInterval {
				c.mu.Unlock()
				return tm.d
			}
		}
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for a backoff timer: %v", ctx.Err())
		}
	}
}

// publisher plays the encoder: 30 fps of H.264-shaped access units whose
// size follows the bitrate the uplink sets, keyframes when the hub asks,
// and 20 ms Opus-sized packets. The pictures are not decodable; their NAL
// types and sizes are what the uplink and the test server look at.
type publisher struct {
	hub         *broadcast.Hub
	bitrateKbps atomic.Int64
	keyframes   atomic.Int64
	cancel      context.CancelFunc
	done        chan struct{}
}

func startPublisher(hub *broadcast.Hub, kbps int) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{hub: hub, cancel: cancel, done: make(chan struct{})}
	p.bitrateKbps.Store(int64(kbps))
	go p.run(ctx)
	return p
}

func (p *publisher) SetBitrate(kbps int) { p.bitrateKbps.Store(int64(kbps)) }

func (p *publisher) stop() { p.cancel(); <-p.done }

func (p *publisher) run(ctx context.Context) {
	defer close(p.done)
	const fps = 30
	tick := time.NewTicker(time.Second / fps / 2) // alternate video and audio-ish pacing
	defer tick.Stop()
	start := time.Now()
	var frame, lastKey int
	var nextAudio time.Duration
	fill := byte(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Since(start)
		for nextAudio <= now {
			p.hub.Publish(media.Sample{Kind: media.Audio, Data: make([]byte, 120), Capture: nextAudio, Duration: 20 * time.Millisecond})
			nextAudio += 20 * time.Millisecond
		}
		capture := time.Duration(frame) * time.Second / fps
		if capture > now {
			continue
		}
		key := p.hub.KeyframeDue(capture) || frame-lastKey >= 2*fps
		size := int(p.bitrateKbps.Load()) * 1000 / 8 / fps
		var data []byte
		if key {
			lastKey = frame
			p.keyframes.Add(1)
			data = h264.AppendAnnexB(data, []byte{0x67, 0x42, 0xc0, 0x1f})
			data = h264.AppendAnnexB(data, []byte{0x68, 0xce, 0x3c, 0x80})
			data = h264.AppendAnnexB(data, nalOfSize(0x65, 3*size, fill))
		} else {
			data = h264.AppendAnnexB(data, nalOfSize(0x41, size, fill))
		}
		fill = fill%250 + 1
		p.hub.Publish(media.Sample{Kind: media.Video, Data: data, Capture: capture, Duration: time.Second / fps, Keyframe: key})
		frame++
	}
}

// nalOfSize is a NAL unit of the given type and size with no zero bytes in
// it, so no start code appears inside.
func nalOfSize(header byte, size int, fill byte) []byte {
	nal := make([]byte, max(size, 2))
	nal[0] = header
	for i := 1; i < len(nal); i++ {
		nal[i] = fill
	}
	return nal
}

// rig is a live-capable hub fed by a publisher.
type rig struct {
	hub *broadcast.Hub
	pub *publisher
}

func newRig(t *testing.T, kbps int) *rig {
	t.Helper()
	hub := broadcast.New(broadcast.Options{KeyframeMinInterval: 100 * time.Millisecond})
	r := &rig{hub: hub, pub: startPublisher(hub, kbps)}
	t.Cleanup(r.pub.stop)
	return r
}

func (r *rig) goLive(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.hub.GoLive(ctx, broadcast.LiveOptions{Title: "test"}); err != nil {
		t.Fatalf("go live: %v", err)
	}
}

func (r *rig) stopLive(t *testing.T) {
	t.Helper()
	if _, err := r.hub.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// statusLog records every status the uplink reports, in order.
type statusLog struct {
	mu   sync.Mutex
	list []Status
}

func (l *statusLog) add(s Status) {
	l.mu.Lock()
	l.list = append(l.list, s)
	l.mu.Unlock()
}

// states is the sequence of distinct states reported.
func (l *statusLog) states() []State {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []State
	for _, s := range l.list {
		if len(out) == 0 || out[len(out)-1] != s.State {
			out = append(out, s.State)
		}
	}
	return out
}

// running is an uplink whose Run goroutine the test owns.
type running struct {
	*Uplink
	cancel context.CancelFunc
	done   chan error
}

func startUplink(t testing.TB, opt Options) *running {
	t.Helper()
	if opt.Logger == nil {
		level := slog.LevelWarn
		if testing.Verbose() {
			level = slog.LevelInfo
		}
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	u, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Uplink: u, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- u.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // a second stop returns at once
}

// waitState waits until the uplink reports state want and returns that
// status.
func waitState(ctx context.Context, t testing.TB, u *Uplink, want State) Status {
	t.Helper()
	for {
		st, changed := u.Status()
		if st.State == want {
			return st
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for uplink state %s (now %s, error %q): %v", want, st.State, st.Error, ctx.Err())
		}
	}
}

// waitFor waits until the uplink's status satisfies ok and returns it.
func waitFor(ctx context.Context, t *testing.T, u *Uplink, what string, ok func(Status) bool) Status {
	t.Helper()
	for {
		st, changed := u.Status()
		if ok(st) {
			return st
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for uplink %s (now %+v): %v", what, st, ctx.Err())
		}
	}
}

// waitFailures waits for state retrying after the nth failed attempt.
func waitFailures(ctx context.Context, t *testing.T, u *Uplink, n int) Status {
	t.Helper()
	return waitFor(ctx, t, u, "retrying after failure "+strconv.Itoa(n), func(s Status) bool {
		return s.State == Retrying && s.Failures >= n
	})
}
