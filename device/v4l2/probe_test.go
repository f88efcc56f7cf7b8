package v4l2

import (
	"errors"
	"reflect"
	"strings"
	"testing"

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
			cfg:  webcam,
			want: Info{
				Path: "/dev/video0", Driver: "fake", Card: "Fake UVC Camera", Bus: "platform:fake",
				Caps:    capVideoCapture | capStreaming,
				Capture: true,
				Formats: []FormatInfo{
					{FourCC: "YUYV", Format: media.YUYV, Description: "Fake YUYV"},
					{FourCC: "MJPG", Format: media.MJPEG, Description: "Fake MJPEG", Compressed: true},
					{FourCC: "H264", Format: media.H264, Description: "Fake H264", Compressed: true},
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
			return nil, errors.New("open " + path + ": " + unix.EACCES.Error())
		}
		cam := NewFakeCamera(cfg)
		fakes = append(fakes, cam)
		return cam, nil
	}
	infos, err := listNodes([]string{"/dev/video10", "/dev/video2", "/dev/video1", "/dev/video0"}, opener)
	if err == nil || !strings.Contains(err.Error(), "/dev/video1") {
		t.Fatalf("err = %v, want the failure of /dev/video1", err)
	}
	var got []string
	for _, info := range infos {
		got = append(got, info.Path+" "+info.Card)
	}
	want := []string{"/dev/video0 Fake UVC Camera", "/dev/video2 HDMI dongle", "/dev/video10 bcm2835-codec-encode"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listNodes = %q, want %q", got, want)
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
	for _, info := range infos {
		if !strings.HasPrefix(info.Path, "/dev/video") {
			t.Errorf("List returned %q", info.Path)
		}
	}
	t.Logf("List: %d nodes, err %v", len(infos), err)
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
