package v4l2

import (
	"errors"
	"reflect"
	"testing"

	"github.com/onair/onair/media"
)

// sizes builds a discrete size list: each entry is width, height and the
// rates listed at that size.
func sizes(entries ...any) []FrameSize {
	var out []FrameSize
	for i := 0; i+2 < len(entries); i += 3 {
		rates := entries[i+2].([]float64)
		s := FrameSize{Width: entries[i].(int), Height: entries[i+1].(int), FrameRates: rates}
		for _, r := range rates {
			if s.MaxFPS == 0 || r > s.MaxFPS {
				s.MaxFPS = r
			}
			if s.MinFPS == 0 || r < s.MinFPS {
				s.MinFPS = r
			}
		}
		out = append(out, s)
	}
	return out
}

func rates(r ...float64) []float64 { return r }

var (
	// uvcWebcam is a typical USB 2 webcam (C920-like): raw frames are
	// limited by the bus, MJPEG runs at 30 everywhere.
	uvcWebcam = []FormatInfo{
		{FourCC: "YUYV", Format: media.YUYV, Sizes: sizes(
			640, 480, rates(30, 24, 20, 15, 10, 7.5, 5),
			800, 600, rates(24, 20, 15, 10, 7.5, 5),
			1280, 720, rates(10, 7.5, 5),
			1920, 1080, rates(5),
		)},
		{FourCC: "MJPG", Format: media.MJPEG, Compressed: true, Sizes: sizes(
			640, 480, rates(30, 24, 20, 15, 10, 7.5, 5),
			800, 600, rates(30, 24, 20, 15, 10, 7.5, 5),
			1280, 720, rates(30, 24, 20, 15, 10, 7.5, 5),
			1920, 1080, rates(30, 24, 20, 15, 10, 7.5, 5),
		)},
	}
	// ms2109 is a cheap USB HDMI capture dongle: raw 1080p at 5 fps,
	// MJPEG at 30.
	ms2109 = []FormatInfo{
		{FourCC: "MJPG", Format: media.MJPEG, Compressed: true, Sizes: sizes(
			1920, 1080, rates(30, 25, 20, 10, 5),
			1600, 1200, rates(30, 25, 20, 10, 5),
			1280, 720, rates(60, 50, 30, 20, 10, 5),
			720, 480, rates(60, 50, 30, 20, 10, 5),
			640, 480, rates(60, 50, 30, 20, 10, 5),
		)},
		{FourCC: "YUYV", Format: media.YUYV, Sizes: sizes(
			1920, 1080, rates(5),
			1600, 1200, rates(5),
			1280, 720, rates(10),
			720, 480, rates(30, 20, 10, 5),
			640, 480, rates(30, 20, 10, 5),
		)},
	}
	// fourThree is a 4:3 camera without any 16:9 size.
	fourThree = []FormatInfo{
		{FourCC: "YUYV", Format: media.YUYV, Sizes: sizes(
			640, 480, rates(30, 15),
			800, 600, rates(20, 15),
			1024, 768, rates(10, 5),
		)},
		{FourCC: "MJPG", Format: media.MJPEG, Compressed: true, Sizes: sizes(
			640, 480, rates(30, 15),
			800, 600, rates(30, 15),
			1024, 768, rates(30, 15),
			1600, 1200, rates(15),
		)},
	}
	// vividWebcam is what vivid's webcam input lists (Linux 6.x): the
	// same discrete sizes for its raw formats, fewer rates as they grow.
	vividSizes = sizes(
		320, 180, rates(1, 2, 4, 5, 10, 12.5, 15, 25, 30, 40, 50, 60),
		640, 360, rates(1, 2, 4, 5, 10, 12.5, 15, 25, 30, 40),
		640, 480, rates(1, 2, 4, 5, 10, 12.5, 15, 25),
		1280, 720, rates(1, 2, 4, 5, 10, 12.5),
		1920, 1080, rates(1, 2, 4, 5),
		3840, 2160, rates(1, 2),
	)
	vividWebcam = []FormatInfo{
		{FourCC: "YUYV", Format: media.YUYV, Sizes: vividSizes},
		{FourCC: "YU12", Format: media.I420, Sizes: vividSizes},
		{FourCC: "NV12", Format: media.NV12, Sizes: vividSizes},
		{FourCC: "RGB3"},
	}
	// hdmiBridge enumerates a stepwise size range with a continuous
	// interval range (tc358743-like bridges, vivid's HDMI input).
	hdmiBridge = []FormatInfo{
		{FourCC: "NV12", Format: media.NV12, Sizes: []FrameSize{{
			Width: 1920, Height: 1080, Range: true, MinWidth: 16, MinHeight: 16, StepWidth: 16, StepHeight: 8,
			MinFPS: 1, MaxFPS: 60,
		}}},
	}
	// ntsc lists NTSC-derived rates only.
	ntsc = []FormatInfo{
		{FourCC: "YUYV", Format: media.YUYV, Sizes: sizes(1280, 720, rates(59.94, 29.97))},
	}
	rawThenMJPEG = []media.PixelFormat{media.I420, media.NV12, media.YUYV, media.MJPEG}
)

func TestChooseMode(t *testing.T) {
	tests := []struct {
		name    string
		formats []FormatInfo
		want    Config
		got     ModeChoice
	}{
		{
			name:    "webcam: raw 720p too slow, MJPEG keeps the rate",
			formats: uvcWebcam,
			want:    Config{Width: 1280, Height: 720, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1280, Height: 720, FPS: 30,
				Reason: "YUYV 1280x720 gives only 10 fps; MJPEG 1280x720 gives 30 fps"},
		},
		{
			name:    "webcam: raw where it keeps the rate",
			formats: uvcWebcam,
			want:    Config{Width: 640, Height: 480, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 640, Height: 480, FPS: 30,
				Reason: "YUYV 640x480 gives 30 fps"},
		},
		{
			name:    "webcam: the slowest listed rate that keeps the wanted one",
			formats: uvcWebcam,
			want:    Config{Width: 1280, Height: 720, FPS: 8, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 1280, Height: 720, FPS: 10,
				Reason: "YUYV 1280x720 gives 10 fps"},
		},
		{
			name:    "webcam, raw only: the rate wins over the size",
			formats: uvcWebcam,
			want:    Config{Width: 1280, Height: 720, FPS: 30, Formats: []media.PixelFormat{media.YUYV}},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 640, Height: 480, FPS: 30,
				Reason: "no format gives 1280x720 at 30 fps (YUYV 1280x720 gives only 10 fps); 640x480 is the nearest size that does, in YUYV at 30 fps"},
		},
		{
			name:    "HDMI dongle: MJPEG 1080p30 over raw 1080p5",
			formats: ms2109,
			want:    Config{Width: 1920, Height: 1080, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1920, Height: 1080, FPS: 30,
				Reason: "YUYV 1920x1080 gives only 5 fps; MJPEG 1920x1080 gives 30 fps"},
		},
		{
			name:    "HDMI dongle: raw at a small size, though MJPEG is listed first",
			formats: ms2109,
			want:    Config{Width: 720, Height: 480, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 720, Height: 480, FPS: 30,
				Reason: "YUYV 720x480 gives 30 fps"},
		},
		{
			name:    "HDMI dongle at 60: only MJPEG 720p",
			formats: ms2109,
			want:    Config{Width: 1920, Height: 1080, FPS: 60, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1280, Height: 720, FPS: 60,
				Reason: "no format gives 1920x1080 at 60 fps (YUYV 1920x1080 gives only 5 fps, MJPEG 1920x1080 gives only 30 fps); 1280x720 is the nearest size that does, in MJPEG at 60 fps"},
		},
		{
			name:    "no exact size: the nearest that keeps the rate",
			formats: fourThree,
			want:    Config{Width: 1280, Height: 720, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1024, Height: 768, FPS: 30,
				Reason: "no format gives 1280x720 at 30 fps (YUYV has no 1280x720, MJPEG has no 1280x720); 1024x768 is the nearest size that does, in MJPEG at 30 fps"},
		},
		{
			name:    "no exact size, raw preferred at the same nearest size",
			formats: fourThree,
			want:    Config{Width: 640, Height: 400, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 640, Height: 480, FPS: 30,
				Reason: "no format gives 640x400 at 30 fps (YUYV has no 640x400, MJPEG has no 640x400); 640x480 is the nearest size that does, in YUYV at 30 fps"},
		},
		{
			name:    "nothing reaches the rate: the fastest, nearest in size",
			formats: fourThree,
			want:    Config{Width: 1280, Height: 720, FPS: 60, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1024, Height: 768, FPS: 30,
				Reason: "no mode gives 60 fps; fastest is MJPEG 1024x768 at 30 fps"},
		},
		{
			name:    "vivid: 720p only to 12.5 fps, 640x360 is the nearest size at 30",
			formats: vividWebcam,
			want:    Config{Width: 1280, Height: 720, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.I420, FourCC: "YU12", Width: 640, Height: 360, FPS: 30,
				Reason: "no format gives 1280x720 at 30 fps (I420 1280x720 gives only 12.5 fps, NV12 1280x720 gives only 12.5 fps, YUYV 1280x720 gives only 12.5 fps); 640x360 is the nearest size that does, in I420 at 30 fps"},
		},
		{
			name:    "vivid at a rate 720p has",
			formats: vividWebcam,
			want:    Config{Width: 1280, Height: 720, FPS: 12, Formats: []media.PixelFormat{media.YUYV}},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 1280, Height: 720, FPS: 12.5,
				Reason: "YUYV 1280x720 gives 12.5 fps"},
		},
		{
			name:    "no preference: the camera's own order",
			formats: vividWebcam,
			want:    Config{Width: 640, Height: 480, FPS: 25},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 640, Height: 480, FPS: 25,
				Reason: "YUYV 640x480 gives 25 fps"},
		},
		{
			name:    "no rate wanted: the size alone",
			formats: uvcWebcam,
			want:    Config{Width: 1920, Height: 1080, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 1920, Height: 1080,
				Reason: "YUYV gives 1920x1080"},
		},
		{
			name:    "stepwise sizes, continuous rates",
			formats: hdmiBridge,
			want:    Config{Width: 1280, Height: 720, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.NV12, FourCC: "NV12", Width: 1280, Height: 720, FPS: 30,
				Reason: "NV12 1280x720 gives 30 fps"},
		},
		{
			name:    "stepwise sizes: off the grid snaps to it",
			formats: hdmiBridge,
			want:    Config{Width: 1366, Height: 766, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.NV12, FourCC: "NV12", Width: 1360, Height: 768, FPS: 30,
				Reason: "no format gives 1366x766 at 30 fps (NV12 has no 1366x766); 1360x768 is the nearest size that does, in NV12 at 30 fps"},
		},
		{
			name:    "continuous rates above the range: its fastest",
			formats: hdmiBridge,
			want:    Config{Width: 1920, Height: 1080, FPS: 120, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.NV12, FourCC: "NV12", Width: 1920, Height: 1080, FPS: 60,
				Reason: "no mode gives 120 fps; fastest is NV12 1920x1080 at 60 fps"},
		},
		{
			name:    "29.97 keeps 30",
			formats: ntsc,
			want:    Config{Width: 1280, Height: 720, FPS: 30},
			got: ModeChoice{Format: media.YUYV, FourCC: "YUYV", Width: 1280, Height: 720, FPS: 29.97,
				Reason: "YUYV 1280x720 gives 29.97 fps"},
		},
		{
			name: "sizes not listed: the wanted size, the driver decides",
			formats: []FormatInfo{
				{FourCC: "YUYV", Format: media.YUYV},
				{FourCC: "H264", Format: media.H264, Compressed: true},
			},
			want: Config{Width: 1280, Height: 720, FPS: 30, Formats: []media.PixelFormat{media.H264}},
			got: ModeChoice{Format: media.H264, FourCC: "H264", Width: 1280, Height: 720, FPS: 30,
				Reason: "H264 lists no sizes or rates; asked for 1280x720"},
		},
		{
			name: "listed sizes without rates lose to a listed rate",
			formats: []FormatInfo{
				{FourCC: "YUYV", Format: media.YUYV, Sizes: []FrameSize{{Width: 1280, Height: 720}}},
				{FourCC: "MJPG", Format: media.MJPEG, Sizes: sizes(1280, 720, rates(30))},
			},
			want: Config{Width: 1280, Height: 720, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "MJPG", Width: 1280, Height: 720, FPS: 30,
				Reason: "YUYV 1280x720 lists no rate; MJPEG 1280x720 gives 30 fps"},
		},
		{
			name: "old MJPEG name",
			formats: []FormatInfo{
				{FourCC: "JPEG", Format: media.MJPEG, Sizes: sizes(640, 480, rates(30))},
			},
			want: Config{Width: 640, Height: 480, FPS: 30, Formats: rawThenMJPEG},
			got: ModeChoice{Format: media.MJPEG, FourCC: "JPEG", Width: 640, Height: 480, FPS: 30,
				Reason: "MJPEG 640x480 gives 30 fps"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseMode(tt.formats, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.got) {
				t.Fatalf("ChooseMode =\n%+v\nwant\n%+v", got, tt.got)
			}
		})
	}
}

func TestChooseModeWithoutAWantedFormat(t *testing.T) {
	_, err := ChooseMode(uvcWebcam, Config{Width: 1280, Height: 720, FPS: 30, Formats: []media.PixelFormat{media.H264}})
	if !errors.Is(err, ErrNoFormat) || err.Error() != "offers YUYV, MJPG, wanted H264: camera offers none of the wanted formats" {
		t.Fatalf("err = %v", err)
	}
	_, err = ChooseMode(vividWebcam[3:], Config{Width: 1280, Height: 720})
	if !errors.Is(err, ErrNoFormat) || err.Error() != "offers RGB3, wanted any of I420, NV12, YUYV, H264, MJPEG: camera offers none of the wanted formats" {
		t.Fatalf("err = %v", err)
	}
}

func TestIntervalOf(t *testing.T) {
	for fps, want := range map[float64]v4l2Fract{
		30: {1, 30}, 12.5: {2, 25}, 7.5: {2, 15}, 30000.0 / 1001: {1001, 30000}, 60000.0 / 1001: {1001, 60000},
		0: {}, 0.5: {2, 1},
	} {
		if got := intervalOf(fps); got != want {
			t.Errorf("intervalOf(%v) = %v, want %v", fps, got, want)
		}
	}
}

func TestSnap(t *testing.T) {
	for _, tt := range []struct{ want, lo, hi, step, got int }{
		{1280, 16, 1920, 16, 1280}, {1366, 16, 1920, 16, 1360}, {1370, 16, 1920, 16, 1376},
		{4000, 16, 1920, 16, 1920}, {2, 16, 1920, 16, 16}, {777, 1, 1920, 1, 777}, {777, 1, 1920, 0, 777},
	} {
		if got := snap(tt.want, tt.lo, tt.hi, tt.step); got != tt.got {
			t.Errorf("snap(%d, %d, %d, %d) = %d, want %d", tt.want, tt.lo, tt.hi, tt.step, got, tt.got)
		}
	}
}
