package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/onair/onair/config"
	"github.com/onair/onair/device"
	"github.com/onair/onair/device/alsa"
	"github.com/onair/onair/device/mjpeg"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/encoder/opus"
	"github.com/onair/onair/encoder/passthrough"
	"github.com/onair/onair/encoder/v4l2m2m"
	"github.com/onair/onair/encoder/x264"
	"github.com/onair/onair/media"
	"github.com/onair/onair/pipeline"
	"github.com/onair/onair/status"
)

// openedMedia is the pipeline's two halves and what status says of them.
type openedMedia struct {
	video       pipeline.Video
	audio       pipeline.Audio
	videoStatus status.Video
	audioStatus status.Audio
	camera      bool
}

func (m openedMedia) close() {
	if m.video.Source != nil {
		m.video.Source.Close()
	}
	if m.video.Encoder != nil {
		m.video.Encoder.Close()
	}
	if m.audio.Source != nil {
		m.audio.Source.Close()
	}
	if m.audio.Encoder != nil {
		m.audio.Encoder.Close()
	}
}

// openMedia opens the camera (or the test pattern), picks and opens the H.264
// encoder, and opens the microphone (or the tone) with Opus. Each choice is
// logged with its reason.
func openMedia(cfg config.Config, clock *device.Clock, log *slog.Logger) (m openedMedia, err error) {
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	w, h, fps := cfg.Video.Width, cfg.Video.Height, cfg.Video.FPS
	pattern := func() (device.VideoSource, error) {
		p, err := testsrc.NewPattern(w, h, fps, clock, nil)
		if err == nil && cfg.Video.TestPattern == "noise" {
			p.WithNoise()
		}
		return p, err
	}

	caps := encoder.Capabilities{
		Software: x264.Available, SoftwareReason: "built without cgo",
		CameraFormat: media.I420,
	}
	hwPath, hwReason, hwErr := v4l2m2m.Find()
	if hwErr != nil {
		hwReason = hwErr.Error()
	}
	caps.HardwareEncoder, caps.HardwareReason = hwPath, hwReason
	// exportCamera is set once the hardware encoder is chosen: the camera
	// (and a camera reopened later) then lends it its buffers as dma-bufs.
	exportCamera := false

	switch cfg.Video.Source {
	case "v4l2", "auto":
		// Raw formats the encoders take, then MJPEG (decoded here to
		// I420): device/v4l2 picks among them so that the frame rate wins.
		// NV12 is left out because x264 takes only I420 and YUYV.
		formats := []media.PixelFormat{media.I420, media.YUYV, media.MJPEG}
		if cfg.Video.Encoder == "passthrough" {
			formats = []media.PixelFormat{media.H264}
		}
		cam, mode, camErr := openCamera(cfg, formats, clock, log)
		var noSignal *v4l2.SignalError
		if camErr != nil && cfg.Video.EDID != "" && errors.As(camErr, &noSignal) {
			// An HDMI bridge without a signal yet: start on the slate,
			// with the signal problem as the camera's, and let the
			// pipeline try the bridge again. The encoder runs at the
			// configured size, which the source must then send.
			log.Info("HDMI bridge has no usable signal yet; the slate runs until it has", "device", cfg.Video.Device, "reason", camErr.Error())
			// The pipeline words it "camera <device> failed: no HDMI signal (ENOLINK)".
			cam, camErr = v4l2.NewNoSignalSource(noSignal), nil
			mode = v4l2.Mode{Format: media.YUYV, FourCC: "YUYV", Width: w, Height: h, FPS: float64(fps), Reason: "waiting for an HDMI signal"}
		}
		if camErr == nil {
			m.video.Source, m.video.Name, m.camera = cam, cfg.Video.Device, true
			w, h = mode.Width, mode.Height
			if mode.FPS > 0 {
				fps = int(math.Round(mode.FPS))
			}
			caps.CameraFormat = deliveredFormat(mode)
			m.videoStatus.Source = cfg.Video.Device
			m.videoStatus.SourceFormat = mode.Format.String()
			m.videoStatus.SourceFPS = math.Round(mode.FPS*100) / 100
			m.videoStatus.SourceReason = mode.Reason
			log.Info("video source: camera", "device", cfg.Video.Device, "format", mode.FourCC,
				"size", fmt.Sprintf("%dx%d", mode.Width, mode.Height), "fps", mode.FPS,
				"delivers", caps.CameraFormat.String(), "reason", mode.Reason)
			// A camera unplugged while the box runs is looked for again; it
			// comes back only in the mode the encoder was opened for.
			m.video.Reopen = func(context.Context) (device.VideoSource, error) {
				again, got, err := openCamera(cfg, formats, clock, log)
				if err != nil {
					return nil, err
				}
				if got.Width != mode.Width || got.Height != mode.Height || got.Format != mode.Format {
					again.Close()
					return nil, fmt.Errorf("camera %s came back as %dx%d %v, the encoder runs at %dx%d %v: restart to use it",
						cfg.Video.Device, got.Width, got.Height, got.Format, mode.Width, mode.Height, mode.Format)
				}
				if exportCamera {
					exportBuffers(again, cfg.Video.Device, log)
				}
				return again, nil
			}
			break
		}
		if cfg.Video.Source == "v4l2" {
			return m, fmt.Errorf("video.source v4l2: %w", camErr)
		}
		log.Info("video source: test pattern", "reason", camErr.Error())
		m.videoStatus.SourceReason = "no camera: " + camErr.Error()
		fallthrough
	default:
		if m.video.Source, err = pattern(); err != nil {
			return m, err
		}
		m.video.Name = "test pattern"
		m.videoStatus.Source = "test"
		m.videoStatus.SourceFormat = media.I420.String()
		m.videoStatus.SourceFPS = float64(fps)
		if m.videoStatus.SourceReason == "" {
			m.videoStatus.SourceReason = "video.source is " + cfg.Video.Source
		}
	}
	m.video.Fallback = pattern

	params := encoder.VideoParams{
		Width: w, Height: h, FPS: fps, BitrateKbps: cfg.Video.BitrateKbps,
		KeyframeInterval: cfg.Video.KeyframeInterval.D(),
	}
	hw := v4l2m2m.Options{Format: caps.CameraFormat, Logger: log}
	switch caps.CameraFormat {
	case media.I420, media.NV12, media.YUYV:
	default:
		hw.Format = media.I420
	}
	if cfg.Uplink.WHIPURL != "" {
		hw.MaxBitrateKbps = min(cfg.Uplink.MaxBitrateKbps, v4l2m2m.MaxBitrateKbps)
	}
	if caps.HardwareEncoder != "" {
		// The Pi's encoder has hard limits (1080p30, 20 Mbit/s): beyond them
		// auto falls back to software and says why.
		if err := v4l2m2m.Validate(params, hw.RateControl); err != nil {
			caps.HardwareReason = fmt.Sprintf("%s found, but %v", caps.HardwareEncoder, err)
			caps.HardwareEncoder = ""
		}
	}

	choice, err := encoder.Choose(cfg.Video.Encoder, caps)
	if err != nil {
		return m, err
	}
	for _, c := range choice.Skipped {
		log.Info("video encoder skipped", "encoder", c.Name, "available", c.Available, "reason", c.Reason)
	}
	log.Info("video encoder", "encoder", choice.Name, "reason", choice.Reason, "size", fmt.Sprintf("%dx%d", w, h), "fps", fps)
	switch choice.Name {
	case "v4l2m2m":
		m.video.Encoder, err = v4l2m2m.Open(caps.HardwareEncoder, params, hw)
	case "x264":
		m.video.Encoder, err = x264.New(params, x264.Options{})
	case "passthrough":
		m.video.Encoder = passthrough.New(fps)
	default:
		err = fmt.Errorf("video encoder %s is not built into this firmware", choice.Name)
	}
	if err != nil {
		return m, err
	}
	if exportCamera = choice.Name == "v4l2m2m" && m.camera; exportCamera {
		exportBuffers(m.video.Source, cfg.Video.Device, log)
	}
	m.videoStatus.Encoder, m.videoStatus.EncoderReason = choice.Name, choice.Reason
	m.videoStatus.Width, m.videoStatus.Height = w, h

	switch cfg.Audio.Source {
	case "none":
		log.Info("audio: none (audio.source is none)")
		m.audioStatus.Source = "none"
		return m, nil
	case "alsa", "auto":
		mic, micErr := openMicrophone(cfg, clock, log)
		if micErr == nil {
			m.audio.Source, m.audio.Name = mic, mic.String()
			m.audio.Now = clock.Now // a USB microphone's crystal drifts from the video's clock
			m.audioStatus.Source = mic.Device().Name
			break
		}
		if cfg.Audio.Source == "alsa" {
			return m, fmt.Errorf("audio.source alsa: %w", micErr)
		}
		log.Info("audio source: test tone", "reason", micErr.Error())
		fallthrough
	default:
		m.audio.Source, m.audio.Name = testsrc.NewTone(clock), "test tone"
		m.audioStatus.Source = "test"
	}
	if m.audio.Encoder, err = opus.New(testsrc.ToneSampleRate, 1, cfg.Audio.BitrateKbps); err != nil {
		return m, fmt.Errorf("audio encoder: %w", err)
	}
	return m, nil
}

// openMicrophone opens the ALSA capture device. With no device named, a
// machine without a capture PCM (/dev/snd/pcmC*D*c) has no microphone: the
// library's "default" would be a silent plugin, not a microphone.
func openMicrophone(cfg config.Config, clock *device.Clock, log *slog.Logger) (*alsa.Source, error) {
	if cfg.Audio.Device == "" {
		if pcms, _ := filepath.Glob("/dev/snd/pcmC*D*c"); len(pcms) == 0 {
			return nil, errors.New("no ALSA capture device (/dev/snd/pcmC*D*c)")
		}
	}
	return alsa.Open(alsa.Config{Device: cfg.Audio.Device, SampleRate: testsrc.ToneSampleRate, Channels: 1, Logger: log}, clock)
}

// openCamera opens the camera in the mode device/v4l2 chooses for the
// configured size and rate. An MJPEG mode is decoded to I420 on the way,
// so the encoder never sees MJPEG.
func openCamera(cfg config.Config, formats []media.PixelFormat, clock *device.Clock, log *slog.Logger) (device.VideoSource, v4l2.Mode, error) {
	if _, err := os.Stat(cfg.Video.Device); err != nil {
		return nil, v4l2.Mode{}, fmt.Errorf("no camera at %s", cfg.Video.Device)
	}
	want := v4l2.Config{Width: cfg.Video.Width, Height: cfg.Video.Height, FPS: cfg.Video.FPS, Formats: formats, Logger: log}
	if cfg.Video.EDID != "" {
		// An HDMI bridge: the source's timings decide the mode. A size
		// change ends the stream (the encoder runs at one size) and the
		// pipeline's reopen takes the new mode if it fits.
		edid, err := v4l2.LoadEDID(cfg.Video.EDID)
		if err != nil {
			return nil, v4l2.Mode{}, fmt.Errorf("video.edid: %w", err)
		}
		want.HDMI = &v4l2.HDMIConfig{EDID: edid, Subdevice: cfg.Video.HDMISubdevice}
	}
	cam, err := v4l2.Open(cfg.Video.Device, want, clock)
	if err != nil {
		return nil, v4l2.Mode{}, fmt.Errorf("camera %s: %w", cfg.Video.Device, err)
	}
	mode := cam.Mode()
	if mode.Format == media.MJPEG {
		return mjpeg.NewSource(cam, log.With("device", cfg.Video.Device)), mode, nil
	}
	return cam, mode, nil
}

// exportBuffers makes a raw camera lend its buffers to the hardware encoder
// as dma-bufs, so that pictures reach it without a copy; the encoder falls
// back to copying by itself if it cannot import them. Each outcome is
// logged with its reason.
func exportBuffers(src device.VideoSource, dev string, log *slog.Logger) {
	cam, ok := src.(*v4l2.Source)
	if !ok {
		log.Info("camera buffers not shared with the hardware encoder", "device", dev,
			"reason", "frames are decoded or made on the way (MJPEG, no signal yet)")
		return
	}
	if err := cam.ExportBuffers(); err != nil {
		log.Info("camera buffers not shared with the hardware encoder; it copies each frame", "device", dev, "reason", err.Error())
		return
	}
	log.Info("camera buffers shared with the hardware encoder as dma-bufs", "device", dev)
}

// deliveredFormat is the format of the frames the camera source hands on.
func deliveredFormat(mode v4l2.Mode) media.PixelFormat {
	if mode.Format == media.MJPEG {
		return media.I420
	}
	return mode.Format
}
