package v4l2m2m

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

func TestFindAmong(t *testing.T) {
	nodes := map[string]FakeConfig{
		"/dev/video0":  {Role: FakeCamera},
		"/dev/video10": {Role: FakeDecoder},
		"/dev/video11": {},
		"/dev/video12": {Role: FakeSinglePlanarEncoder},
		"/dev/video2":  {Card: "some-other-encoder"},
		"/dev/video3":  {Card: "jpeg-only", CodedFormats: []media.PixelFormat{media.MJPEG}},
	}
	var opened []*FakeDevice
	open := func(path string) (Device, error) {
		if path == "/dev/video5" {
			return nil, &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
		}
		cfg, ok := nodes[path]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: path, Err: unix.ENOENT}
		}
		d := NewFakeDevice(cfg)
		opened = append(opened, d)
		return d, nil
	}
	paths := []string{"/dev/video12", "/dev/video11", "/dev/video10", "/dev/video5", "/dev/video3", "/dev/video2", "/dev/video0"}
	path, reason := FindAmong(paths, open)
	if path != "/dev/video11" || !strings.Contains(reason, "bcm2835-codec-encode") {
		t.Fatalf("FindAmong = %q, %q; want the Pi's encoder over the other one at video2", path, reason)
	}
	for _, d := range opened {
		if !d.State().Closed {
			t.Fatal("a probed node was left open")
		}
	}

	// Without the Pi's encoder another M2M H.264 encoder qualifies.
	path, _ = FindAmong([]string{"/dev/video2", "/dev/video0"}, open)
	if path != "/dev/video2" {
		t.Fatalf("FindAmong without the Pi's = %q", path)
	}

	// Without any, the reason names every node and why it was passed over.
	path, reason = FindAmong([]string{"/dev/video0", "/dev/video10", "/dev/video12", "/dev/video3", "/dev/video5"}, open)
	if path != "" {
		t.Fatalf("found %q", path)
	}
	for _, want := range []string{
		"/dev/video0: Fake Webcam is not a memory-to-memory device",
		"/dev/video10: bcm2835-codec-decode does not output H.264",
		"/dev/video12: fake-encoder is a single-planar M2M device",
		"/dev/video3: jpeg-only does not output H.264",
		"/dev/video5: open: permission denied",
	} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	}
	if _, reason := FindAmong(nil, open); reason != "no V4L2 device nodes (/dev/video*)" {
		t.Errorf("no nodes: %q", reason)
	}
}

// TestFind runs the real scan: on this machine there is no Pi encoder, and
// the answer must say why rather than fail.
func TestFind(t *testing.T) {
	path, reason, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	if path == "" && reason == "" {
		t.Fatal("no path and no reason")
	}
	t.Logf("Find: %q, %s", path, reason)
}
