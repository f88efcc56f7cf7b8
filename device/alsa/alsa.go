//go:build cgo

package alsa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gen2brain/malgo"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Source is an open ALSA microphone. It implements device.AudioSource. One
// goroutine reads it; Close may be called from any goroutine.
type Source struct {
	cfg   Config
	clock *device.Clock
	log   *slog.Logger
	info  DeviceInfo

	mctx *malgo.AllocatedContext
	dev  *malgo.Device
	pipe *pipeline

	// Reader-owned: the samples handed out by ReadAudio and the stall timer.
	out   []int16
	timer *time.Timer

	closing   atomic.Bool
	stateMu   sync.Mutex
	lostErr   error
	closed    bool
	done      chan struct{} // closed when the device is lost or the source closed
	doneOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Open finds the capture device that cfg names, starts it and returns the
// running source. Capture times are taken from clock, which the video source
// shares so that both tracks line up.
func Open(cfg Config, clock *device.Clock) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open ALSA microphone: %w", err)
	}
	if clock == nil {
		return nil, errors.New("open ALSA microphone: no capture clock")
	}
	mctx, err := newContext(cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("open ALSA microphone: %w", err)
	}
	s, err := start(cfg, clock, mctx)
	if err != nil {
		uninitContext(mctx)
		return nil, fmt.Errorf("open ALSA microphone: %w", err)
	}
	return s, nil
}

// start picks the device, initialises it on mctx and starts capture. On
// error the caller still owns mctx.
func start(cfg Config, clock *device.Clock, mctx *malgo.AllocatedContext) (*Source, error) {
	devices, err := enumerate(mctx)
	if err != nil {
		return nil, err
	}
	info, specific, err := matchDevice(cfg.Device, devices, readCards())
	if err != nil {
		return nil, err
	}
	if !specific {
		// miniaudio then tries "default", dsnoop and hw in turn, which finds
		// a microphone on a bare Pi where "default" may be playback-only.
		info = DeviceInfo{Name: "ALSA default capture device", ID: "default", Default: true}
	}
	s := &Source{
		cfg: cfg, clock: clock, log: cfg.Logger, info: info, mctx: mctx,
		pipe:  newPipeline(cfg),
		out:   make([]int16, cfg.bufferFrames()*cfg.Channels),
		timer: time.NewTimer(time.Hour),
		done:  make(chan struct{}),
	}
	s.timer.Stop()

	devCfg := malgo.DefaultDeviceConfig(malgo.Capture)
	devCfg.Capture.Format = malgo.FormatS16
	devCfg.Capture.Channels = uint32(cfg.Channels)
	devCfg.SampleRate = uint32(cfg.SampleRate)
	// Ask ALSA for 20 ms periods, so that each callback usually completes
	// one buffer, and a ring of devicePeriods of them.
	devCfg.PeriodSizeInFrames = uint32(cfg.bufferFrames())
	devCfg.Periods = devicePeriods
	devCfg.Capture.ShareMode = malgo.Shared
	// miniaudio's fixed-size callback mode starts its intermediary buffer
	// with one period of made-up silence, which delays all audio by 20 ms and
	// puts it 20 ms off its capture time. The pipeline cuts whole buffers
	// itself, so take the periods as the device delivers them.
	devCfg.NoFixedSizedCallback = 1

	var id malgo.DeviceID
	var pinner runtime.Pinner
	if specific {
		if len(info.ID) >= len(id) {
			return nil, fmt.Errorf("device id %q is longer than miniaudio's %d bytes", info.ID, len(id)-1)
		}
		copy(id[:], info.ID)
		// The id is read by C through the config struct during InitDevice;
		// cgo allows a Go pointer inside memory passed to C only when pinned.
		pinner.Pin(&id)
		devCfg.Capture.DeviceID = unsafe.Pointer(&id)
	}
	dev, err := malgo.InitDevice(mctx.Context, devCfg, malgo.DeviceCallbacks{Data: s.onData, Stop: s.onStop})
	pinner.Unpin()
	if err != nil {
		return nil, fmt.Errorf("init capture device %s: %w", info, err)
	}
	s.dev = dev
	if f, ch, rate := dev.CaptureFormat(), int(dev.CaptureChannels()), int(dev.SampleRate()); f != malgo.FormatS16 || ch != cfg.Channels || rate != cfg.SampleRate {
		dev.Uninit()
		return nil, fmt.Errorf("capture device %s gives format %d, %d channels at %d Hz; want S16, %d channels at %d Hz",
			info, f, ch, rate, cfg.Channels, cfg.SampleRate)
	}
	s.pipe.lastDelivery.Store(int64(clock.Now()))
	if err := dev.Start(); err != nil {
		dev.Uninit()
		return nil, fmt.Errorf("start capture device %s: %w", info, err)
	}
	s.log.Info("microphone opened", "device", info.Name, "id", info.ID,
		"sample_rate", cfg.SampleRate, "channels", cfg.Channels, "buffer", s.pipe.bufDuration)
	return s, nil
}

// List returns the ALSA capture devices, as ALSA's device hints name them.
// An empty list with a nil error means the library works and there is no
// microphone.
func List() ([]DeviceInfo, error) {
	mctx, err := newContext(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("list ALSA capture devices: %w", err)
	}
	defer uninitContext(mctx)
	devices, err := enumerate(mctx)
	if err != nil {
		return nil, fmt.Errorf("list ALSA capture devices: %w", err)
	}
	return devices, nil
}

// newContext makes a miniaudio context restricted to ALSA: on a desktop it
// would otherwise pick PulseAudio or JACK first, and the box has neither.
func newContext(log *slog.Logger) (*malgo.AllocatedContext, error) {
	mctx, err := malgo.InitContext([]malgo.Backend{malgo.BackendAlsa}, malgo.ContextConfig{}, func(msg string) {
		log.Debug("miniaudio", "msg", strings.TrimSpace(msg))
	})
	if err != nil {
		return nil, fmt.Errorf("init miniaudio ALSA backend (is libasound2 installed?): %w", err)
	}
	return mctx, nil
}

func uninitContext(mctx *malgo.AllocatedContext) error {
	err := mctx.Uninit()
	mctx.Free()
	if err != nil {
		return fmt.Errorf("uninit miniaudio context: %w", err)
	}
	return nil
}

func enumerate(mctx *malgo.AllocatedContext) ([]DeviceInfo, error) {
	found, err := mctx.Devices(malgo.Capture)
	if err != nil {
		return nil, fmt.Errorf("enumerate capture devices: %w", err)
	}
	devices := make([]DeviceInfo, 0, len(found))
	for _, d := range found {
		devices = append(devices, DeviceInfo{Name: d.Name(), ID: alsaID(d.ID), Default: d.IsDefault != 0})
	}
	return devices, nil
}

// readCards lists the sound cards the kernel knows. Without the file (no
// sound support, a container) there are no card names to match, which only
// narrows the choice to what the ALSA hints describe.
func readCards() []card {
	text, err := os.ReadFile("/proc/asound/cards")
	if err != nil {
		return nil
	}
	return parseCards(string(text))
}

// alsaID reads the ALSA member of miniaudio's device id union: the
// NUL-terminated string that snd_pcm_open gets. malgo's DeviceID.String is
// hex, which no one can put in a config file.
func alsaID(id malgo.DeviceID) string {
	n := 0
	for n < len(id) && id[n] != 0 {
		n++
	}
	return string(id[:n])
}

// onData runs on miniaudio's audio thread for every period.
func (s *Source) onData(_, in []byte, _ uint32) {
	if len(in) == 0 {
		return
	}
	s.pipe.feed(in, s.clock.Now())
}

// onStop runs when the device stops. After Close that is expected; before,
// it means ALSA stopped the stream under us, as when a USB microphone is
// pulled out.
func (s *Source) onStop() {
	if s.closing.Load() {
		return
	}
	s.fail(fmt.Errorf("%w: %s stopped (unplugged?)", ErrDeviceLost, s.info))
}

func (s *Source) fail(err error) {
	s.stateMu.Lock()
	if s.lostErr == nil {
		s.lostErr = err
		s.log.Error("microphone lost", "device", s.info.Name, "id", s.info.ID, "err", err)
	}
	s.stateMu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

func (s *Source) failure() error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.lostErr
}

// ReadAudio blocks until the next 20 ms buffer, ctx ends, the source is
// closed (ErrClosed) or the device is lost (an error wrapping
// ErrDeviceLost). The samples stay valid until the next call.
func (s *Source) ReadAudio(ctx context.Context) (media.AudioFrame, error) {
	for {
		if err := s.failure(); err != nil {
			return media.AudioFrame{}, err
		}
		if capture, ok := s.pipe.read(s.out); ok {
			return media.AudioFrame{SampleRate: s.cfg.SampleRate, Channels: s.cfg.Channels, Samples: s.out, Capture: capture}, nil
		}
		silent := s.clock.Now() - time.Duration(s.pipe.lastDelivery.Load())
		if silent >= s.cfg.StallTimeout {
			s.fail(fmt.Errorf("%w: no audio from %s for %v", ErrDeviceLost, s.info, silent.Round(time.Millisecond)))
			continue
		}
		s.timer.Reset(s.cfg.StallTimeout - silent)
		select {
		case <-ctx.Done():
			s.timer.Stop()
			return media.AudioFrame{}, ctx.Err()
		case <-s.pipe.ready:
		case <-s.done:
		case <-s.timer.C:
		}
		s.timer.Stop()
	}
}

// Close stops the device, waits for miniaudio's audio thread to finish and
// releases the context. Calling it again returns the first call's result.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		// Stop first: it wakes miniaudio's audio thread, which on a card
		// that vanished (a USB microphone pulled out) otherwise spins on
		// POLLERR and Uninit waits for it forever (seen on snd-aloop in the
		// VM rig, test/vm). Uninit then joins the thread, so no callback
		// runs after it returns.
		_ = s.dev.Stop()
		s.dev.Uninit()
		s.closeErr = uninitContext(s.mctx)
		s.stateMu.Lock()
		s.closed = true
		s.stateMu.Unlock()
		s.doneOnce.Do(func() { close(s.done) })
		s.log.Info("microphone closed", "device", s.info.Name, "id", s.info.ID,
			"dropped", s.pipe.dropped.Load(), "gaps", s.pipe.timer.gaps.Load())
	})
	return s.closeErr
}

// Device is the device that Open chose.
func (s *Source) Device() DeviceInfo { return s.info }

// Dropped counts buffers thrown away because the reader fell a whole queue
// behind.
func (s *Source) Dropped() uint64 { return s.pipe.dropped.Load() }

// Gaps counts times the capture clock was re-anchored because audio arrived
// later than the device could have buffered it: samples lost in an overrun.
func (s *Source) Gaps() uint64 { return s.pipe.timer.gaps.Load() }

// String describes the source for logs and status.
func (s *Source) String() string {
	mode := "mono"
	if s.cfg.Channels == 2 {
		mode = "stereo"
	}
	return fmt.Sprintf("ALSA %s %d Hz %s", s.info, s.cfg.SampleRate, mode)
}

var _ device.AudioSource = (*Source)(nil)
