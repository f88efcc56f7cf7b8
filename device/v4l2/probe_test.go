package v4l2

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// piEncoder looks like the Raspberry Pi's bcm2835-codec encoder node.
var piEncoder = FakeConfig{
	Driver:        "bcm2835-codec",
	Card:          "bcm2835-codec-encode",
	Bus:           "platform:bcm2835-codec",
	M2M:           true,
	Formats:       []FakeFormat{{Format: media.H264}},
	OutputFormats: []FakeFormat{{Format: media.I420}, {Format: media.NV12}, {Format: media.YUYV}},
}

func TestProbeDevice(t *testing.T) {
	tests := []struct {
		name string
		cfg  FakeConfig
		want Info
	}{
		{
			name: "UVC camera",
			cfg: FakeConfig{
				Card: "Fake UVC Camera",
				Formats: []FakeFormat{
					// Raw 720p only at 10 fps over USB 2: the reason to
					// know rates per size.
					{Format: media.YUYV, Sizes: []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720, FrameRates: []int{10, 5}}}},
					{Format: media.MJPEG, Sizes: []FakeSize{{Width: 1280, Height: 720}}},
					{Format: media.H264, Sizes: []FakeSize{{Width: 1920, Height: 1080}}},
				},
				FrameRates: []int{30, 15},
			},
			want: Info{
				Path: "/dev/video0", Driver: "fake", Card: "Fake UVC Camera", Bus: "platform:fake",
				Caps:    capVideoCapture | capStreaming,
				Capture: true,
				Formats: []FormatInfo{
					{FourCC: "YUYV", Format: media.YUYV, Description: "Fake YUYV", Sizes: []FrameSize{
						{Width: 640, Height: 480, FrameRates: []float64{30, 15}, MinFPS: 15, MaxFPS: 30},
						{Width: 1280, Height: 720, FrameRates: []float64{10, 5}, MinFPS: 5, MaxFPS: 10},
					}},
					{FourCC: "MJPG", Format: media.MJPEG, Description: "Fake MJPEG", Compressed: true, Sizes: []FrameSize{
						{Width: 1280, Height: 720, FrameRates: []float64{30, 15}, MinFPS: 15, MaxFPS: 30},
					}},
					{FourCC: "H264", Format: media.H264, Description: "Fake H264", Compressed: true, Sizes: []FrameSize{
						{Width: 1920, Height: 1080, FrameRates: []float64{30, 15}, MinFPS: 15, MaxFPS: 30},
					}},
				},
			},
		},
		{
			name: "Pi hardware encoder",
			cfg:  piEncoder,
			want: Info{
				Path: "/dev/video0", Driver: "bcm2835-codec", Card: "bcm2835-codec-encode", Bus: "platform:bcm2835-codec",
				Caps: capVideoM2MMplane | capStreaming, M2M: true, MultiPlanar: true,
				Formats: []FormatInfo{{FourCC: "H264", Format: media.H264, Description: "Fake H264", Compressed: true}},
				OutputFormats: []FormatInfo{
					{FourCC: "YU12", Format: media.I420, Description: "Fake I420"},
					{FourCC: "NV12", Format: media.NV12, Description: "Fake NV12"},
					{FourCC: "YUYV", Format: media.YUYV, Description: "Fake YUYV"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(tt.cfg)
			info, err := ProbeDevice(cam, "/dev/video0")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(info, tt.want) {
				t.Fatalf("ProbeDevice =\n%+v\nwant\n%+v", info, tt.want)
			}
			if st := cam.State(); st.Streaming || st.Buffers != 0 {
				t.Fatalf("probing changed the device: %+v", st)
			}
		})
	}
}

func TestOffers(t *testing.T) {
	formats := []FormatInfo{{FourCC: "YUYV", Format: media.YUYV}, {FourCC: "pRAA"}}
	if !Offers(formats, media.YUYV) || Offers(formats, media.H264) {
		t.Fatal("Offers got YUYV/H264 wrong")
	}
	if Offers(formats, 0) {
		t.Fatal("an unknown fourcc must not count as a format")
	}
}

func TestListNodes(t *testing.T) {
	cams := map[string]FakeConfig{
		"/dev/video0":  webcam,
		"/dev/video10": piEncoder,
		"/dev/video2":  {Card: "HDMI dongle", Formats: []FakeFormat{{Format: media.MJPEG}}},
	}
	var fakes []*FakeCamera
	opener := func(path string) (Device, error) {
		cfg, ok := cams[path]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: path, Err: unix.EACCES}
		}
		cam := NewFakeCamera(cfg)
		fakes = append(fakes, cam)
		return cam, nil
	}
	infos := listNodes([]string{"/dev/video10", "/dev/video2", "/dev/video1", "/dev/video0"}, opener)
	var got []string
	for _, info := range infos {
		got = append(got, info.Path+" "+info.Card)
	}
	want := []string{"/dev/video0 Fake UVC Camera", "/dev/video1 ", "/dev/video2 HDMI dongle", "/dev/video10 bcm2835-codec-encode"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listNodes = %q, want %q", got, want)
	}
	// The node that failed is listed with its error and nothing else, so
	// a caller looking for capture or M2M nodes passes over it.
	if bad := infos[1]; bad.Err == nil || !errors.Is(bad.Err, unix.EACCES) || bad.Capture || bad.M2M {
		t.Fatalf("failed node = %+v, want Err wrapping EACCES and nothing else", bad)
	}
	for i, info := range infos {
		if i != 1 && info.Err != nil {
			t.Fatalf("%s: unexpected Err %v", info.Path, info.Err)
		}
	}
	for _, cam := range fakes {
		if !cam.State().Closed {
			t.Fatal("listNodes left a device open")
		}
	}
}

func TestListOnThisMachine(t *testing.T) {
	// Runs the real glob and open path; a machine without cameras gives an
	// empty list, one with cameras gives their infos.
	infos, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if !strings.HasPrefix(info.Path, "/dev/video") {
			t.Errorf("List returned %q", info.Path)
		}
		t.Logf("%s: %q driver %q capture %v m2m %v err %v", info.Path, info.Card, info.Driver, info.Capture, info.M2M, info.Err)
	}
}

func TestProbeNonV4L2Node(t *testing.T) {
	_, err := Probe("/dev/null")
	if err == nil || !strings.HasPrefix(err.Error(), "query capabilities of /dev/null: ") {
		t.Fatalf("err = %v, want a query capabilities error", err)
	}
}

func TestSortNodes(t *testing.T) {
	paths := []string{"/dev/video11", "/dev/video2", "/dev/video-odd", "/dev/video0", "/dev/video10"}
	sortNodes(paths)
	want := []string{"/dev/video-odd", "/dev/video0", "/dev/video2", "/dev/video10", "/dev/video11"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("sortNodes = %q, want %q", paths, want)
	}
}

// rangeCamera answers the enumerations the way HDMI bridges and vivid do:
// one stepwise size range and a continuous interval range. Only the
// enumeration requests are implemented; it embeds a FakeCamera for the rest.
type rangeCamera struct {
	*FakeCamera
}

func (r rangeCamera) Ioctl(req uintptr, arg unsafe.Pointer) error {
	switch req {
	case vidiocEnumFrameSizes:
		e := (*v4l2FrmSizeEnum)(arg)
		if e.Index > 0 {
			return unix.EINVAL
		}
		e.Type = frmTypeStepwise
		e.Size = v4l2FrmSizeStepwise{MinWidth: 16, MaxWidth: 1920, StepWidth: 2, MinHeight: 16, MaxHeight: 1080, StepHeight: 2}
		return nil
	case vidiocEnumFrameIntervals:
		e := (*v4l2FrmIvalEnum)(arg)
		if e.Index > 0 || e.Width != 1920 || e.Height != 1080 {
			return unix.EINVAL
		}
		e.Type = frmTypeContinuous
		e.Interval = v4l2FrmIvalStepwise{
			Min:  v4l2Fract{Numerator: 1, Denominator: 60},
			Max:  v4l2Fract{Numerator: 1, Denominator: 1},
			Step: v4l2Fract{Numerator: 1, Denominator: 1},
		}
		return nil
	}
	return r.FakeCamera.Ioctl(req, arg)
}

func TestProbeSizeAndRateRanges(t *testing.T) {
	dev := rangeCamera{NewFakeCamera(FakeConfig{Formats: []FakeFormat{{Format: media.NV12}}})}
	info, err := ProbeDevice(dev, "/dev/video0")
	if err != nil {
		t.Fatal(err)
	}
	want := []FrameSize{{
		Width: 1920, Height: 1080, Range: true,
		MinWidth: 16, MinHeight: 16, StepWidth: 2, StepHeight: 2,
		MinFPS: 1, MaxFPS: 60,
	}}
	if got := info.Formats[0].Sizes; !reflect.DeepEqual(got, want) {
		t.Fatalf("sizes = %+v\nwant    %+v", got, want)
	}
}

func TestOpenLetsTheRateWinOverTheSize(t *testing.T) {
	cfg := FakeConfig{
		Formats:    []FakeFormat{{Format: media.YUYV, Sizes: []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720, FrameRates: []int{10, 5}}}}},
		FrameRates: []int{30, 15},
	}
	tests := []struct {
		fps           int
		width, height int
	}{
		// Raw 720p only comes at 10 fps: 30 fps means the smaller size.
		{30, 640, 480},
		// At 10 fps the wanted size is there.
		{10, 1280, 720},
	}
	for _, tt := range tests {
		src, cam, _ := openFake(t, cfg, Config{Width: 1280, Height: 720, FPS: tt.fps, Formats: []media.PixelFormat{media.YUYV}})
		m := src.Mode()
		if m.Width != tt.width || m.Height != tt.height || m.FPS != float64(tt.fps) {
			t.Fatalf("at %d fps: Mode() = %dx%d at %v fps, want %dx%d at %d", tt.fps, m.Width, m.Height, m.FPS, tt.width, tt.height, tt.fps)
		}
		if st := cam.State(); st.FPS != tt.fps || st.Width != tt.width {
			t.Fatalf("at %d fps: camera runs %dx%d at %d fps", tt.fps, st.Width, st.Height, st.FPS)
		}
		if m.Reason == "" {
			t.Fatalf("at %d fps: no reason given for the mode", tt.fps)
		}
	}
}

func TestOpenChoosesTheModeThatKeepsTheRate(t *testing.T) {
	// A USB 2 webcam: raw 720p at 10 fps, MJPEG 720p at 30.
	uvc := FakeConfig{Formats: []FakeFormat{
		{Format: media.YUYV, Sizes: []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720, FrameRates: []int{10, 5}}}},
		{Format: media.MJPEG, Sizes: []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720}}},
	}, FrameRates: []int{30, 15}}
	raw := []media.PixelFormat{media.I420, media.YUYV, media.MJPEG}
	tests := []struct {
		name   string
		cfg    FakeConfig
		want   Config
		mode   Mode
		fourcc string
	}{
		{"webcam 720p30", uvc, Config{Width: 1280, Height: 720, FPS: 30, Formats: raw},
			Mode{Format: media.MJPEG, FourCC: "MJPG", Width: 1280, Height: 720, FPS: 30,
				Reason: "YUYV 1280x720 gives only 10 fps; MJPEG 1280x720 gives 30 fps"}, "MJPG"},
		{"webcam 480p30", uvc, Config{Width: 640, Height: 480, FPS: 30, Formats: raw},
			Mode{Format: media.YUYV, FourCC: "YUYV", Width: 640, Height: 480, Stride: 1280, FPS: 30,
				Reason: "YUYV 640x480 gives 30 fps"}, "YUYV"},
		{"range 720p30", hdmiRange, Config{Width: 1280, Height: 720, FPS: 30},
			Mode{Format: media.NV12, FourCC: "NV12", Width: 1280, Height: 720, Stride: 1280, FPS: 30,
				Reason: "NV12 1280x720 gives 30 fps"}, "NV12"},
		{"range faster than it goes", hdmiRange, Config{Width: 1920, Height: 1080, FPS: 90},
			Mode{Format: media.NV12, FourCC: "NV12", Width: 1920, Height: 1080, Stride: 1920, FPS: 60,
				Reason: "no mode gives 90 fps; fastest is NV12 1920x1080 at 60 fps"}, "NV12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, cam, _ := openFake(t, tt.cfg, tt.want)
			m := src.Mode()
			m.Buffers = 0
			if !reflect.DeepEqual(m, tt.mode) {
				t.Fatalf("Mode() =\n%+v\nwant\n%+v", m, tt.mode)
			}
			if st := cam.State(); st.FourCC != tt.fourcc || st.Width != tt.mode.Width || st.FPS != int(tt.mode.FPS) {
				t.Fatalf("camera runs %s %dx%d at %d fps", st.FourCC, st.Width, st.Height, st.FPS)
			}
			if f := read(t, src); f.Format != tt.mode.Format || f.Width != tt.mode.Width {
				t.Fatalf("frame %s %dx%d", f.Format, f.Width, f.Height)
			}
		})
	}
}
