package broadcast

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	spsNAL = []byte{0x67, 0x42, 0xc0, 0x1f}
	ppsNAL = []byte{0x68, 0xce, 0x3c, 0x80}
)

func keyframe(capture time.Duration, withParams bool) media.Sample {
	var data []byte
	if withParams {
		data = h264.AppendAnnexB(data, spsNAL)
		data = h264.AppendAnnexB(data, ppsNAL)
	}
	data = h264.AppendAnnexB(data, []byte{0x65, 0x88, 0x84})
	return media.Sample{Kind: media.Video, Data: data, Capture: capture, Keyframe: true}
}

func delta(capture time.Duration) media.Sample {
	return media.Sample{Kind: media.Video, Data: h264.AppendAnnexB(nil, []byte{0x41, 0x9a}), Capture: capture}
}

func audio(capture time.Duration) media.Sample {
	return media.Sample{Kind: media.Audio, Data: []byte{0xfc, 1, 2}, Capture: capture}
}

// encoderLoop stands in for the video pipeline: a picture every 10 ms of
// capture time, a keyframe when the hub says one is due.
type encoderLoop struct {
	hub    *Hub
	mu     sync.Mutex
	frame  int
	forced []time.Duration
}

func (e *encoderLoop) step() media.Sample {
	e.mu.Lock()
	defer e.mu.Unlock()
	capture := time.Duration(e.frame) * 10 * time.Millisecond
	e.frame++
	var s media.Sample
	if e.hub.KeyframeDue(capture) {
		e.forced = append(e.forced, capture)
		s = keyframe(capture, true)
	} else {
		s = delta(capture)
	}
	e.hub.Publish(s)
	return s
}

func (e *encoderLoop) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			e.step()
		}
	}
}

func TestStateMachine(t *testing.T) {
	hub := New(Options{KeyframeMinInterval: 150 * time.Millisecond})
	st, changed := hub.Status()
	if st.State != Idle {
		t.Fatalf("new hub is %s", st.State)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	loop := &encoderLoop{hub: hub}
	go loop.run(ctx, &wg)
	defer func() { cancel(); wg.Wait() }()

	st, err := hub.GoLive(context.Background(), LiveOptions{Title: "Keynote"})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != Live || st.Title != "Keynote" || st.BroadcastID == "" || st.LiveSince.IsZero() {
		t.Fatalf("after GoLive: %+v", st)
	}
	select {
	case <-changed:
	default:
		t.Fatal("status watchers were not woken")
	}
	again, err := hub.GoLive(context.Background(), LiveOptions{})
	if err != nil || again.BroadcastID != st.BroadcastID {
		t.Fatalf("GoLive while live must be a no-op: %+v %v", again, err)
	}
	if st, err = hub.Stop(context.Background()); err != nil || st.State != Idle {
		t.Fatalf("Stop: %+v %v", st, err)
	}
	if st, err = hub.Stop(context.Background()); err != nil || st.State != Idle {
		t.Fatalf("Stop while idle: %+v %v", st, err)
	}
	st, err = hub.Toggle(context.Background())
	if err != nil || st.State != Live {
		t.Fatalf("Toggle from idle: %+v %v", st, err)
	}
	st, err = hub.Toggle(context.Background())
	if err != nil || st.State != Idle {
		t.Fatalf("Toggle from live: %+v %v", st, err)
	}
}

func TestUpcomingIDAndPrivate(t *testing.T) {
	// A box without a real-time clock starts every boot at the same wall time:
	// ids must differ anyway.
	epoch := func() time.Time { return time.Unix(0, 0) }
	hub := New(Options{WallClock: epoch})
	other := New(Options{WallClock: epoch})
	first, _ := hub.Status()
	if o, _ := other.Status(); first.Upcoming == "" || first.Upcoming == o.Upcoming {
		t.Fatalf("upcoming ids %q and %q: want unique", first.Upcoming, o.Upcoming)
	}
	if first.BroadcastFor() != first.Upcoming {
		t.Fatalf("idle hub refers to %q, want the upcoming %q", first.BroadcastFor(), first.Upcoming)
	}
	hub.SetPrivate(true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go (&encoderLoop{hub: hub}).run(ctx, &wg)
	defer func() { cancel(); wg.Wait() }()

	st, err := hub.Toggle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.BroadcastID != first.Upcoming || st.BroadcastFor() != first.Upcoming || !st.Private {
		t.Fatalf("live: %+v, want id %q (invites made while idle stay valid) and private", st, first.Upcoming)
	}
	st, _ = hub.Stop(context.Background())
	if st.Upcoming == "" || st.Upcoming == first.Upcoming || st.BroadcastID != first.Upcoming {
		t.Fatalf("after stop: %+v: want the last id kept and a fresh upcoming one", st)
	}
	if !st.Private {
		t.Fatal("private must stay set for the next broadcast until changed")
	}
}

func TestGoLiveWithoutVideoEndsInError(t *testing.T) {
	hub := New(Options{GoLiveTimeout: 20 * time.Millisecond})
	st, err := hub.GoLive(context.Background(), LiveOptions{})
	if err == nil || st.State != Error || st.Error == "" {
		t.Fatalf("GoLive with no encoder: %+v %v", st, err)
	}
	// From error, going live is allowed again.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go (&encoderLoop{hub: hub}).run(ctx, &wg)
	defer func() { cancel(); wg.Wait() }()
	hub.opt.GoLiveTimeout = 5 * time.Second
	if st, err = hub.GoLive(context.Background(), LiveOptions{}); err != nil || st.State != Live || st.Error != "" {
		t.Fatalf("GoLive after error: %+v %v", st, err)
	}
}

func TestBusyWhileGoingLive(t *testing.T) {
	hub := New(Options{GoLiveTimeout: time.Second})
	done := make(chan struct{})
	go func() {
		defer close(done)
		hub.GoLive(context.Background(), LiveOptions{})
	}()
	for {
		if st, _ := hub.Status(); st.State == GoingLive {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := hub.Toggle(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Toggle while going live: %v, want ErrBusy", err)
	}
	if _, err := hub.Stop(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Stop while going live: %v, want ErrBusy", err)
	}
	hub.Publish(keyframe(0, true))
	<-done
	if st, _ := hub.Status(); st.State != Live {
		t.Fatalf("state %s", st.State)
	}
}

// goLive drives a hub to live by hand: GoLive in the background, then the
// keyframe it asks for.
func goLive(t *testing.T, hub *Hub, capture time.Duration) {
	t.Helper()
	done := make(chan error)
	go func() { _, err := hub.GoLive(context.Background(), LiveOptions{}); done <- err }()
	for {
		if st, _ := hub.Status(); st.State == GoingLive {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !hub.KeyframeDue(capture) {
		t.Fatal("going live must force a keyframe at once")
	}
	hub.Publish(keyframe(capture, true))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func drain(s *Sink) []media.Sample {
	var out []media.Sample
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		sample, err := s.Next(ctx)
		if err != nil {
			return out
		}
		out = append(out, sample)
	}
}

func TestNothingLeavesWhileIdleButPreview(t *testing.T) {
	hub := New(Options{})
	viewer := hub.AddSink(SinkOptions{Name: "whep"})
	preview := hub.AddSink(SinkOptions{Name: "preview", Preview: true})
	defer viewer.Close()
	defer preview.Close()
	hub.Publish(keyframe(0, true))
	hub.Publish(delta(10 * time.Millisecond))
	hub.Publish(audio(10 * time.Millisecond))
	if got := drain(viewer); len(got) != 0 {
		t.Fatalf("a viewer got %d samples while idle", len(got))
	}
	if got := drain(preview); len(got) != 3 {
		t.Fatalf("the preview got %d samples while idle, want 3", len(got))
	}
}

func TestNewSinkStartsAtKeyframe(t *testing.T) {
	hub := New(Options{})
	goLive(t, hub, 0)
	hub.Publish(delta(10 * time.Millisecond))
	s := hub.AddSink(SinkOptions{Name: "whep"})
	defer s.Close()
	hub.Publish(audio(15 * time.Millisecond))
	hub.Publish(delta(20 * time.Millisecond))
	if got := drain(s); len(got) != 0 {
		t.Fatalf("a joiner got %d samples before any keyframe", len(got))
	}
	if !hub.KeyframeDue(30 * time.Millisecond) {
		t.Fatal("a join must request a keyframe")
	}
	// A keyframe without parameter sets gets the cached ones in front.
	hub.Publish(keyframe(30*time.Millisecond, false))
	hub.Publish(audio(35 * time.Millisecond))
	got := drain(s)
	if len(got) != 2 || !got[0].Keyframe {
		t.Fatalf("joiner got %+v, want keyframe then audio", got)
	}
	if info := h264.Inspect(got[0].Data); !info.SPS || !info.PPS || !info.IDR {
		t.Fatalf("keyframe without SPS/PPS reached a joiner: %+v", info)
	}
}

// A sink added while the latest keyframe is younger than the keyframe
// spacing starts with it and what followed, at once, and asks for no new
// keyframe; later, or while not live, it waits for a requested one.
func TestJoinWithinWindowStartsAtRecentKeyframe(t *testing.T) {
	hub := New(Options{KeyframeMinInterval: 150 * time.Millisecond})
	goLive(t, hub, 0)
	before := hub.Counters().KeyframesForced
	hub.Publish(keyframe(100*time.Millisecond, false))
	hub.Publish(audio(110 * time.Millisecond))
	hub.Publish(delta(133 * time.Millisecond))
	early := hub.AddSink(SinkOptions{Name: "whep"})
	defer early.Close()
	hub.Publish(delta(166 * time.Millisecond))
	got := drain(early)
	if len(got) != 4 || !got[0].Keyframe || got[1].Kind != media.Audio || got[2].Capture != 133*time.Millisecond || got[3].Capture != 166*time.Millisecond {
		t.Fatalf("joiner within the window got %+v, want the keyframe, audio and two pictures in order", got)
	}
	if info := h264.Inspect(got[0].Data); !info.SPS || !info.PPS {
		t.Fatal("the keyframe a joiner starts with lacks SPS/PPS")
	}
	if hub.KeyframeDue(200*time.Millisecond) || hub.Counters().KeyframesForced != before {
		t.Fatal("a joiner started from the recent keyframe still forced a new one")
	}
	// Past the window: the next joiner waits for a keyframe it asks for.
	hub.Publish(delta(266 * time.Millisecond))
	late := hub.AddSink(SinkOptions{Name: "whep"})
	defer late.Close()
	if got := drain(late); len(got) != 0 {
		t.Fatalf("a joiner after the window got %d samples before a keyframe", len(got))
	}
	if !hub.KeyframeDue(300 * time.Millisecond) {
		t.Fatal("a joiner after the window must request a keyframe")
	}
	// Stopped: no viewer sink starts from what was sent while live.
	hub.Publish(keyframe(300*time.Millisecond, true))
	if _, err := hub.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle := hub.AddSink(SinkOptions{Name: "whep"})
	defer idle.Close()
	if got := drain(idle); len(got) != 0 {
		t.Fatalf("a viewer sink added while idle got %d samples", len(got))
	}
	preview := hub.AddSink(SinkOptions{Name: "preview", Preview: true})
	defer preview.Close()
	if got := drain(preview); len(got) != 1 || !got[0].Keyframe {
		t.Fatalf("a preview sink got %+v, want the recent keyframe", got)
	}
}

func TestKeyframeSpacing(t *testing.T) {
	hub := New(Options{KeyframeMinInterval: 150 * time.Millisecond})
	frame := 33 * time.Millisecond
	var forced []time.Duration
	// A storm: a request before every picture for 3 seconds.
	for i := 0; i < 90; i++ {
		hub.RequestKeyframe()
		hub.RequestKeyframe()
		capture := time.Duration(i) * frame
		if hub.KeyframeDue(capture) {
			forced = append(forced, capture)
		}
	}
	if len(forced) < 15 || len(forced) > 19 {
		t.Fatalf("%d forced keyframes in 3 s of storm, want about 3s/165ms = 18", len(forced))
	}
	for i := 1; i < len(forced); i++ {
		if gap := forced[i] - forced[i-1]; gap < 150*time.Millisecond {
			t.Fatalf("forced keyframes %v apart, minimum is 150ms", gap)
		}
	}
	// Requests before the next picture share one keyframe.
	hub2 := New(Options{KeyframeMinInterval: 150 * time.Millisecond})
	for i := 0; i < 10; i++ {
		hub2.RequestKeyframe()
	}
	if !hub2.KeyframeDue(0) || hub2.KeyframeDue(frame) || hub2.KeyframeDue(2*frame) {
		t.Fatal("ten requests before one picture must give exactly one keyframe")
	}
	// A natural keyframe satisfies a pending request.
	hub2.RequestKeyframe()
	hub2.Publish(keyframe(10*frame, true))
	if hub2.KeyframeDue(11 * frame) {
		t.Fatal("a request was served by a regular keyframe and must not force another")
	}
}

func TestSlowSinkDoesNotBlockOthers(t *testing.T) {
	hub := New(Options{})
	goLive(t, hub, 0)
	slow := hub.AddSink(SinkOptions{Name: "recorder", Queue: 8})
	fast := hub.AddSink(SinkOptions{Name: "whep", Queue: 8})
	defer slow.Close()
	defer fast.Close()
	hub.Publish(keyframe(10*time.Millisecond, true))
	var fastGot int
	// 100 samples; fast reads each one, slow never reads.
	for i := 2; i < 102; i++ {
		hub.Publish(delta(time.Duration(i) * 10 * time.Millisecond))
		fastGot += len(drain(fast))
	}
	if fastGot != 101 { // the keyframe and the 100 deltas
		t.Fatalf("fast sink got %d of 101", fastGot)
	}
	if slow.Dropped() == 0 {
		t.Fatal("slow sink never dropped")
	}
	if c := hub.Counters(); c.Dropped["recorder"] != slow.Dropped() || c.Dropped["whep"] != 0 {
		t.Fatalf("counters %+v", c)
	}
	// After overflow it waits for a keyframe (and asked for one).
	if got := drain(slow); len(got) != 0 {
		// What was queued after the overflow must not be deltas without a keyframe.
		if !got[0].Keyframe {
			t.Fatalf("slow sink resumed with a non-keyframe")
		}
	}
	if !hub.KeyframeDue(2 * time.Second) {
		t.Fatal("an overflow must request a keyframe")
	}
	hub.Publish(keyframe(2*time.Second, true))
	hub.Publish(delta(2*time.Second + 10*time.Millisecond))
	got := drain(slow)
	if len(got) != 2 || !got[0].Keyframe {
		t.Fatalf("slow sink after keyframe got %d samples, first keyframe=%v", len(got), len(got) > 0 && got[0].Keyframe)
	}
}

func TestBlockedConsumerGoroutine(t *testing.T) {
	// A sink whose consumer goroutine is stuck (a blocked write) must not
	// delay Publish: the publisher finishes 1000 samples while it hangs.
	hub := New(Options{})
	goLive(t, hub, 0)
	stuck := hub.AddSink(SinkOptions{Name: "uplink", Queue: 16})
	release := make(chan struct{})
	took := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := stuck.Next(context.Background()); err == nil {
			close(took)
		}
		<-release // the "write" that never returns
	}()
	hub.Publish(keyframe(0, true))
	<-took // the consumer holds its first sample and hangs from now on
	for i := 1; i <= 1000; i++ {
		hub.Publish(delta(time.Duration(i) * time.Millisecond))
	}
	if stuck.Dropped() == 0 {
		t.Fatal("the stuck sink should have overflowed")
	}
	close(release)
	wg.Wait()
	stuck.Close()
	if _, err := stuck.Next(context.Background()); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestStopRestartsSinksAtKeyframe(t *testing.T) {
	hub := New(Options{})
	s := hub.AddSink(SinkOptions{Name: "whep"})
	defer s.Close()
	goLive(t, hub, 0)
	hub.Publish(delta(10 * time.Millisecond))
	if got := drain(s); len(got) != 2 {
		t.Fatalf("live sink got %d, want keyframe + delta", len(got))
	}
	hub.Stop(context.Background())
	hub.Publish(delta(20 * time.Millisecond))
	if got := drain(s); len(got) != 0 {
		t.Fatal("a sink received after stop")
	}
	goLive(t, hub, 100*time.Millisecond)
	got := drain(s)
	if len(got) != 1 || !got[0].Keyframe {
		t.Fatalf("second broadcast must start at a keyframe, got %d samples", len(got))
	}
}

func TestConcurrentPublishAndSinks(t *testing.T) {
	hub := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go (&encoderLoop{hub: hub}).run(ctx, &wg)
	if _, err := hub.GoLive(context.Background(), LiveOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := hub.AddSink(SinkOptions{Name: "whep", Queue: 4})
			defer s.Close()
			c, stop := context.WithTimeout(ctx, 30*time.Millisecond)
			defer stop()
			for {
				if _, err := s.Next(c); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if c := hub.Counters(); c.Sinks != 0 {
		t.Fatalf("%d sinks left after all closed", c.Sinks)
	}
}

// TestKeyframeInFlightTakesTheBoxLive: a keyframe encoded for a viewer's
// request that is published while going live is the going-live keyframe;
// no second keyframe is forced right behind it.
func TestKeyframeInFlightTakesTheBoxLive(t *testing.T) {
	hub := New(Options{KeyframeMinInterval: 150 * time.Millisecond})
	hub.RequestKeyframe()
	if !hub.KeyframeDue(0) { // the encoder starts an IDR for the request
		t.Fatal("request not served")
	}
	done := make(chan error)
	go func() { _, err := hub.GoLive(context.Background(), LiveOptions{}); done <- err }()
	for st, _ := hub.Status(); st.State != GoingLive; st, _ = hub.Status() {
		time.Sleep(time.Millisecond)
	}
	hub.Publish(keyframe(0, true)) // the IDR in flight lands while going live
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hub.KeyframeDue(33 * time.Millisecond) {
		t.Fatal("a second keyframe was forced right after the one that took the box live")
	}
}

// Finish keeps what is queued for its owner (the recorder's last moments);
// Close throws it away.
func TestFinishDrainsCloseDiscards(t *testing.T) {
	hub := New(Options{})
	goLive(t, hub, 0)
	finished := hub.AddSink(SinkOptions{Name: "recorder"})
	closed := hub.AddSink(SinkOptions{Name: "whep"})
	hub.Publish(keyframe(10*time.Millisecond, true))
	hub.Publish(audio(15 * time.Millisecond))
	finished.Finish()
	closed.Close()
	hub.Publish(audio(20 * time.Millisecond)) // after Finish: not queued
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := finished.Next(ctx); err != nil {
			t.Fatalf("sample %d after Finish: %v", i, err)
		}
	}
	if _, err := finished.Next(ctx); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("after the queue: %v, want ErrSinkClosed", err)
	}
	if _, err := closed.Next(ctx); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("closed sink: %v, want ErrSinkClosed at once", err)
	}
}

// Sinks sharing a Signal: one signal per queued sample or close for them
// all, read with TryNext without waiting.
func TestSinksSharingASignal(t *testing.T) {
	hub := New(Options{})
	goLive(t, hub, 0)
	signal := make(chan struct{}, 1)
	a := hub.AddSink(SinkOptions{Name: "whep", Signal: signal})
	b := hub.AddSink(SinkOptions{Name: "whep", Signal: signal})
	defer b.Close()
	if _, ok, err := a.TryNext(); ok || err != nil {
		t.Fatalf("empty sink: ok %v err %v", ok, err)
	}
	hub.Publish(keyframe(30*time.Millisecond, true))
	select {
	case <-signal:
	default:
		t.Fatal("no signal for a queued sample")
	}
	hub.Publish(audio(35 * time.Millisecond))
	for _, s := range []*Sink{a, b} {
		first, ok1, _ := s.TryNext()
		second, ok2, _ := s.TryNext()
		if !ok1 || !ok2 || !first.Keyframe || second.Kind != media.Audio {
			t.Fatalf("got %+v (%v) then %+v (%v), want the keyframe then the audio", first, ok1, second, ok2)
		}
		if _, ok, err := s.TryNext(); ok || err != nil {
			t.Fatalf("drained sink: ok %v err %v", ok, err)
		}
	}
	<-signal // the audio's
	a.Close()
	select {
	case <-signal:
	default:
		t.Fatal("no signal for a closed sink")
	}
	if _, ok, err := a.TryNext(); ok || !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("closed sink: ok %v err %v", ok, err)
	}
}
