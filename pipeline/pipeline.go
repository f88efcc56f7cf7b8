// Package pipeline runs the capture loops: camera -> H.264 encoder -> hub and
// microphone -> Opus encoder -> hub. The loops run from start to shutdown,
// live or not, so going live is one forced keyframe away.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
)

// Hub is what the pipeline needs of the broadcast hub.
type Hub interface {
	Publish(media.Sample)
	KeyframeDue(capture time.Duration) bool
	SetProblem(string)
}

// Video is the video half: a source, its encoder, and a fallback source (the
// slate) used when the camera fails, so the broadcast goes on.
type Video struct {
	Source   device.VideoSource
	Encoder  encoder.VideoEncoder
	Fallback func() (device.VideoSource, error)
	// Reopen opens the camera again after it failed (unplugged, reset);
	// while the slate shows, it is tried every ReopenEvery (default
	// DefaultReopenEvery) until it succeeds. nil: the slate stays.
	Reopen      func(context.Context) (device.VideoSource, error)
	ReopenEvery time.Duration
	// Name describes the source for status ("test pattern", "/dev/video0").
	Name string
}

// DefaultReopenEvery is how often a lost camera is looked for again.
const DefaultReopenEvery = 2 * time.Second

// Audio is the audio half; nil Source means no audio track.
type Audio struct {
	Source  device.AudioSource
	Encoder encoder.AudioEncoder
	Name    string
	// Now is the shared capture clock; with it, a microphone whose crystal
	// is off its nominal rate is kept in step with the video (driftFix).
	// nil: the source's stamps are taken as they are (test sources run on
	// the clock already).
	Now func() time.Duration
}

// Pipeline owns both loops. Run starts them; it returns when ctx ends.
type Pipeline struct {
	video Video
	audio Audio
	hub   Hub
	log   *slog.Logger

	bitrateKbps atomic.Int64 // wanted; applied by the video loop
	// frameDivisor encodes every n-th picture only (1: all): the uplink's
	// last resort when even its minimum bitrate does not fit. The encoder
	// budgets bits per picture at the configured rate, so fewer pictures
	// are fewer bits.
	frameDivisor atomic.Int64
	stats        stats
	started      time.Time
	lastFrame    atomic.Int64 // time since started, at the last encoded picture
}

// New makes a pipeline; nothing runs until Run.
func New(video Video, audio Audio, hub Hub, bitrateKbps int, log *slog.Logger) *Pipeline {
	p := &Pipeline{video: video, audio: audio, hub: hub, log: log, started: time.Now()}
	p.bitrateKbps.Store(int64(bitrateKbps))
	p.frameDivisor.Store(1)
	p.stats.applied.Store(int64(bitrateKbps))
	p.stats.peak.Store(math.Float64bits(SilenceDBFS))
	p.stats.rms.Store(math.Float64bits(SilenceDBFS))
	return p
}

// Run runs the loops until ctx ends, then closes sources and encoders.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = p.runVideo(ctx) }()
	if p.audio.Source != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs[1] = p.runAudio(ctx) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SetBitrate asks the video encoder for a new bitrate; it applies before the
// next picture.
func (p *Pipeline) SetBitrate(kbps int) { p.bitrateKbps.Store(int64(kbps)) }

// SetFrameDivisor makes the video loop encode every n-th picture (1: all).
func (p *Pipeline) SetFrameDivisor(n int) { p.frameDivisor.Store(int64(max(n, 1))) }

func (p *Pipeline) runVideo(ctx context.Context) error {
	src := p.video.Source
	// returned carries the camera back from a reopen attempt; stopReopen
	// ends the attempts (and closes a camera opened too late).
	var returned chan device.VideoSource
	stopReopen := func() {}
	defer func() { stopReopen(); src.Close(); p.video.Encoder.Close() }()
	usingFallback := false
	encoderFailures := 0
	var picture int64
	for {
		if usingFallback && returned != nil {
			select {
			case cam := <-returned:
				stopReopen()
				returned, stopReopen = nil, func() {}
				src.Close()
				src, usingFallback = cam, false
				p.stats.cameraLost.Store(false)
				p.hub.SetProblem("")
				p.log.Info("camera is back", "source", p.video.Name)
			default:
			}
		}
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if usingFallback || p.video.Fallback == nil {
				return fmt.Errorf("video source: %w", err)
			}
			// The camera went away: switch to the slate and say so; the
			// broadcast and its viewers go on.
			p.log.Error("camera failed, showing the slate", "source", p.video.Name, "err", err)
			p.hub.SetProblem(fmt.Sprintf("camera %s failed: %v", p.video.Name, err))
			src.Close()
			if src, err = p.video.Fallback(); err != nil {
				return fmt.Errorf("video fallback: %w", err)
			}
			usingFallback = true
			p.stats.cameraLost.Store(true)
			if p.video.Reopen != nil {
				returned, stopReopen = p.reopenCamera(ctx)
			}
			continue
		}
		picture++
		if d := p.frameDivisor.Load(); d > 1 && picture%d != 0 {
			continue
		}
		if want := p.bitrateKbps.Load(); want != p.stats.applied.Load() {
			if err := p.video.Encoder.SetBitrate(int(want)); err != nil {
				p.log.Error("set bitrate", "kbps", want, "err", err)
			} else {
				p.log.Info("video bitrate changed", "kbps", want)
			}
			p.stats.applied.Store(want) // do not retry a refused value every frame
		}
		force := p.hub.KeyframeDue(frame.Capture)
		sample, ok, err := p.video.Encoder.Encode(frame, force)
		if err != nil {
			if err := p.recoverEncoder(ctx, err, &encoderFailures); err != nil {
				return err
			}
			continue
		}
		if encoderFailures > 0 {
			encoderFailures = 0
			p.log.Info("video encoder recovered")
			if !usingFallback {
				p.hub.SetProblem("")
			}
		}
		if !ok {
			continue
		}
		p.stats.videoFrame(frame.Capture, len(sample.Data))
		p.lastFrame.Store(int64(time.Since(p.started)))
		p.hub.Publish(sample)
	}
}

// reopenCamera tries Reopen every ReopenEvery until it gives a camera,
// which it sends on the returned channel. The returned func stops the
// attempts and waits for them; a camera opened but not taken is closed.
func (p *Pipeline) reopenCamera(ctx context.Context) (chan device.VideoSource, func()) {
	every := p.video.ReopenEvery
	if every <= 0 {
		every = DefaultReopenEvery
	}
	ctx, cancel := context.WithCancel(ctx)
	returned := make(chan device.VideoSource)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var last string
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cam, err := p.video.Reopen(ctx)
			if err != nil {
				if msg := err.Error(); msg != last { // once per kind of failure, not every tick
					p.log.Info("camera still missing", "source", p.video.Name, "err", err)
					last = msg
				}
				continue
			}
			select {
			case returned <- cam:
				return
			case <-ctx.Done():
				cam.Close()
				return
			}
		}
	}()
	return returned, func() { cancel(); <-done }
}

func (p *Pipeline) runAudio(ctx context.Context) error {
	defer func() { p.audio.Source.Close(); p.audio.Encoder.Close() }()
	var samples []media.Sample
	var drift *driftFix
	if p.audio.Now != nil {
		drift = &driftFix{now: p.audio.Now}
	}
	for {
		frame, err := p.audio.Source.ReadAudio(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Error("microphone failed, audio stops", "source", p.audio.Name, "err", err)
			p.hub.SetProblem(fmt.Sprintf("microphone %s failed: %v", p.audio.Name, err))
			// The level meter says silence, not the last thing heard.
			p.stats.peak.Store(math.Float64bits(SilenceDBFS))
			p.stats.rms.Store(math.Float64bits(SilenceDBFS))
			return nil // video goes on without sound
		}
		p.stats.audioLevel(frame)
		if drift != nil {
			frame = drift.fix(frame)
		}
		samples, err = p.audio.Encoder.Encode(samples[:0], frame)
		if err != nil {
			return fmt.Errorf("encode audio: %w", err)
		}
		for _, s := range samples {
			p.hub.Publish(s)
		}
	}
}

// resettable is an encoder that can set itself up again after a device
// error (the hardware encoder).
type resettable interface{ Reset() error }

// maxEncoderFailures in a row end the video loop: a device that fails on
// every restart is a problem to report, not to spin on.
const maxEncoderFailures = 5

// recoverEncoder restarts an encoder that failed, after a pause that grows
// with each failure in a row; the broadcast goes on (viewers see a frozen
// picture for a moment) and the status says what happened.
func (p *Pipeline) recoverEncoder(ctx context.Context, cause error, failures *int) error {
	r, ok := p.video.Encoder.(resettable)
	*failures++
	if !ok || *failures > maxEncoderFailures {
		return fmt.Errorf("encode video: %w", cause)
	}
	p.log.Error("video encoder failed, restarting it", "attempt", *failures, "err", cause)
	p.hub.SetProblem(fmt.Sprintf("video encoder failed (%v); restarting it", cause))
	pause := time.Duration(50<<(*failures-1)) * time.Millisecond
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if err := r.Reset(); err != nil {
		p.log.Error("video encoder restart", "err", err)
	}
	return nil // a restarted encoder begins with a keyframe
}

// SinceLastFrame is how long ago the video loop last encoded a picture: the
// loop's liveness for /healthz (the slate keeps it going without a camera).
func (p *Pipeline) SinceLastFrame() time.Duration {
	return time.Since(p.started) - time.Duration(p.lastFrame.Load())
}

// Stats are the pipeline's measurements over the last second.
type Stats struct {
	FPS         float64
	BitrateKbps float64
	// TargetBitrateKbps is what the encoder is set to.
	TargetBitrateKbps int
	PeakDBFS, RMSDBFS float64
	FramesEncoded     uint64
	CameraLost        bool
}

// Stats returns the latest measurements.
func (p *Pipeline) Stats() Stats {
	return Stats{
		FPS:               math.Float64frombits(p.stats.fps.Load()),
		BitrateKbps:       math.Float64frombits(p.stats.kbps.Load()),
		TargetBitrateKbps: int(p.stats.applied.Load()),
		PeakDBFS:          math.Float64frombits(p.stats.peak.Load()),
		RMSDBFS:           math.Float64frombits(p.stats.rms.Load()),
		FramesEncoded:     p.stats.frames.Load(),
		CameraLost:        p.stats.cameraLost.Load(),
	}
}

// stats is written by the loops and read by anyone.
type stats struct {
	applied    atomic.Int64
	fps, kbps  atomic.Uint64 // float64 bits
	peak, rms  atomic.Uint64 // float64 bits
	frames     atomic.Uint64
	cameraLost atomic.Bool

	// video window, owned by the video loop
	windowStart         time.Duration
	windowFrames        int
	windowBytes         int
	windowStarted       bool
	audioWindowStart    time.Duration
	audioPeak, audioSum float64
	audioCount          int
	audioStarted        bool
}

func (s *stats) videoFrame(capture time.Duration, size int) {
	s.frames.Add(1)
	if !s.windowStarted {
		s.windowStart, s.windowStarted = capture, true
	}
	s.windowFrames++
	s.windowBytes += size
	if elapsed := capture - s.windowStart; elapsed >= time.Second {
		secs := elapsed.Seconds()
		s.fps.Store(math.Float64bits(float64(s.windowFrames-1) / secs))
		s.kbps.Store(math.Float64bits(float64(s.windowBytes) * 8 / 1000 / secs))
		s.windowStart, s.windowFrames, s.windowBytes = capture, 1, size
	}
}

func (s *stats) audioLevel(f media.AudioFrame) {
	if !s.audioStarted {
		s.audioWindowStart, s.audioStarted = f.Capture, true
	}
	for _, v := range f.Samples {
		x := float64(v) / 32768
		s.audioSum += x * x
		s.audioPeak = max(s.audioPeak, math.Abs(x))
	}
	s.audioCount += len(f.Samples)
	if f.Capture-s.audioWindowStart >= time.Second && s.audioCount > 0 {
		s.peak.Store(math.Float64bits(dbfs(s.audioPeak)))
		s.rms.Store(math.Float64bits(dbfs(math.Sqrt(s.audioSum / float64(s.audioCount)))))
		s.audioWindowStart, s.audioPeak, s.audioSum, s.audioCount = f.Capture, 0, 0, 0
	}
}

// SilenceDBFS is the level reported for silence (and before any audio), a
// finite floor so that JSON and Prometheus can carry it.
const SilenceDBFS = -120.0

func dbfs(x float64) float64 {
	if x <= 0 {
		return SilenceDBFS
	}
	return max(SilenceDBFS, math.Round(20*math.Log10(x)*10)/10)
}
