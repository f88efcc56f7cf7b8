package v4l2

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// fakeDriver drives a FakeCamera with raw ioctls, the way a careless user
// of the API might, to check that it refuses what the kernel refuses.
type fakeDriver struct {
	t   *testing.T
	cam *FakeCamera
	mem [][]byte
}

func (d *fakeDriver) sFmt(w, h int, code uint32) (v4l2PixFormat, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	f.Fmt.Pix = v4l2PixFormat{Width: uint32(w), Height: uint32(h), PixelFormat: code}
	err := d.cam.Ioctl(vidiocSFmt, unsafe.Pointer(&f))
	return f.Fmt.Pix, err
}

func (d *fakeDriver) reqBufs(count, bufType, memory uint32) error {
	req := v4l2RequestBuffers{Count: count, Type: bufType, Memory: memory}
	return d.cam.Ioctl(vidiocReqBufs, unsafe.Pointer(&req))
}

func (d *fakeDriver) mapAll() error {
	for i := range d.cam.State().Buffers {
		b := v4l2Buffer{Index: uint32(i), Type: bufTypeVideoCapture, Memory: memoryMMAP}
		if err := d.cam.Ioctl(vidiocQueryBuf, unsafe.Pointer(&b)); err != nil {
			return err
		}
		mem, err := d.cam.Mmap(int64(b.offset()), int(b.Length))
		if err != nil {
			return err
		}
		d.mem = append(d.mem, mem)
	}
	return nil
}

func (d *fakeDriver) unmapAll() error {
	for _, m := range d.mem {
		if err := d.cam.Munmap(m); err != nil {
			return err
		}
	}
	d.mem = nil
	return nil
}

func (d *fakeDriver) qbuf(index, bufType, memory uint32) error {
	b := v4l2Buffer{Index: index, Type: bufType, Memory: memory}
	return d.cam.Ioctl(vidiocQBuf, unsafe.Pointer(&b))
}

func (d *fakeDriver) dqbuf() (v4l2Buffer, error) {
	b := v4l2Buffer{Type: bufTypeVideoCapture, Memory: memoryMMAP}
	err := d.cam.Ioctl(vidiocDQBuf, unsafe.Pointer(&b))
	return b, err
}

func (d *fakeDriver) stream(on bool, bufType int32) error {
	req := vidiocStreamOff
	if on {
		req = vidiocStreamOn
	}
	return d.cam.Ioctl(req, unsafe.Pointer(&bufType))
}

// sParm asks for a frame interval and returns what G_PARM reads back.
func (d *fakeDriver) sParm(num, den uint32) (v4l2Fract, error) {
	p := v4l2StreamParm{Type: bufTypeVideoCapture}
	p.Parm.Capture.TimePerFrame = v4l2Fract{Numerator: num, Denominator: den}
	if err := d.cam.Ioctl(vidiocSParm, unsafe.Pointer(&p)); err != nil {
		return v4l2Fract{}, err
	}
	g := v4l2StreamParm{Type: bufTypeVideoCapture}
	err := d.cam.Ioctl(vidiocGParm, unsafe.Pointer(&g))
	if g.Parm.Capture.Capability&captureTimePerFrame == 0 {
		d.t.Fatalf("G_PARM without the timeperframe capability")
	}
	return g.Parm.Capture.TimePerFrame, err
}

// must fails the test on an error in a step that has to work.
func (d *fakeDriver) must(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatalf("setup step failed: %v", err)
	}
}

// streaming brings the fake to STREAMON with 4 mapped buffers, all queued.
func (d *fakeDriver) streaming() {
	d.t.Helper()
	d.must(d.reqBufs(4, bufTypeVideoCapture, memoryMMAP))
	d.must(d.mapAll())
	for i := range uint32(4) {
		d.must(d.qbuf(i, bufTypeVideoCapture, memoryMMAP))
	}
	d.must(d.stream(true, bufTypeVideoCapture))
}

func TestFakeEnforcesKernelRules(t *testing.T) {
	tests := []struct {
		name  string
		setup func(d *fakeDriver)
		op    func(d *fakeDriver) error
		want  error
	}{
		{"S_FMT while streaming", (*fakeDriver).streaming,
			func(d *fakeDriver) error { _, err := d.sFmt(640, 480, pixFmtYUYV); return err }, unix.EBUSY},
		{"S_FMT with buffers allocated", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { _, err := d.sFmt(640, 480, pixFmtYUYV); return err }, unix.EBUSY},
		{"REQBUFS while streaming", (*fakeDriver).streaming,
			func(d *fakeDriver) error { return d.reqBufs(0, bufTypeVideoCapture, memoryMMAP) }, unix.EBUSY},
		{"REQBUFS while mapped", func(d *fakeDriver) {
			d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP))
			d.must(d.mapAll())
		}, func(d *fakeDriver) error { return d.reqBufs(0, bufTypeVideoCapture, memoryMMAP) }, unix.EBUSY},
		{"REQBUFS after unmapping", func(d *fakeDriver) {
			d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP))
			d.must(d.mapAll())
			d.must(d.unmapAll())
		}, func(d *fakeDriver) error { return d.reqBufs(0, bufTypeVideoCapture, memoryMMAP) }, nil},
		{"REQBUFS wrong memory", nil,
			func(d *fakeDriver) error { return d.reqBufs(2, bufTypeVideoCapture, 2 /* USERPTR */) }, unix.EINVAL},
		{"REQBUFS wrong type", nil,
			func(d *fakeDriver) error { return d.reqBufs(2, bufTypeVideoOutput, memoryMMAP) }, unix.EINVAL},
		{"QBUF index out of range", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { return d.qbuf(2, bufTypeVideoCapture, memoryMMAP) }, unix.EINVAL},
		{"QBUF already queued", func(d *fakeDriver) {
			d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP))
			d.must(d.qbuf(1, bufTypeVideoCapture, memoryMMAP))
		}, func(d *fakeDriver) error { return d.qbuf(1, bufTypeVideoCapture, memoryMMAP) }, unix.EINVAL},
		{"QBUF wrong type", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { return d.qbuf(0, bufTypeVideoCaptureMplane, memoryMMAP) }, unix.EINVAL},
		{"QBUF wrong memory", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { return d.qbuf(0, bufTypeVideoCapture, 4 /* DMABUF */) }, unix.EINVAL},
		{"DQBUF not streaming", func(d *fakeDriver) {
			d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP))
			d.must(d.qbuf(0, bufTypeVideoCapture, memoryMMAP))
		}, func(d *fakeDriver) error { _, err := d.dqbuf(); return err }, unix.EINVAL},
		{"DQBUF with nothing queued", func(d *fakeDriver) {
			d.streaming()
			for range 4 {
				_, err := d.dqbuf()
				d.must(err)
			}
		}, func(d *fakeDriver) error { _, err := d.dqbuf(); return err }, unix.EINVAL},
		{"DQBUF while the sensor stalls", func(d *fakeDriver) {
			d.streaming()
			d.cam.Pause()
		}, func(d *fakeDriver) error { _, err := d.dqbuf(); return err }, unix.EAGAIN},
		{"STREAMON without buffers", nil,
			func(d *fakeDriver) error { return d.stream(true, bufTypeVideoCapture) }, unix.EINVAL},
		{"STREAMON wrong type", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { return d.stream(true, bufTypeVideoOutput) }, unix.EINVAL},
		{"STREAMOFF then QBUF again", func(d *fakeDriver) {
			d.streaming()
			d.must(d.stream(false, bufTypeVideoCapture))
		}, func(d *fakeDriver) error { return d.qbuf(0, bufTypeVideoCapture, memoryMMAP) }, nil},
		{"mmap of an unknown cookie", func(d *fakeDriver) { d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP)) },
			func(d *fakeDriver) error { _, err := d.cam.Mmap(5<<fakeCookieShift, 4096); return err }, unix.EINVAL},
		{"munmap of foreign memory", nil,
			func(d *fakeDriver) error { return d.cam.Munmap(make([]byte, 16)) }, unix.EINVAL},
		{"S_PARM while streaming", (*fakeDriver).streaming,
			func(d *fakeDriver) error { _, err := d.sParm(1, 30); return err }, unix.EBUSY},
		{"S_PARM wrong type", nil,
			func(d *fakeDriver) error {
				p := v4l2StreamParm{Type: bufTypeVideoOutput}
				return d.cam.Ioctl(vidiocSParm, unsafe.Pointer(&p))
			}, unix.EINVAL},
		{"ENUM_FRAMEINTERVALS at a size not listed", nil,
			func(d *fakeDriver) error {
				e := v4l2FrmIvalEnum{PixelFormat: pixFmtYUYV, Width: 1000, Height: 600}
				return d.cam.Ioctl(vidiocEnumFrameIntervals, unsafe.Pointer(&e))
			}, unix.EINVAL},
		{"ENUM_FRAMEINTERVALS past the list", nil,
			func(d *fakeDriver) error {
				e := v4l2FrmIvalEnum{Index: 3, PixelFormat: pixFmtYUYV, Width: 1280, Height: 720}
				return d.cam.Ioctl(vidiocEnumFrameIntervals, unsafe.Pointer(&e))
			}, unix.EINVAL},
		{"unknown request", nil,
			func(d *fakeDriver) error { var x int32; return d.cam.Ioctl(iowr('V', 99, 4), unsafe.Pointer(&x)) }, unix.ENOTTY},
		{"ioctl after close", func(d *fakeDriver) { d.must(d.cam.Close()) },
			func(d *fakeDriver) error { return d.reqBufs(2, bufTypeVideoCapture, memoryMMAP) }, unix.EBADF},
		{"DQBUF after unplug", func(d *fakeDriver) {
			d.streaming()
			d.cam.Unplug()
		}, func(d *fakeDriver) error { _, err := d.dqbuf(); return err }, unix.ENODEV},
		{"mmap after unplug", func(d *fakeDriver) {
			d.must(d.reqBufs(2, bufTypeVideoCapture, memoryMMAP))
			d.cam.Unplug()
		}, func(d *fakeDriver) error { _, err := d.cam.Mmap(0, 4096); return err }, unix.ENODEV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDriver{t: t, cam: NewFakeCamera(webcam)}
			if tt.setup != nil {
				tt.setup(d)
			}
			if err := tt.op(d); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFakePollReportsErrorConditions(t *testing.T) {
	d := &fakeDriver{t: t, cam: NewFakeCamera(webcam)}
	// Not streaming: poll says ready so that DQBUF reports EINVAL, as
	// vb2_poll returns POLLERR.
	if ready, err := d.cam.Poll(0); !ready || err != nil {
		t.Fatalf("Poll before STREAMON = %v, %v; want ready", ready, err)
	}
	d.streaming()
	d.cam.Pause()
	if ready, err := d.cam.Poll(0); ready || err != nil {
		t.Fatalf("Poll while stalled = %v, %v; want not ready", ready, err)
	}
	if ready, err := d.cam.Poll(5e6); ready || err != nil {
		t.Fatalf("Poll(5ms) while stalled = %v, %v; want a timeout", ready, err)
	}
	d.cam.Unplug()
	if ready, err := d.cam.Poll(-1); !ready || err != nil {
		t.Fatalf("Poll after unplug = %v, %v; want ready (POLLERR)", ready, err)
	}
	d.must(d.cam.Close())
	if _, err := d.cam.Poll(0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Poll after close = %v, want EBADF", err)
	}
}

func TestFakeSetFormatRoundsLikeADriver(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		code          uint32
		wantW, wantH  int
		wantCode      uint32
		wantStride    uint32
	}{
		{"supported", 1280, 720, pixFmtYUYV, 1280, 720, pixFmtYUYV, 2560},
		{"nearest", 1000, 600, pixFmtYUYV, 1280, 720, pixFmtYUYV, 2560},
		{"compressed has no stride", 1920, 1080, pixFmtMJPEG, 1920, 1080, pixFmtMJPEG, 0},
		{"unknown format becomes the first", 640, 480, pixFmtNV12, 640, 480, pixFmtYUYV, 1280},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDriver{t: t, cam: NewFakeCamera(webcam)}
			pix, err := d.sFmt(tt.width, tt.height, tt.code)
			if err != nil {
				t.Fatal(err)
			}
			if int(pix.Width) != tt.wantW || int(pix.Height) != tt.wantH || pix.PixelFormat != tt.wantCode || pix.BytesPerLine != tt.wantStride {
				t.Fatalf("S_FMT gave %dx%d %s stride %d, want %dx%d %s stride %d",
					pix.Width, pix.Height, fourccString(pix.PixelFormat), pix.BytesPerLine,
					tt.wantW, tt.wantH, fourccString(tt.wantCode), tt.wantStride)
			}
		})
	}
}

func TestFakeFramesCarryMonotonicTimestamps(t *testing.T) {
	d := &fakeDriver{t: t, cam: NewFakeCamera(webcam)}
	d.streaming()
	var last int64
	for i := range 8 {
		b, err := d.dqbuf()
		d.must(err)
		if b.Flags&bufFlagTimestampMask != bufFlagTimestampMonotonic {
			t.Fatalf("frame %d flags %#x lack TIMESTAMP_MONOTONIC", i, b.Flags)
		}
		if b.Sequence != uint32(i) {
			t.Fatalf("frame %d has sequence %d", i, b.Sequence)
		}
		ts := unix.TimevalToNsec(b.Timestamp)
		if i > 0 && ts <= last {
			t.Fatalf("frame %d timestamp %d not after %d", i, ts, last)
		}
		last = ts
		d.must(d.qbuf(b.Index, bufTypeVideoCapture, memoryMMAP))
	}
	// Frames are stamped ahead of real time (they are produced on demand),
	// but on the CLOCK_MONOTONIC line: within seconds of now.
	if now := int64(monotonicNow()); last < now-10e9 || last > now+10e9 {
		t.Fatalf("timestamps %d are not on CLOCK_MONOTONIC (now %d)", last, now)
	}
}

// hdmiRange is an HDMI bridge-like camera: a stepwise size range with a
// continuous interval range.
var hdmiRange = FakeConfig{Formats: []FakeFormat{{Format: media.NV12, Range: &FakeRange{
	MinWidth: 16, MaxWidth: 1920, StepWidth: 16, MinHeight: 16, MaxHeight: 1080, StepHeight: 8, MinFPS: 1, MaxFPS: 60,
}}}}

func TestFakeSetParmClampsLikeADriver(t *testing.T) {
	cfg := FakeConfig{
		Formats: []FakeFormat{{Format: media.YUYV, Sizes: []FakeSize{
			{Width: 640, Height: 480, FrameRates: []int{30, 15}},
			{Width: 1280, Height: 720, FrameRates: []int{10, 5}},
		}}},
	}
	tests := []struct {
		name          string
		cfg           FakeConfig
		width, height int
		ask, got      v4l2Fract
	}{
		{"listed", cfg, 640, 480, v4l2Fract{1, 15}, v4l2Fract{1, 15}},
		{"nearest listed", cfg, 640, 480, v4l2Fract{1, 25}, v4l2Fract{1, 30}},
		{"the size's own list", cfg, 1280, 720, v4l2Fract{1, 30}, v4l2Fract{1, 10}},
		{"zero keeps the current", cfg, 1280, 720, v4l2Fract{0, 0}, v4l2Fract{1, 10}},
		{"inside a range", hdmiRange, 1280, 720, v4l2Fract{1001, 30000}, v4l2Fract{1001, 30000}},
		{"above a range", hdmiRange, 1280, 720, v4l2Fract{1, 120}, v4l2Fract{1, 60}},
		{"below a range", hdmiRange, 1280, 720, v4l2Fract{2, 1}, v4l2Fract{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDriver{t: t, cam: NewFakeCamera(tt.cfg)}
			pix, err := d.sFmt(tt.width, tt.height, fourccOf(tt.cfg.Formats[0].Format))
			d.must(err)
			if int(pix.Width) != tt.width || int(pix.Height) != tt.height {
				t.Fatalf("S_FMT gave %dx%d", pix.Width, pix.Height)
			}
			got, err := d.sParm(tt.ask.Numerator, tt.ask.Denominator)
			d.must(err)
			if got != tt.got {
				t.Fatalf("asked %v, G_PARM says %v, want %v", tt.ask, got, tt.got)
			}
		})
	}
}

func TestFakeRangeSnapsSizes(t *testing.T) {
	d := &fakeDriver{t: t, cam: NewFakeCamera(hdmiRange)}
	pix, err := d.sFmt(1366, 766, pixFmtNV12)
	d.must(err)
	if pix.Width != 1360 || pix.Height != 768 {
		t.Fatalf("S_FMT 1366x766 gave %dx%d, want 1360x768 on the range's grid", pix.Width, pix.Height)
	}
	e := v4l2FrmIvalEnum{PixelFormat: pixFmtNV12, Width: 1366, Height: 766}
	if err := d.cam.Ioctl(vidiocEnumFrameIntervals, unsafe.Pointer(&e)); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("ENUM_FRAMEINTERVALS off the grid: %v, want EINVAL", err)
	}
}
