package v4l2

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// quirkyCamera is a FakeCamera whose answers a test can bend, to play the
// drivers that do things the API allows but our fake does not.
type quirkyCamera struct {
	*FakeCamera
	bend func(req uintptr, arg unsafe.Pointer, real func() error) error
}

func (q quirkyCamera) Ioctl(req uintptr, arg unsafe.Pointer) error {
	return q.bend(req, arg, func() error { return q.FakeCamera.Ioctl(req, arg) })
}

func TestDriverQuirks(t *testing.T) {
	tests := []struct {
		name string
		bend func(req uintptr, arg unsafe.Pointer, real func() error) error
		// err is a prefix of the wanted error; empty means Open succeeds.
		err   string
		check func(t *testing.T, m Mode)
	}{
		{
			name: "old driver without device_caps",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocQueryCap {
					c := (*v4l2Capability)(arg)
					c.Capabilities, c.DeviceCaps = capVideoCapture|capStreaming, 0
				}
				return err
			},
		},
		{
			name: "device_caps narrower than the whole device",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocQueryCap {
					// The physical device captures, this node is its
					// metadata node.
					c := (*v4l2Capability)(arg)
					c.Capabilities = capVideoCapture | capStreaming | capDeviceCaps
					c.DeviceCaps = 0x00800000 | capStreaming // META_CAPTURE
				}
				return err
			},
			err: "open /dev/video0 (Fake Camera, device caps 0x04800000): not a video capture device",
		},
		{
			name: "driver substitutes another format",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocSFmt {
					(*v4l2Format)(arg).Fmt.Pix.PixelFormat = pixFmtMJPEG
				}
				return err
			},
			err: "set format 640x480 YUYV on /dev/video0: driver gave MJPG instead",
		},
		{
			name: "driver grants a single buffer",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocReqBufs && (*v4l2RequestBuffers)(arg).Count > 0 {
					(*v4l2RequestBuffers)(arg).Count = 1
				}
				return err
			},
			err: "request 4 buffers on /dev/video0: driver gave 1, need at least 2",
		},
		{
			name: "driver without frame rate control",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				if req == vidiocSParm || req == vidiocGParm {
					return unix.ENOTTY
				}
				return real()
			},
			check: func(t *testing.T, m Mode) {
				if m.FPS != 0 {
					t.Errorf("FPS = %v, want 0 (unknown)", m.FPS)
				}
			},
		},
		{
			name: "driver reports a rate it does not take",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				if req == vidiocSParm {
					return unix.EINVAL
				}
				return real()
			},
			check: func(t *testing.T, m Mode) {
				if m.FPS != 30 {
					t.Errorf("FPS = %v, want the 30 that G_PARM reports", m.FPS)
				}
			},
		},
		{
			name: "driver without timeperframe capability",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocGParm {
					(*v4l2StreamParm)(arg).Parm.Capture.Capability = 0
				}
				return err
			},
			check: func(t *testing.T, m Mode) {
				if m.FPS != 0 {
					t.Errorf("FPS = %v, want 0 (unknown)", m.FPS)
				}
			},
		},
		{
			name: "reading the rate fails",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				if req == vidiocGParm {
					return unix.EIO
				}
				return real()
			},
			err: "read frame rate of /dev/video0: input/output error",
		},
		{
			name: "size enumeration fails oddly",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				if req == vidiocEnumFrameSizes {
					return unix.EIO
				}
				return real()
			},
			check: func(t *testing.T, m Mode) {
				if m.Width != 640 || m.FPS != 30 || !strings.Contains(m.Reason, "lists no sizes") {
					t.Errorf("mode %+v, want 640x480 at 30 fps taken without a list", m)
				}
			},
		},
		{
			name: "frame rate refused for another reason",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				if req == vidiocSParm {
					return unix.EBUSY
				}
				return real()
			},
			err: "set frame rate 30 fps on /dev/video0: device or resource busy",
		},
		{
			name: "mmap fails",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocQueryBuf && (*v4l2Buffer)(arg).Index == 2 {
					(*v4l2Buffer)(arg).setOffset(7 << fakeCookieShift)
				}
				return err
			},
			err: "map buffer 2 (614400 bytes) of /dev/video0: invalid argument",
		},
		{
			name: "bytesperline shorter than a row",
			bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
				err := real()
				if req == vidiocSFmt {
					(*v4l2Format)(arg).Fmt.Pix.BytesPerLine = 100
				}
				return err
			},
			err: "set format 640x480 YUYV on /dev/video0: driver gave 100 bytes per line, less than a row",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(FakeConfig{})
			dev := quirkyCamera{FakeCamera: cam, bend: tt.bend}
			src, err := NewSource(dev, "/dev/video0", Config{Width: 640, Height: 480, FPS: 30, Formats: []media.PixelFormat{media.YUYV}}, device.NewClock())
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v\nwant  %s...", err, tt.err)
				}
				if st := cam.State(); !st.Closed || st.Mapped != 0 {
					t.Fatalf("after failed open: %+v", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if tt.check != nil {
				tt.check(t, src.Mode())
			}
			read(t, src)
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		clock *device.Clock
		err   string
	}{
		{"no size", Config{}, device.NewClock(), "open /dev/video0: size 0x0: width and height must be positive"},
		{"negative height", Config{Width: 640, Height: -1}, device.NewClock(), "open /dev/video0: size 640x-1: width and height must be positive"},
		{"no clock", Config{Width: 640, Height: 480}, nil, "open /dev/video0: no capture clock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(FakeConfig{})
			_, err := NewSource(cam, "/dev/video0", tt.cfg, tt.clock)
			if err == nil || err.Error() != tt.err {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if !cam.State().Closed {
				t.Fatal("device left open")
			}
		})
	}
}

func TestSpuriousWakeupsDoNotSpin(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{})
	// A device that keeps signalling readiness but has no frame: ReadVideo
	// must give up with an error instead of burning a core.
	dev := quirkyCamera{FakeCamera: cam, bend: func(req uintptr, arg unsafe.Pointer, real func() error) error {
		if req == vidiocDQBuf {
			return unix.EAGAIN
		}
		return real()
	}}
	src, err := NewSource(dev, "/dev/video0", Config{Width: 640, Height: 480}, device.NewClock())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.ReadVideo(t.Context())
	if !errors.Is(err, unix.EAGAIN) || !strings.Contains(err.Error(), "keeps signalling without a frame") {
		t.Fatalf("err = %v", err)
	}
}
