//go:build cgo

package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/device"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/encoder/opus"
	"github.com/onair/onair/encoder/x264"
	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failingCamera delivers a few frames, then fails like an unplugged camera.
type failingCamera struct {
	inner *testsrc.Pattern
	left  int
}

func (c *failingCamera) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if c.left == 0 {
		return media.VideoFrame{}, errors.New("no such device")
	}
	c.left--
	return c.inner.ReadVideo(ctx)
}

func (c *failingCamera) Close() error { return nil }

// newFailingCamera is a 320x240 test pattern that fails after frames.
func newFailingCamera(t *testing.T, clock *device.Clock, frames int) *failingCamera {
	t.Helper()
	inner, err := testsrc.NewPattern(320, 240, 30, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &failingCamera{inner: inner, left: frames}
}

func newPipeline(t *testing.T, hub *broadcast.Hub, camera device.VideoSource, clock *device.Clock) *Pipeline {
	t.Helper()
	venc, err := x264.New(encoder.VideoParams{Width: 320, Height: 240, FPS: 30, BitrateKbps: 300, KeyframeInterval: 2 * time.Second}, x264.Options{Preset: "ultrafast"})
	if err != nil {
		t.Fatal(err)
	}
	aenc, err := opus.New(48000, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	return New(
		Video{Source: camera, Encoder: venc, Name: "camera", Fallback: func() (device.VideoSource, error) {
			return testsrc.NewPattern(320, 240, 30, clock, nil)
		}},
		Audio{Source: testsrc.NewTone(clock), Encoder: aenc, Name: "tone"},
		hub, 300, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestPipelineFeedsHub(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{KeyframeMinInterval: 150 * time.Millisecond})
	pattern, err := testsrc.NewPattern(320, 240, 30, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, hub, pattern, clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	sink := hub.AddSink(broadcast.SinkOptions{Name: "test"})
	defer sink.Close()
	if _, err := hub.GoLive(ctx, broadcast.LiveOptions{}); err != nil {
		t.Fatal(err)
	}
	var video, audio int
	var lastVideo, lastAudio time.Duration
	for video < 45 {
		s, err := sink.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if video == 0 && audio == 0 && !s.Keyframe {
			t.Fatal("the first sample after going live must be a keyframe")
		}
		switch s.Kind {
		case media.Video:
			if video > 0 && s.Capture <= lastVideo {
				t.Fatalf("video capture times go back: %v after %v", s.Capture, lastVideo)
			}
			video++
			lastVideo = s.Capture
		case media.Audio:
			if audio > 0 && s.Capture != lastAudio+20*time.Millisecond {
				t.Fatalf("audio capture step %v", s.Capture-lastAudio)
			}
			audio++
			lastAudio = s.Capture
		}
	}
	if audio < 60 { // 1.5 s of video: about 75 audio packets
		t.Fatalf("%d audio packets with 45 video frames", audio)
	}
	// Audio and video share one clock: their latest samples are close.
	if d := lastVideo - lastAudio; d > 200*time.Millisecond || d < -200*time.Millisecond {
		t.Fatalf("audio and video clocks drift apart by %v", d)
	}
	st := p.Stats()
	if st.FPS < 25 || st.FPS > 35 || st.BitrateKbps <= 0 {
		t.Fatalf("stats %+v, want about 30 fps", st)
	}
	if st.RMSDBFS > -19 || st.RMSDBFS < -23 {
		t.Fatalf("audio rms %.1f dBFS, the tone is about -21", st.RMSDBFS)
	}
	p.SetBitrate(600)
	for i := 0; i < 3; i++ {
		sink.Next(ctx)
	}
	if got := p.Stats().TargetBitrateKbps; got != 600 {
		t.Fatalf("target bitrate %d after SetBitrate(600)", got)
	}
}

func TestCameraFailureFallsBackToSlate(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{})
	p := newPipeline(t, hub, newFailingCamera(t, clock, 5), clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sink := hub.AddSink(broadcast.SinkOptions{Name: "test"})
	defer sink.Close()
	if _, err := hub.GoLive(ctx, broadcast.LiveOptions{}); err != nil {
		t.Fatal(err)
	}
	for frames := 0; frames < 20; {
		s, err := sink.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Kind == media.Video {
			frames++
		}
	}
	st, _ := hub.Status()
	if st.State != broadcast.Live || !strings.Contains(st.Error, "camera camera failed") {
		t.Fatalf("status %+v: want live with the camera problem shown", st)
	}
	if !p.Stats().CameraLost {
		t.Fatal("stats do not report the lost camera")
	}
}

// countingCamera counts the frames it delivers and whether it was closed.
type countingCamera struct {
	inner  *testsrc.Pattern
	frames atomic.Int64
	closed atomic.Bool
}

func (c *countingCamera) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	f, err := c.inner.ReadVideo(ctx)
	if err == nil {
		c.frames.Add(1)
	}
	return f, err
}

func (c *countingCamera) Close() error { c.closed.Store(true); return nil }

// A lost camera is looked for again while the slate shows; once it opens,
// the pictures come from it again and the problem is gone from the status.
func TestCameraComesBack(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{})
	p := newPipeline(t, hub, newFailingCamera(t, clock, 5), clock)
	var attempts atomic.Int64
	var back atomic.Pointer[countingCamera]
	p.video.ReopenEvery = 20 * time.Millisecond
	p.video.Reopen = func(context.Context) (device.VideoSource, error) {
		if attempts.Add(1) <= 3 {
			return nil, errors.New("no camera at /dev/video0")
		}
		pattern, err := testsrc.NewPattern(320, 240, 30, clock, nil)
		if err != nil {
			return nil, err
		}
		cam := &countingCamera{inner: pattern}
		back.Store(cam)
		return cam, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	sink := hub.AddSink(broadcast.SinkOptions{Name: "test"})
	defer sink.Close()
	if _, err := hub.GoLive(ctx, broadcast.LiveOptions{}); err != nil {
		t.Fatal(err)
	}
	sawProblem := false
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := sink.Next(ctx); err != nil {
			t.Fatal(err)
		}
		st, _ := hub.Status()
		if strings.Contains(st.Error, "camera camera failed") {
			sawProblem = true
		}
		if cam := back.Load(); sawProblem && st.Error == "" && !p.Stats().CameraLost && cam != nil && cam.frames.Load() >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera not taken back: status %+v, stats %+v, %d attempts", st, p.Stats(), attempts.Load())
		}
	}
	if n := attempts.Load(); n != 4 {
		t.Fatalf("%d reopen attempts, want 4 (3 failed, then the camera): no attempts after it came back", n)
	}
	if st, _ := hub.Status(); st.State != broadcast.Live {
		t.Fatalf("state %s after the camera came back", st.State)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !back.Load().closed.Load() {
		t.Fatal("the camera that came back was not closed at the end")
	}
}

// flakyEncoder fails the next `fail` pictures, as a hardware encoder does
// when its device errors, and counts the restarts it is given.
type flakyEncoder struct {
	encoder.VideoEncoder
	mu     sync.Mutex
	fail   int
	resets int
}

func (f *flakyEncoder) Encode(frame media.VideoFrame, force bool) (media.Sample, bool, error) {
	f.mu.Lock()
	failing := f.fail > 0
	if failing {
		f.fail--
	}
	f.mu.Unlock()
	if failing {
		return media.Sample{}, false, errors.New("VIDIOC_DQBUF: input/output error")
	}
	return f.VideoEncoder.Encode(frame, force)
}

func (f *flakyEncoder) Reset() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets++
	return nil
}

func TestEncoderFailureRestartsIt(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{KeyframeMinInterval: 150 * time.Millisecond})
	pattern, err := testsrc.NewPattern(320, 240, 30, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, hub, pattern, clock)
	flaky := &flakyEncoder{VideoEncoder: p.video.Encoder, fail: 3}
	p.video.Encoder = flaky
	sink := hub.AddSink(broadcast.SinkOptions{Name: "test", Preview: true})
	defer sink.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}()
	// Pictures flow again after three failures, and the problem is cleared.
	waitCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	for {
		s, err := sink.Next(waitCtx)
		if err != nil {
			t.Fatalf("no video after the encoder failed: %v", err)
		}
		if s.Kind == media.Video {
			break
		}
	}
	flaky.mu.Lock()
	resets := flaky.resets
	flaky.mu.Unlock()
	if resets != 3 {
		t.Fatalf("%d restarts, want 3", resets)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st, _ := hub.Status(); st.Error != ""; st, _ = hub.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("problem not cleared after recovery: %q", st.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// plainEncoder cannot be restarted.
type plainEncoder struct{ encoder.VideoEncoder }

func (plainEncoder) Encode(media.VideoFrame, bool) (media.Sample, bool, error) {
	return media.Sample{}, false, errors.New("broken")
}

func TestEncoderThatCannotRestartEndsTheLoop(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{})
	pattern, err := testsrc.NewPattern(320, 240, 30, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, hub, pattern, clock)
	p.video.Encoder = plainEncoder{p.video.Encoder}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "encode video: broken") {
		t.Fatalf("Run: %v, want the encoder's error", err)
	}
}

// TestFrameDivisor: with a divisor of 3 the hub gets every third picture,
// spaced three capture intervals apart; back to 1, every picture again.
func TestFrameDivisor(t *testing.T) {
	clock := device.NewClock()
	hub := broadcast.New(broadcast.Options{KeyframeMinInterval: 150 * time.Millisecond})
	pattern, err := testsrc.NewPattern(320, 240, 30, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, hub, pattern, clock)
	p.SetFrameDivisor(3)
	sink := hub.AddSink(broadcast.SinkOptions{Name: "test", Preview: true, Queue: 1024})
	defer sink.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	gaps := func(n int) []time.Duration {
		t.Helper()
		var last time.Duration
		var out []time.Duration
		waitCtx, stop := context.WithTimeout(ctx, 10*time.Second)
		defer stop()
		for len(out) < n {
			s, err := sink.Next(waitCtx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != media.Video {
				continue
			}
			if last != 0 {
				out = append(out, s.Capture-last)
			}
			last = s.Capture
		}
		return out
	}
	// Every third picture: never closer than three frame intervals. A test
	// process that stalls makes the pattern skip intervals (by design), so
	// some gaps may be longer; most are three intervals.
	exact := 0
	for _, g := range gaps(10) {
		if g < 90*time.Millisecond {
			t.Fatalf("gap %v between pictures with divisor 3, want at least 100 ms", g)
		}
		if g <= 110*time.Millisecond {
			exact++
		}
	}
	if exact < 5 {
		t.Fatalf("only %d of 10 gaps were 100 ms with divisor 3", exact)
	}
	p.SetFrameDivisor(1)
	short := 0
	for _, g := range gaps(20) {
		if g < 40*time.Millisecond {
			short++
		}
	}
	if short < 10 {
		t.Fatalf("only %d of 20 gaps at the full rate after divisor 1", short)
	}
}
