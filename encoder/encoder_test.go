package encoder

import (
	"strings"
	"testing"

	"github.com/onair/onair/media"
)

func TestChoose(t *testing.T) {
	pc := Capabilities{HardwareReason: "no V4L2 M2M H.264 encoder in /dev/video*", Software: true, CameraFormat: media.I420}
	pi4 := Capabilities{HardwareEncoder: "/dev/video11", HardwareReason: "bcm2835-codec-encode", Software: true, CameraFormat: media.YUYV}
	h264Cam := Capabilities{HardwareReason: "none", Software: true, CameraFormat: media.H264}
	noCgo := Capabilities{HardwareReason: "none", SoftwareReason: "built without cgo", CameraFormat: media.I420}
	cases := []struct {
		name, configured string
		caps             Capabilities
		want, wantErr    string
	}{
		{"pc auto is x264", "auto", pc, "x264", ""},
		{"pi4 auto is hardware", "auto", pi4, "v4l2m2m", ""},
		{"auto never passthrough", "auto", h264Cam, "x264", ""},
		{"forced passthrough", "passthrough", h264Cam, "passthrough", ""},
		{"passthrough without h264 camera", "passthrough", pc, "", "camera delivers I420"},
		{"forced hardware missing", "v4l2m2m", pc, "", "no V4L2 M2M"},
		{"forced x264 on pi4", "x264", pi4, "x264", ""},
		{"nothing available", "auto", noCgo, "", "built without cgo"},
		{"unknown", "nvenc", pc, "", "not a known encoder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Choose(c.configured, c.caps)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != c.want || got.Reason == "" || len(got.Skipped) != 2 {
				t.Fatalf("got %+v, want %s with a reason and two skipped", got, c.want)
			}
		})
	}
}

func TestYUYVToI420(t *testing.T) {
	// 4x2 picture: Y ramps, U/V differ per row so averaging is visible.
	src := []byte{
		10, 100, 20, 200, 30, 110, 40, 210,
		50, 102, 60, 202, 70, 112, 80, 212,
	}
	dst := make([]byte, 4*2*3/2)
	if err := YUYVToI420(dst, src, 4, 2); err != nil {
		t.Fatal(err)
	}
	want := []byte{10, 20, 30, 40, 50, 60, 70, 80, 101, 111, 201, 211}
	if string(dst) != string(want) {
		t.Fatalf("got %v want %v", dst, want)
	}
	if err := YUYVToI420(dst, src[:10], 4, 2); err == nil {
		t.Fatal("short source accepted")
	}
	if err := YUYVToI420(dst, src, 3, 2); err == nil {
		t.Fatal("odd width accepted")
	}
}
