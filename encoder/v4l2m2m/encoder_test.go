package v4l2m2m

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// TestEncodeEndToEnd runs pictures through the encoder and the fake and has
// ffmpeg decode the result: for every raw format, sizes that need stride
// padding and frame cropping, and every profile.
func TestEncodeEndToEnd(t *testing.T) {
	tests := []struct {
		format        media.PixelFormat
		width, height int
		profile       string
		ffProfile     string
		level         int
	}{
		{media.I420, 1280, 720, "", "Constrained Baseline", 31},
		{media.NV12, 640, 480, "main", "Main", 30},
		{media.YUYV, 1920, 1080, "high", "High", 40},
		{media.I420, 322, 242, "constrained_baseline", "Constrained Baseline", 30},
		{media.NV12, 1080, 1920, "", "Constrained Baseline", 40},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%dx%d_%s", tt.format, tt.width, tt.height, tt.ffProfile), func(t *testing.T) {
			// The hand-off: what the hardware reads out of its (padded)
			// buffers is exactly the picture that went in.
			var current media.VideoFrame
			var handOffErr error
			read := 0
			devices := &fakes{cfg: FakeConfig{OnPicture: func(pic FakePicture) {
				read++
				switch {
				case handOffErr != nil:
				case !bytes.Equal(pic.Data, current.Data):
					handOffErr = fmt.Errorf("picture %d differs after the hand-off", read-1)
				case pic.Timestamp != current.Capture.Truncate(time.Microsecond):
					handOffErr = fmt.Errorf("picture %d: buffer timestamp %v, want %v", read-1, pic.Timestamp, current.Capture)
				}
			}}}
			p := params(tt.width, tt.height)
			p.Profile = tt.profile
			e, err := New(devices.open, "/dev/video11", p, Options{Format: tt.format, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			const n = 75
			s := encodeFrames(t, e, tt.format, tt.width, tt.height, n, map[int]bool{10: true, 11: true}, &current)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}

			probe := decode(t, s.annexB())
			st := probe.Streams[0]
			if st.CodecName != "h264" || st.Profile != tt.ffProfile || st.Level != tt.level ||
				st.Width != tt.width || st.Height != tt.height {
				t.Fatalf("ffprobe: %+v, want %s level %d %dx%d", st, tt.ffProfile, tt.level, tt.width, tt.height)
			}
			if got := probe.frames(t); got != n {
				t.Fatalf("ffmpeg decoded %d pictures, want %d", got, n)
			}
			// Keyframes: the first, the forced ones at 10 and 11, then every
			// 30 pictures from the last one (keyframe_interval 1s at 30 fps).
			for i, sample := range s.samples {
				want := i == 0 || i == 10 || i == 11 || i == 41 || i == 71
				if sample.Keyframe != want || (probe.Frames[i].KeyFrame == 1) != want {
					t.Errorf("picture %d: sample keyframe %v, ffprobe key_frame %d, want %v",
						i, sample.Keyframe, probe.Frames[i].KeyFrame, want)
				}
				info := h264.Inspect(sample.Data)
				if want && (!info.IDR || !info.SPS || !info.PPS) {
					t.Errorf("keyframe %d is not SPS+PPS+IDR: %+v", i, info)
				}
				if sample.Capture != s.captures[i] {
					t.Errorf("picture %d: capture %v, want %v", i, sample.Capture, s.captures[i])
				}
				if sample.Kind != media.Video || sample.Duration != time.Second/30 {
					t.Errorf("picture %d: kind %v duration %v", i, sample.Kind, sample.Duration)
				}
			}

			if handOffErr != nil || read != n {
				t.Fatalf("hand-off: %v (%d pictures read, bytesperline %d)", handOffErr, read, devices.last().State().BytesPerLine)
			}
		})
	}
}

// TestSetUpOrder checks what the driver saw when streaming began: every
// control was already set (the firmware reads them at port enable).
func TestSetUpOrder(t *testing.T) {
	devices := &fakes{}
	p := params(1280, 720)
	p.KeyframeInterval = 2 * time.Second
	p.BitrateKbps = 3010 // rounds to the control's 25 kbit/s step
	e, err := New(devices.open, "/dev/video11", p, Options{RateControl: CBR, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := devices.last().State()
	want := map[string]int32{
		"bitrate_mode": bitrateModeCBR, "bitrate": 3000000, "h264_profile": profileConstrainedBaseline,
		"h264_level": int32(Level3_1), "h264_i_frame_period": 60, "gop_size": 60, "repeat_sequence_header": 1,
	}
	for name, v := range want {
		if got := st.Stats.ControlsAtStart[name]; got != v {
			t.Errorf("%s at STREAMON = %d, want %d", name, got, v)
		}
	}
	if !st.OutputStreaming || !st.CaptureStreaming || st.Stalled != "" {
		t.Fatalf("state %+v", st)
	}
	if st.FPS != 30 || st.CodedWidth != 1280 || st.CodedHeight != 720 || st.RawFourCC != "YU12" {
		t.Fatalf("formats: %+v", st)
	}
	info := e.Info()
	if info.Level != Level3_1 || info.BitrateKbps != 3000 || info.Card != PiEncoderCard || info.OutputBuffers != 3 || info.CaptureBuffers != 4 {
		t.Fatalf("info %+v", info)
	}
}

func TestSetBitrateWhileRunning(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(1280, 720), Options{MaxBitrateKbps: 6000, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	encodeFrames(t, e, media.I420, 1280, 720, 5, nil, nil)
	if err := e.SetBitrate(4000); err != nil {
		t.Fatal(err)
	}
	s := encodeFrames(t, e, media.I420, 1280, 720, 5, nil, nil)
	st := devices.last().State()
	if st.Controls["bitrate"] != 4000000 || st.Stats.BitrateChanges != 1 || st.Stats.ControlsAtStart["bitrate"] != 2500000 {
		t.Fatalf("bitrate %d, changes %d, at start %d", st.Controls["bitrate"], st.Stats.BitrateChanges, st.Stats.ControlsAtStart["bitrate"])
	}
	if s.samples[0].Keyframe {
		t.Fatal("a bitrate change must not restart the stream")
	}
	if e.Info().BitrateKbps != 4000 {
		t.Fatalf("info bitrate %d", e.Info().BitrateKbps)
	}
	for _, kbps := range []int{0, 10, 20001} {
		if err := e.SetBitrate(kbps); err == nil {
			t.Errorf("SetBitrate(%d) accepted", kbps)
		}
	}
	// 720p30 at level 3.1 (computed for 6 Mbit/s) holds 14 Mbit/s, not 15.
	if err := e.SetBitrate(15000); err == nil || !strings.Contains(err.Error(), "level 3.1") {
		t.Errorf("SetBitrate above the level: %v", err)
	}
}

func TestTimestampsCarriedThrough(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Irregular gaps, a repeated microsecond and times past 2^31 µs (the
	// 32-bit timeval's seconds and microseconds both matter).
	captures := []time.Duration{0, 999 * time.Nanosecond, time.Microsecond, 47*time.Hour + 123456789, 47*time.Hour + 123456999, 1<<31*time.Microsecond + 1}
	for i, c := range captures {
		frame := picture(media.I420, 640, 480, i)
		frame.Capture = c
		sample, ok, err := e.Encode(frame, false)
		if err != nil || !ok {
			t.Fatalf("frame %d: %v %v", i, ok, err)
		}
		if sample.Capture != c {
			t.Errorf("frame %d: capture %v, want %v", i, sample.Capture, c)
		}
	}
}

// TestHeadersAndFragments: the firmware may put SPS/PPS in a buffer of
// their own and split a picture over buffers; samples stay whole access
// units.
func TestHeadersAndFragments(t *testing.T) {
	devices := &fakes{cfg: FakeConfig{SplitHeaders: true, FragmentBytes: 700}}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := encodeFrames(t, e, media.I420, 640, 480, 40, map[int]bool{7: true}, nil)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for i, sample := range s.samples {
		info := h264.Inspect(sample.Data)
		if info.Slices != 1 {
			t.Errorf("sample %d has %d slices", i, info.Slices)
		}
		if want := i == 0 || i == 7 || i == 37; sample.Keyframe != want || (want && !(info.SPS && info.PPS)) {
			t.Errorf("sample %d: keyframe %v %+v", i, sample.Keyframe, info)
		}
	}
	if got := decode(t, s.annexB()).frames(t); got != 40 {
		t.Fatalf("decoded %d pictures", got)
	}
}

// TestParameterSetsRepeated: should the firmware ignore
// repeat_sequence_header, keyframes still come with SPS/PPS.
func TestParameterSetsRepeated(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	encodeFrames(t, e, media.I420, 640, 480, 1, nil, nil)
	// Switch the fake's header repetition off behind the encoder's back.
	devices.last().find(cidRepeatSeqHeader).value = 0
	s := encodeFrames(t, e, media.I420, 640, 480, 3, map[int]bool{1: true}, nil)
	if info := h264.Inspect(s.samples[1].Data); !info.IDR || !info.SPS || !info.PPS {
		t.Fatalf("forced keyframe: %+v", info)
	}
}

func TestDelayedHardware(t *testing.T) {
	devices := &fakes{cfg: FakeConfig{Latency: 2}}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Delay: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := 0; i < 10; i++ {
		frame := picture(media.I420, 640, 480, i)
		sample, ok, err := e.Encode(frame, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (i >= 2) {
			t.Fatalf("frame %d: ok %v", i, ok)
		}
		if ok && sample.Capture != picture(media.I420, 640, 480, i-2).Capture {
			t.Fatalf("frame %d: got the access unit of %v", i, sample.Capture)
		}
	}
}

func TestCorruptPictureForcesKeyframe(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	encodeFrames(t, e, media.I420, 640, 480, 3, nil, nil)
	devices.last().CorruptNext()
	if _, ok, err := e.Encode(picture(media.I420, 640, 480, 3), false); ok || err != nil {
		t.Fatalf("corrupt picture: ok %v err %v", ok, err)
	}
	s := encodeFrames(t, e, media.I420, 640, 480, 2, nil, nil)
	if !s.samples[0].Keyframe || s.samples[1].Keyframe {
		t.Fatalf("after a corrupt picture: keyframes %v %v", s.samples[0].Keyframe, s.samples[1].Keyframe)
	}
}

// TestDeviceErrorAndReset: a fatal device error surfaces as an error that
// keeps its errno, stays until Reset, and Reset starts a fresh stream.
func TestDeviceErrorAndReset(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	encodeFrames(t, e, media.I420, 640, 480, 3, nil, nil)
	devices.last().Fail()
	_, _, err = e.Encode(picture(media.I420, 640, 480, 3), false)
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "/dev/video11") {
		t.Fatalf("Encode after a device failure: %v", err)
	}
	if _, _, again := e.Encode(picture(media.I420, 640, 480, 4), false); !errors.Is(again, unix.EIO) {
		t.Fatalf("second Encode: %v", again)
	}
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	if len(devices.devices) != 2 || !devices.devices[0].State().Closed {
		t.Fatalf("Reset must close the old handle and open a new one: %d opens", len(devices.devices))
	}
	s := encodeFrames(t, e, media.I420, 640, 480, 2, nil, nil)
	if info := h264.Inspect(s.samples[0].Data); !s.samples[0].Keyframe || !info.SPS {
		t.Fatalf("first picture after Reset: %+v", info)
	}
}

func TestStalledFirmwareTimesOut(t *testing.T) {
	devices := &fakes{cfg: FakeConfig{Stall: true}}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, _, err = e.Encode(picture(media.I420, 640, 480, 0), false)
	if !errors.Is(err, unix.ETIMEDOUT) || !strings.Contains(err.Error(), "no coded picture") {
		t.Fatalf("Encode on a stalled firmware: %v", err)
	}
}

// TestFormatChange: the slate (I420) replacing a YUYV camera sets the
// encoder up again, and the new stream starts with a keyframe.
func TestFormatChange(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Format: media.YUYV, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	before := encodeFrames(t, e, media.YUYV, 640, 480, 3, nil, nil)
	after := encodeFrames(t, e, media.I420, 640, 480, 3, nil, nil)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if len(devices.devices) != 2 || devices.devices[0].State().RawFourCC != "YUYV" || devices.devices[1].State().RawFourCC != "YU12" {
		t.Fatalf("want a YUYV then a YU12 session, got %d", len(devices.devices))
	}
	if !after.samples[0].Keyframe {
		t.Fatal("the new session must start with a keyframe")
	}
	for _, d := range devices.devices {
		if st := d.State(); !st.Closed || st.Mapped != 0 {
			t.Fatalf("session left open: %+v", st)
		}
	}
	all := append(before.annexB(), after.annexB()...)
	if got := decode(t, all).frames(t); got != 6 {
		t.Fatalf("decoded %d pictures", got)
	}
	if _, _, err := e.Encode(picture(media.MJPEG, 640, 480, 0), false); err == nil {
		t.Fatal("Encode took an MJPEG picture")
	}
}

func TestCloseDrainsAndReleases(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	encodeFrames(t, e, media.I420, 640, 480, 4, nil, nil)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	st := devices.last().State()
	if !st.Closed || st.Mapped != 0 || st.OutputBuffers != 0 || st.CaptureBuffers != 0 ||
		st.OutputStreaming || st.CaptureStreaming || st.Stats.EncoderStops != 1 || !st.Stats.LastDequeued {
		t.Fatalf("after Close: %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := e.Encode(picture(media.I420, 640, 480, 0), false); err == nil {
		t.Fatal("Encode after Close")
	}
	if err := e.SetBitrate(1000); err == nil {
		t.Fatal("SetBitrate after Close")
	}
}

// TestCloseAfterFailure releases what it can without draining a dead
// device.
func TestCloseAfterFailure(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	devices.last().Fail()
	if _, _, err := e.Encode(picture(media.I420, 640, 480, 0), false); err == nil {
		t.Fatal("no error from a failed device")
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close after a failure: %v", err)
	}
	if st := devices.last().State(); !st.Closed || st.Mapped != 0 || st.Stats.EncoderStops != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  FakeConfig
		p    encoder.VideoParams
		opt  Options
		want string
	}{
		{"decoder", FakeConfig{Role: FakeDecoder}, params(640, 480), Options{}, "does not encode H.264"},
		{"camera", FakeConfig{Role: FakeCamera}, params(640, 480), Options{}, "not a multi-planar memory-to-memory"},
		{"raw format", FakeConfig{RawFormats: []media.PixelFormat{media.NV12}}, params(640, 480), Options{}, "does not take I420"},
		{"too big", FakeConfig{}, params(2560, 1440), Options{}, "1920"},
		{"MJPEG in", FakeConfig{}, params(640, 480), Options{Format: media.MJPEG}, "not MJPEG"},
		{"max bitrate", FakeConfig{}, params(640, 480), Options{MaxBitrateKbps: 30000}, "at most 20000"},
		{"cbr main", FakeConfig{}, encoder.VideoParams{Width: 640, Height: 480, FPS: 30, BitrateKbps: 1000, Profile: "main"}, Options{RateControl: CBR}, "CABAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices := &fakes{cfg: tt.cfg}
			tt.opt.Logger = quiet
			e, err := New(devices.open, "/dev/video11", tt.p, tt.opt)
			if err == nil {
				e.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			for _, d := range devices.devices {
				if st := d.State(); !st.Closed || st.Mapped != 0 {
					t.Fatalf("failed set-up left the node open: %+v", st)
				}
			}
		})
	}
}

func TestOpenMissingNode(t *testing.T) {
	_, err := Open("/dev/video-none", params(640, 480), Options{Logger: quiet})
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open of a missing node: %v", err)
	}
}

// TestEncodeAllocations: per picture, the encoder allocates the sample's
// own data and nothing else.
func TestEncodeAllocations(t *testing.T) {
	devices := &fakes{}
	e, err := New(devices.open, "/dev/video11", params(1280, 720), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	frames := []media.VideoFrame{picture(media.I420, 1280, 720, 0), picture(media.I420, 1280, 720, 1)}
	encodeFrames(t, e, media.I420, 1280, 720, 2, nil, nil)
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		if _, ok, err := e.Encode(frames[i%2], false); err != nil || !ok {
			t.Fatal(ok, err)
		}
		i++
	})
	// One for the sample's data, and the fake's own copy of its P slice.
	if allocs > 2 {
		t.Fatalf("%v allocations per picture", allocs)
	}
}
