package v4l2

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

func shippedEDID(t *testing.T) []byte {
	t.Helper()
	edid, err := LoadEDID(defaultEDIDFile)
	if err != nil {
		t.Fatal(err)
	}
	return edid
}

// hdmiWant is what the daemon asks of a bridge.
func hdmiWant(t *testing.T, follow bool) Config {
	return Config{Formats: []media.PixelFormat{media.I420, media.YUYV, media.MJPEG},
		HDMI: &HDMIConfig{EDID: shippedEDID(t), FollowSize: follow}}
}

// uyvyFrameNumber reads the fake's sequence number through the UYVY to
// YUYV swap: the fake wrote it little-endian into bytes 0-3 of the UYVY
// picture, which the swap turned into b1 b0 b3 b2.
func uyvyFrameNumber(t *testing.T, frame media.VideoFrame) uint32 {
	t.Helper()
	d := frame.Data
	if len(d) < 4 {
		t.Fatalf("frame of %d bytes", len(d))
	}
	return uint32(d[1]) | uint32(d[0])<<8 | uint32(d[3])<<16 | uint32(d[2])<<24
}

func checkHDMIFrame(t *testing.T, frame media.VideoFrame, width, height int) {
	t.Helper()
	if frame.Format != media.YUYV || frame.Width != width || frame.Height != height || len(frame.Data) != width*height*2 {
		t.Fatalf("frame %v %dx%d, %d bytes; want YUYV %dx%d, %d bytes",
			frame.Format, frame.Width, frame.Height, len(frame.Data), width, height, width*height*2)
	}
	// Past the sequence number the fake fills the picture with byte n.
	n := byte(uyvyFrameNumber(t, frame))
	if frame.Data[4] != n || frame.Data[len(frame.Data)-1] != n {
		t.Fatalf("frame %d: payload bytes %#x..%#x, want %#x", n, frame.Data[4], frame.Data[len(frame.Data)-1], n)
	}
}

func openHDMI(t *testing.T, cam *FakeCamera, want Config) (*Source, error) {
	t.Helper()
	src, err := NewSource(cam, "/dev/video0", want, device.NewClock())
	if err == nil {
		t.Cleanup(func() { src.Close() })
	}
	return src, err
}

func TestHDMIBringUpWaitsForASignal(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	_, err := openHDMI(t, cam, hdmiWant(t, false))
	if !errors.Is(err, ErrNoSignal) || !errors.Is(err, unix.ENOLINK) || !strings.Contains(err.Error(), "no HDMI signal (ENOLINK)") {
		t.Fatalf("open without a cable = %v, want ErrNoSignal (ENOLINK)", err)
	}
	var signalErr *SignalError
	if !errors.As(err, &signalErr) {
		t.Fatalf("%v is not a *SignalError", err)
	}
	st, bridge := cam.State(), cam.HDMIState()
	if !st.Closed || st.Buffers != 0 || st.Mapped != 0 {
		t.Fatalf("after a failed open the fake holds %+v", st)
	}
	if bridge.EDIDWrites != 1 || string(bridge.EDID) != string(shippedEDID(t)) {
		t.Fatalf("bridge EDID: %d writes, %d bytes; want the shipped EDID written once", bridge.EDIDWrites, len(bridge.EDID))
	}

	// The pipeline retries every 2 s: the EDID is not written again (that
	// would make the source start over each time).
	_, err = openHDMI(t, cam.Reopen().(*FakeCamera), hdmiWant(t, false))
	if !errors.Is(err, ErrNoSignal) {
		t.Fatalf("second open = %v, want ErrNoSignal", err)
	}
	if n := cam.HDMIState().EDIDWrites; n != 1 {
		t.Fatalf("EDID written %d times over two opens, want once", n)
	}

	cam.ConnectHDMI(FakeHDMI1080p30)
	src, err := openHDMI(t, cam.Reopen().(*FakeCamera), hdmiWant(t, false))
	if err != nil {
		t.Fatalf("open with 1080p30 connected: %v", err)
	}
	mode := src.Mode()
	if mode.Width != 1920 || mode.Height != 1080 || mode.Format != media.YUYV || mode.FourCC != "UYVY" || mode.FPS != 30 || !mode.Copies {
		t.Fatalf("mode %+v, want UYVY captured as YUYV 1920x1080 at 30 fps, copied", mode)
	}
	if got := mode.Signal.String(); got != "1920x1080p30 (74.25 MHz)" {
		t.Fatalf("signal %q", got)
	}
	if !strings.Contains(mode.Reason, "HDMI source sends 1920x1080p30") {
		t.Fatalf("reason %q", mode.Reason)
	}
	if bridge := cam.HDMIState(); bridge.Width != 1920 || bridge.Height != 1080 || !bridge.Subscribed {
		t.Fatalf("bridge %+v, want 1080p timings applied and source changes subscribed", bridge)
	}
	for i := 0; i < 3; i++ {
		frame := read(t, src)
		checkHDMIFrame(t, frame, 1920, 1080)
		if n := uyvyFrameNumber(t, frame); n != uint32(i) {
			t.Fatalf("frame %d carries number %d", i, n)
		}
	}
}

func TestHDMISignalProblemsAtOpen(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*FakeCamera)
		want  *SignalError
		text  string
	}{
		{"no cable", func(*FakeCamera) {}, ErrNoSignal, "no HDMI signal (ENOLINK)"},
		{"not locked", func(c *FakeCamera) { c.ConnectHDMI(FakeHDMI720p60); c.UnstableHDMI() }, ErrSignalUnstable, "HDMI signal not locked (ENOLCK)"},
		{"4K source", func(c *FakeCamera) { c.ConnectHDMI(FakeHDMI2160p30) }, ErrSignalOutOfRange, "HDMI signal out of range (ERANGE)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
			tt.setup(cam)
			_, err := openHDMI(t, cam, hdmiWant(t, false))
			if !errors.Is(err, tt.want) || !errors.Is(err, tt.want.errno) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("open = %v, want %q", err, tt.text)
			}
			if !cam.State().Closed {
				t.Fatal("fake left open")
			}
		})
	}
}

func TestHDMIWithoutEDIDTheSourceSendsNothing(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	cam.ConnectHDMI(FakeHDMI1080p30)
	want := hdmiWant(t, false)
	want.HDMI.EDID = nil
	if _, err := openHDMI(t, cam, want); !errors.Is(err, ErrNoSignal) {
		t.Fatalf("open with a cable but no EDID = %v, want ErrNoSignal", err)
	}
}

func TestHDMIRefusesBadEDIDBeforeTheBridge(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	want := hdmiWant(t, false)
	want.HDMI.EDID = append([]byte(nil), want.HDMI.EDID...)
	want.HDMI.EDID[130]++
	if _, err := openHDMI(t, cam, want); !errors.Is(err, ErrBadEDID) {
		t.Fatalf("open with a broken EDID = %v, want ErrBadEDID", err)
	}
	if cam.HDMIState().EDIDWrites != 0 {
		t.Fatal("a broken EDID reached the bridge")
	}
}

func TestHDMIEDIDTooBigForTheBridge(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{MaxEDIDBlocks: 1}})
	_, err := openHDMI(t, cam, hdmiWant(t, false))
	if !errors.Is(err, unix.E2BIG) || !strings.Contains(err.Error(), "2 blocks, the bridge takes at most 1") {
		t.Fatalf("open = %v, want E2BIG saying the limit", err)
	}
}

// TestHDMIResolutionChangeWhileCapturing: the source switches from 1080p30
// to 720p60 while frames flow; with FollowSize the capture follows.
func TestHDMIResolutionChangeWhileCapturing(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}, RowPadding: 64})
	cam.ConnectHDMI(FakeHDMI1080p30)
	src, err := openHDMI(t, cam, hdmiWant(t, true))
	if err != nil {
		t.Fatal(err)
	}
	checkHDMIFrame(t, read(t, src), 1920, 1080)
	checkHDMIFrame(t, read(t, src), 1920, 1080)

	cam.ConnectHDMI(FakeHDMI720p60)
	frame := read(t, src)
	checkHDMIFrame(t, frame, 1280, 720)
	if n := uyvyFrameNumber(t, frame); n != 0 {
		t.Fatalf("first frame after the change is number %d, want 0 (a new stream)", n)
	}
	mode := src.Mode()
	if mode.Width != 1280 || mode.Height != 720 || mode.FPS != 60 || mode.Signal.String() != "1280x720p60 (74.25 MHz)" {
		t.Fatalf("mode after the change %+v", mode)
	}
	st := cam.State()
	if !st.Streaming || st.Width != 1280 || st.Height != 720 || st.Buffers != mode.Buffers || st.Mapped != mode.Buffers {
		t.Fatalf("fake after the change %+v, want 1280x720 streaming with %d mapped buffers", st, mode.Buffers)
	}
	checkHDMIFrame(t, read(t, src), 1280, 720)

	// Losing the cable ends the stream with the signal error.
	cam.DisconnectHDMI()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := src.ReadVideo(ctx); !errors.Is(err, ErrNoSignal) {
		t.Fatalf("ReadVideo after unplugging HDMI = %v, want ErrNoSignal", err)
	}
	if _, err := src.ReadVideo(ctx); !errors.Is(err, ErrNoSignal) {
		t.Fatalf("second ReadVideo = %v, want the same error", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if st := cam.State(); !st.Closed || st.Mapped != 0 {
		t.Fatalf("after Close %+v", st)
	}
}

// TestHDMISizeChangeEndsAFixedSizeStream: without FollowSize a new size
// is an error for the pipeline (which shows the slate and reopens), while a
// new rate at the same size goes on.
func TestHDMISizeChangeEndsAFixedSizeStream(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	cam.ConnectHDMI(FakeHDMI1080p30)
	src, err := openHDMI(t, cam, hdmiWant(t, false))
	if err != nil {
		t.Fatal(err)
	}
	checkHDMIFrame(t, read(t, src), 1920, 1080)

	cam.ConnectHDMI(FakeHDMI1080p25)
	checkHDMIFrame(t, read(t, src), 1920, 1080)
	if fps := src.Mode().FPS; fps != 25 {
		t.Fatalf("FPS after 1080p30 -> 1080p25 = %v", fps)
	}

	cam.ConnectHDMI(FakeHDMI720p50)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = src.ReadVideo(ctx)
	if !errors.Is(err, ErrSourceChanged) || !strings.Contains(err.Error(), "1280x720p50") {
		t.Fatalf("ReadVideo after a size change = %v, want ErrSourceChanged naming 1280x720p50", err)
	}
	src.Close()

	again, err := openHDMI(t, cam.Reopen().(*FakeCamera), hdmiWant(t, false))
	if err != nil {
		t.Fatal(err)
	}
	checkHDMIFrame(t, read(t, again), 1280, 720)
}

// TestHDMISubdevice: on media-controller systems the bridge's subdevice
// takes EDID, timings and events; the video node only captures.
func TestHDMISubdevice(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{Subdevice: true}})
	cam.ConnectHDMI(FakeHDMI720p60)

	// The video node alone cannot bring the bridge up.
	if _, err := openHDMI(t, cam, hdmiWant(t, false)); !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("open through the video node = %v, want ENOTTY", err)
	}

	want := hdmiWant(t, true)
	want.HDMI.Subdevice = "/dev/v4l-subdev2"
	want.HDMI.SubdeviceNode = cam.Subdevice()
	src, err := openHDMI(t, cam.Reopen().(*FakeCamera), want)
	if err != nil {
		t.Fatal(err)
	}
	checkHDMIFrame(t, read(t, src), 1280, 720)
	cam.ConnectHDMI(FakeHDMI1080p30)
	checkHDMIFrame(t, read(t, src), 1920, 1080)
	src.Close()
	if st := cam.HDMIState(); !st.SubdeviceClosed {
		t.Fatal("Close left the subdevice open")
	}
}

// The fake's own rules, checked directly against the driver's answers.
func TestFakeHDMIRules(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	defer cam.Close()
	edid := shippedEDID(t)
	setEDID := func(pad, start, blocks uint32) (v4l2Edid, error) {
		e := v4l2Edid{Pad: pad, StartBlock: start, Blocks: blocks, Edid: unsafe.Pointer(&edid[0])}
		err := cam.Ioctl(vidiocSEdid, unsafe.Pointer(&e))
		return e, err
	}
	if _, err := setEDID(1, 0, 2); !errors.Is(err, unix.EINVAL) {
		t.Errorf("S_EDID pad 1 = %v, want EINVAL", err)
	}
	if _, err := setEDID(0, 1, 1); !errors.Is(err, unix.EINVAL) {
		t.Errorf("S_EDID start block 1 = %v, want EINVAL", err)
	}
	if e, err := setEDID(0, 0, 9); !errors.Is(err, unix.E2BIG) || e.Blocks != 8 {
		t.Errorf("S_EDID 9 blocks = %v, blocks %d; want E2BIG and 8", err, e.Blocks)
	}
	get := v4l2Edid{}
	if err := cam.Ioctl(vidiocGEdid, unsafe.Pointer(&get)); err != nil || get.Blocks != 0 {
		t.Errorf("G_EDID count with none loaded = %v, %d blocks", err, get.Blocks)
	}
	buf := make([]byte, 256)
	get = v4l2Edid{Blocks: 2, Edid: unsafe.Pointer(&buf[0])}
	if err := cam.Ioctl(vidiocGEdid, unsafe.Pointer(&get)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("G_EDID with none loaded = %v, want ENODATA", err)
	}
	if _, err := setEDID(0, 0, 2); err != nil {
		t.Fatalf("S_EDID: %v", err)
	}

	var dv v4l2DVTimings
	if err := cam.Ioctl(vidiocQueryDVTimings, unsafe.Pointer(&dv)); !errors.Is(err, unix.ENOLINK) {
		t.Errorf("QUERY_DV_TIMINGS without a cable = %v, want ENOLINK", err)
	}
	cam.ConnectHDMI(FakeHDMI1080p30)
	if err := cam.Ioctl(vidiocQueryDVTimings, unsafe.Pointer(&dv)); err != nil || dv.BT.Width != 1920 || dv.BT.pixelClock() != 74_250_000 {
		t.Fatalf("QUERY_DV_TIMINGS = %v, %dx%d at %d Hz", err, dv.BT.Width, dv.BT.Height, dv.BT.pixelClock())
	}
	big := timingsOf(FakeHDMI2160p30.timing)
	if err := cam.Ioctl(vidiocSDVTimings, unsafe.Pointer(&big)); !errors.Is(err, unix.ERANGE) {
		t.Errorf("S_DV_TIMINGS 2160p = %v, want ERANGE", err)
	}
	if err := cam.Ioctl(vidiocSDVTimings, unsafe.Pointer(&dv)); err != nil {
		t.Fatalf("S_DV_TIMINGS: %v", err)
	}

	// S_FMT keeps the timings' size whatever is asked.
	format := v4l2Format{Type: bufTypeVideoCapture}
	format.Fmt.Pix = v4l2PixFormat{Width: 1280, Height: 720, PixelFormat: pixFmtUYVY}
	if err := cam.Ioctl(vidiocSFmt, unsafe.Pointer(&format)); err != nil || format.Fmt.Pix.Width != 1920 || format.Fmt.Pix.Height != 1080 {
		t.Fatalf("S_FMT 1280x720 = %v, %dx%d; want 1920x1080", err, format.Fmt.Pix.Width, format.Fmt.Pix.Height)
	}
	req := v4l2RequestBuffers{Count: 2, Type: bufTypeVideoCapture, Memory: memoryMMAP}
	if err := cam.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
		t.Fatal(err)
	}
	other := timingsOf(cea720p60)
	if err := cam.Ioctl(vidiocSDVTimings, unsafe.Pointer(&other)); !errors.Is(err, unix.EBUSY) {
		t.Errorf("S_DV_TIMINGS with buffers = %v, want EBUSY", err)
	}

	// Events: only source changes, only to subscribers, ENOENT when none.
	var ev v4l2Event
	if err := cam.Ioctl(vidiocDQEvent, unsafe.Pointer(&ev)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("DQEVENT with nothing pending = %v, want ENOENT", err)
	}
	sub := v4l2EventSubscription{Type: 3} // V4L2_EVENT_CTRL
	if err := cam.Ioctl(vidiocSubscribeEvent, unsafe.Pointer(&sub)); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SUBSCRIBE_EVENT ctrl = %v, want EINVAL", err)
	}
	sub = v4l2EventSubscription{Type: eventSourceChange}
	if err := cam.Ioctl(vidiocSubscribeEvent, unsafe.Pointer(&sub)); err != nil {
		t.Fatal(err)
	}
	cam.ConnectHDMI(FakeHDMI720p60)
	if err := cam.Ioctl(vidiocDQEvent, unsafe.Pointer(&ev)); err != nil || ev.Type != eventSourceChange || ev.sourceChanges() != eventSrcChResolution {
		t.Errorf("DQEVENT after a mode change = %v, type %d changes %d", err, ev.Type, ev.sourceChanges())
	}

	// A camera is not a bridge.
	plain := NewFakeCamera(FakeConfig{})
	defer plain.Close()
	if err := plain.Ioctl(vidiocQueryDVTimings, unsafe.Pointer(&dv)); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("QUERY_DV_TIMINGS on a webcam = %v, want ENOTTY", err)
	}
}

func TestHDMIOnlyDeliversYUYV(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	cam.ConnectHDMI(FakeHDMI1080p30)
	want := hdmiWant(t, false)
	want.Formats = []media.PixelFormat{media.H264}
	if _, err := openHDMI(t, cam, want); !errors.Is(err, ErrNoFormat) {
		t.Fatalf("open for H264 = %v, want ErrNoFormat", err)
	}
}

func TestSwapUYVYRows(t *testing.T) {
	// Two rows of 10 pixels (20 bytes) with 4 bytes of padding each: the
	// word-at-a-time loop and the tail both run.
	p := plane{rows: 2, rowBytes: 20, stride: 24}
	src := make([]byte, 48)
	for i := range src {
		src[i] = byte(i)
	}
	dst := make([]byte, 40)
	got := swapUYVYRows(dst, src, p)
	for r := 0; r < 2; r++ {
		for i := 0; i < 20; i++ {
			want := src[r*24+(i^1)]
			if got[r*20+i] != want {
				t.Fatalf("row %d byte %d = %d, want %d", r, i, got[r*20+i], want)
			}
		}
	}
}

func TestHDMIReadVideoAllocatesNothing(t *testing.T) {
	cam := NewFakeCamera(FakeConfig{HDMI: &FakeHDMI{}})
	cam.ConnectHDMI(FakeHDMI720p60)
	src, err := openHDMI(t, cam, hdmiWant(t, false))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read(t, src)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := src.ReadVideo(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadVideo from an HDMI bridge allocates %v times per frame", allocs)
	}
}

func TestNoSignalSource(t *testing.T) {
	var src device.VideoSource = NewNoSignalSource(ErrNoSignal)
	if _, err := src.ReadVideo(context.Background()); !errors.Is(err, ErrNoSignal) {
		t.Fatalf("ReadVideo = %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}
