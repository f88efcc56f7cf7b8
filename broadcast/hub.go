// Package broadcast is the hub of the box: the go-live state machine with its
// one entry point (used by the button, the HTTP API and MQTT alike) and the
// fan-out of encoded samples to every sink (viewers, uplink, recorder). It
// also decides when the encoder must make a keyframe. It knows nothing of
// any transport.
package broadcast

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// State is where the broadcast state machine stands.
type State string

// The states, in their usual order; error is reached when going live fails.
const (
	Idle      State = "idle"
	GoingLive State = "going_live"
	Live      State = "live"
	Stopping  State = "stopping"
	Error     State = "error"
)

// States lists every state, for metrics.
var States = []State{Idle, GoingLive, Live, Stopping, Error}

// Options configure a hub.
type Options struct {
	// KeyframeMinInterval spaces forced keyframes (joins, PLI/FIR).
	KeyframeMinInterval time.Duration
	// GoLiveTimeout bounds the wait for the first keyframe after going live;
	// default 3 s.
	GoLiveTimeout time.Duration
	// WallClock stamps live_since for display; nil means time.Now.
	WallClock func() time.Time
}

// LiveOptions are the arguments of going live.
type LiveOptions struct {
	Title string
	// Private keeps the broadcast to invited viewers.
	Private bool
}

// Status is a snapshot of the broadcast.
type Status struct {
	State State
	// BroadcastID names the current (or last) broadcast; empty before the first.
	BroadcastID string
	// Upcoming is the id the next go-live will use, known while idle so that
	// invites to a private broadcast can be made before it starts.
	Upcoming string
	Title    string
	// Private broadcasts are for invited viewers only.
	Private bool
	// LiveSince is the wall-clock time the broadcast went live (display only).
	LiveSince time.Time
	// Error is why the state is error, or a problem the broadcast goes on with.
	Error string
}

// Hub is the broadcast hub. The zero value is not usable; use New.
type Hub struct {
	opt Options

	mu       sync.RWMutex
	status   Status
	changed  chan struct{} // closed and replaced on every status change
	live     chan struct{} // closed when going_live reaches live
	sinks    []*Sink
	sps, pps []byte

	// Keyframe requests; guarded by keyMu so the encoder loop never waits
	// on the fan-out lock.
	keyMu         sync.Mutex
	keyPending    bool
	keyForceNow   bool
	keyLastForced time.Duration
	keyEverForced bool

	keyframesForced atomic.Uint64
	dropped         sync.Map // sink name -> *atomic.Uint64

	// recent is what was published since the latest keyframe, while that
	// keyframe is younger than KeyframeMinInterval (capture time): a sink
	// added meanwhile starts with it instead of waiting for a keyframe that
	// the spacing of forced keyframes would hold back. Updated in the
	// fan-out (under mu read-locked, so AddSink, which holds mu, sees it
	// match the sinks); recentMu orders the audio and video publishers.
	recentMu   sync.Mutex
	recent     []media.Sample
	recentLive bool // the keyframe was published while live
}

// New makes an idle hub.
func New(opt Options) *Hub {
	if opt.GoLiveTimeout == 0 {
		opt.GoLiveTimeout = 3 * time.Second
	}
	if opt.WallClock == nil {
		opt.WallClock = time.Now
	}
	h := &Hub{opt: opt, status: Status{State: Idle}, changed: make(chan struct{})}
	h.status.Upcoming = h.newID()
	return h
}

// newID names a broadcast: its start on the wall clock for people, and
// random bits so that ids stay unique when a box without a real-time clock
// starts in 1970 after every boot.
func (h *Hub) newID() string {
	var b [4]byte
	rand.Read(b[:])
	return h.opt.WallClock().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// BroadcastFor is the id invites and replays of "this broadcast" refer to:
// the current one while live, the upcoming one otherwise.
func (s Status) BroadcastFor() string {
	switch s.State {
	case GoingLive, Live, Stopping:
		return s.BroadcastID
	}
	return s.Upcoming
}

// Status returns the current status and a channel that is closed at the next
// change, so watchers (status pages, MQTT, the LED) need no polling.
func (h *Hub) Status() (Status, <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.status, h.changed
}

// setLocked changes the status and wakes watchers; h.mu is held.
func (h *Hub) setLocked(update func(*Status)) {
	update(&h.status)
	close(h.changed)
	h.changed = make(chan struct{})
}

// ErrBusy is returned when a command arrives while the state machine is
// between states (going live or stopping).
var ErrBusy = errors.New("broadcast: busy going live or stopping, try again")

// GoLive starts a broadcast and returns once the first keyframe has gone
// out, or with an error (the state is then error). Live while live is fine.
func (h *Hub) GoLive(ctx context.Context, opt LiveOptions) (Status, error) {
	h.mu.Lock()
	switch h.status.State {
	case Live:
		st := h.status
		h.mu.Unlock()
		return st, nil
	case GoingLive, Stopping:
		h.mu.Unlock()
		return Status{}, ErrBusy
	}
	// Ask for the keyframe before the state says going_live, so that the
	// keyframe which takes the box live also clears the request (Publish)
	// and no second one follows it. Going live is never held back by the
	// spacing.
	h.keyMu.Lock()
	h.keyForceNow = true
	h.keyMu.Unlock()
	id := h.status.Upcoming
	if id == "" {
		id = h.newID()
	}
	h.live = make(chan struct{})
	live := h.live
	for _, s := range h.sinks {
		s.restart()
	}
	h.setLocked(func(s *Status) {
		*s = Status{State: GoingLive, BroadcastID: id, Title: opt.Title, Private: opt.Private}
	})
	h.mu.Unlock()

	timer := time.NewTimer(h.opt.GoLiveTimeout)
	defer timer.Stop()
	var failure string
	select {
	case <-live:
		st, _ := h.Status()
		return st, nil
	case <-timer.C:
		failure = fmt.Sprintf("no video from the encoder within %s", h.opt.GoLiveTimeout)
	case <-ctx.Done():
		failure = "going live was cancelled: " + ctx.Err().Error()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status.State == Live { // the keyframe won the race
		return h.status, nil
	}
	h.setLocked(func(s *Status) { s.State = Error; s.Error = failure; s.Upcoming = h.newID() })
	return h.status, errors.New(failure)
}

// Stop ends the broadcast; stopping while idle is fine.
func (h *Hub) Stop(ctx context.Context) (Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.status.State {
	case Idle:
		return h.status, nil
	case GoingLive, Stopping:
		return h.status, ErrBusy
	}
	h.setLocked(func(s *Status) { s.State = Stopping })
	// Sinks stop receiving now; each waits for a keyframe when the next
	// broadcast starts.
	for _, s := range h.sinks {
		s.restart()
	}
	h.setLocked(func(s *Status) { s.State = Idle; s.Error = ""; s.Upcoming = h.newID() })
	return h.status, nil
}

// Toggle goes live when idle (or after an error) and stops when live: what
// one short press of the button does. A press while going live or stopping
// is ignored (ErrBusy), not queued.
func (h *Hub) Toggle(ctx context.Context) (Status, error) {
	st, _ := h.Status()
	switch st.State {
	case Live:
		return h.Stop(ctx)
	case GoingLive, Stopping:
		return st, ErrBusy
	default:
		return h.GoLive(ctx, LiveOptions{Title: st.Title, Private: st.Private})
	}
}

// CheckTitle is the rule for titles from every entry point: one line of at
// most 120 characters.
func CheckTitle(t string) error {
	if len([]rune(t)) > 120 {
		return errors.New("title longer than 120 characters")
	}
	if strings.ContainsAny(t, "\x00\r\n") {
		return errors.New("title must be one line of text")
	}
	return nil
}

// SetTitle changes the broadcast's title, idle or live.
func (h *Hub) SetTitle(title string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setLocked(func(s *Status) { s.Title = title })
}

// SetPrivate makes the broadcast (current, or the next one while idle)
// private or public.
func (h *Hub) SetPrivate(private bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status.Private == private {
		return
	}
	h.setLocked(func(s *Status) { s.Private = private })
}

// SetProblem records a problem the broadcast goes on with (a camera that
// vanished and was replaced by the slate), or clears it with "".
func (h *Hub) SetProblem(problem string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status.Error == problem {
		return
	}
	h.setLocked(func(s *Status) { s.Error = problem })
}

// AddSink registers a consumer. It never receives a picture it cannot
// decode: it starts at the latest keyframe and what followed it when that
// keyframe is younger than KeyframeMinInterval (so joins close together
// share one keyframe without waiting for the next forced one), else at the
// next keyframe, which is requested for it.
func (h *Hub) AddSink(opt SinkOptions) *Sink {
	if opt.Queue <= 0 {
		opt.Queue = 256
	}
	if opt.Name == "" {
		opt.Name = "other"
	}
	s := &Sink{
		hub: h, name: opt.Name, preview: opt.Preview,
		notify: make(chan struct{}, 1), signal: opt.Signal, ring: make([]media.Sample, opt.Queue), waitKeyframe: true,
	}
	h.droppedCounter(opt.Name)
	h.mu.Lock()
	started := h.prefill(s)
	h.sinks = append(h.sinks, s)
	h.mu.Unlock()
	if !started {
		h.RequestKeyframe()
	}
	return s
}

func (h *Hub) removeSink(s *Sink) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.sinks {
		if x == s {
			h.sinks = slices.Delete(h.sinks, i, i+1)
			return
		}
	}
}

// Publish fans an encoded sample out to every sink allowed to have it. It
// never blocks on a consumer and allocates nothing in steady state.
func (h *Hub) Publish(sample media.Sample) {
	if sample.Kind == media.Video && sample.Keyframe {
		sample = h.withParameterSets(sample)
		h.keyMu.Lock()
		h.keyPending = false // a keyframe serves everyone who asked
		h.keyMu.Unlock()
	}
	h.mu.RLock()
	state := h.status.State
	h.mu.RUnlock()
	if state == GoingLive && sample.Kind == media.Video && sample.Keyframe {
		h.mu.Lock()
		if h.status.State == GoingLive {
			h.setLocked(func(s *Status) { s.State = Live; s.LiveSince = h.opt.WallClock(); s.Error = "" })
			close(h.live)
			// This keyframe (forced for going live, or one already on its
			// way for a viewer) takes the box live: no second one.
			h.keyMu.Lock()
			h.keyForceNow = false
			h.keyMu.Unlock()
		}
		state = h.status.State
		h.mu.Unlock()
	}
	live := state == Live
	needKeyframe := false
	h.mu.RLock()
	h.remember(sample, live)
	for _, s := range h.sinks {
		if !live && !s.preview {
			continue
		}
		dropped, need := s.push(sample)
		if dropped > 0 {
			h.droppedCounter(s.name).Add(uint64(dropped))
		}
		needKeyframe = needKeyframe || need
	}
	h.mu.RUnlock()
	if needKeyframe {
		h.RequestKeyframe()
	}
}

// remember keeps sample in recent while the join window of the latest
// keyframe lasts (see Hub.recent); h.mu is read-locked.
func (h *Hub) remember(sample media.Sample, live bool) {
	window := h.opt.KeyframeMinInterval
	if window <= 0 {
		return
	}
	h.recentMu.Lock()
	defer h.recentMu.Unlock()
	switch {
	case sample.Kind == media.Video && sample.Keyframe:
		clear(h.recent)
		h.recent = append(h.recent[:0], sample)
		h.recentLive = live
	case len(h.recent) == 0:
	case sample.Kind == media.Video && sample.Capture-h.recent[0].Capture > window,
		h.recentLive && !live,
		len(h.recent) >= maxRecent:
		// Too old to start a viewer with, or the broadcast ended.
		clear(h.recent)
		h.recent = h.recent[:0]
	default:
		h.recent = append(h.recent, sample)
	}
}

// maxRecent bounds the samples kept for joining sinks: a join window of
// 150 ms at 60 frames/s and 20 ms audio is 17.
const maxRecent = 64

// prefill starts a new sink with recent, if the sink would have been given
// those samples; h.mu is held. It tells whether it did.
func (h *Hub) prefill(s *Sink) bool {
	h.recentMu.Lock()
	defer h.recentMu.Unlock()
	if len(h.recent) == 0 || (!s.preview && (!h.recentLive || h.status.State != Live)) {
		return false
	}
	for _, sample := range h.recent {
		s.push(sample)
	}
	return true
}

// withParameterSets keeps the latest SPS/PPS and puts them in front of a
// keyframe that lacks them, so every keyframe decodes on its own.
func (h *Hub) withParameterSets(sample media.Sample) media.Sample {
	info := h264.Inspect(sample.Data)
	if info.SPS && info.PPS {
		sps, pps := h264.ParameterSets(sample.Data)
		h.mu.Lock()
		if string(h.sps) != string(sps) || string(h.pps) != string(pps) {
			h.sps, h.pps = append([]byte(nil), sps...), append([]byte(nil), pps...)
		}
		h.mu.Unlock()
		return sample
	}
	h.mu.RLock()
	sps, pps := h.sps, h.pps
	h.mu.RUnlock()
	if sps == nil || pps == nil {
		return sample
	}
	data := make([]byte, 0, len(sps)+len(pps)+8+len(sample.Data))
	if !info.SPS {
		data = h264.AppendAnnexB(data, sps)
	}
	if !info.PPS {
		data = h264.AppendAnnexB(data, pps)
	}
	sample.Data = append(data, sample.Data...)
	return sample
}

// RequestKeyframe asks the encoder for a keyframe (a new viewer, a PLI or
// FIR, an overflowed sink). Requests before the next picture share one
// keyframe; forced keyframes keep KeyframeMinInterval apart.
func (h *Hub) RequestKeyframe() {
	h.keyMu.Lock()
	h.keyPending = true
	h.keyMu.Unlock()
}

// KeyframeDue is asked by the video encoder loop before each picture, with
// the picture's capture time: true means encode it as a keyframe.
func (h *Hub) KeyframeDue(capture time.Duration) bool {
	h.keyMu.Lock()
	defer h.keyMu.Unlock()
	due := h.keyForceNow ||
		(h.keyPending && (!h.keyEverForced || capture-h.keyLastForced >= h.opt.KeyframeMinInterval))
	if !due {
		return false
	}
	h.keyForceNow, h.keyPending = false, false
	h.keyLastForced, h.keyEverForced = capture, true
	h.keyframesForced.Add(1)
	return true
}

// Counters are the hub's running totals, for metrics.
type Counters struct {
	KeyframesForced uint64
	// Dropped is samples lost to slow sinks, by sink name.
	Dropped map[string]uint64
	Sinks   int
}

// Counters returns the running totals.
func (h *Hub) Counters() Counters {
	c := Counters{KeyframesForced: h.keyframesForced.Load(), Dropped: map[string]uint64{}}
	h.dropped.Range(func(k, v any) bool {
		c.Dropped[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	h.mu.RLock()
	c.Sinks = len(h.sinks)
	h.mu.RUnlock()
	return c
}

func (h *Hub) droppedCounter(name string) *atomic.Uint64 {
	if v, ok := h.dropped.Load(name); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := h.dropped.LoadOrStore(name, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}
