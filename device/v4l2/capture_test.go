package v4l2

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) {
	// The source logs its negotiation at info level; keep test output for
	// failures.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

var (
	sizesHD = []FakeSize{{Width: 640, Height: 480}, {Width: 1280, Height: 720}, {Width: 1920, Height: 1080}}
	// webcam offers what a typical UVC camera with on-board H.264 does.
	webcam = FakeConfig{
		Card: "Fake UVC Camera",
		Formats: []FakeFormat{
			{Format: media.YUYV, Sizes: sizesHD},
			{Format: media.MJPEG, Sizes: sizesHD},
			{Format: media.H264, Sizes: sizesHD},
		},
		FrameRates: []int{15, 30, 60},
	}
)

// openFake opens a Source on a fresh fake and closes it when the test ends.
func openFake(t *testing.T, cfg FakeConfig, want Config) (*Source, *FakeCamera, *device.Clock) {
	t.Helper()
	cam := NewFakeCamera(cfg)
	clock := device.NewClock()
	src, err := NewSource(cam, "/dev/video0", want, clock)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return src, cam, clock
}

func read(t *testing.T, src *Source) media.VideoFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	frame, err := src.ReadVideo(ctx)
	if err != nil {
		t.Fatalf("ReadVideo: %v", err)
	}
	return frame
}

// frameNumber reads the sequence number the fake writes into every frame.
func frameNumber(t *testing.T, frame media.VideoFrame) uint32 {
	t.Helper()
	data := frame.Data
	switch frame.Format {
	case media.H264:
		if len(data) < 9 || string(data[:4]) != "\x00\x00\x00\x01" {
			t.Fatalf("H264 frame does not start with a start code: % x", data[:min(9, len(data))])
		}
		data = data[5:]
	case media.MJPEG:
		if len(data) < 8 || data[0] != 0xff || data[1] != 0xd8 || data[len(data)-2] != 0xff || data[len(data)-1] != 0xd9 {
			t.Fatalf("MJPEG frame lacks SOI/EOI markers")
		}
		data = data[2:]
	}
	return binary.LittleEndian.Uint32(data)
}

func TestOpenChoosesFirstWantedFormatTheCameraOffers(t *testing.T) {
	tests := []struct {
		name string
		want []media.PixelFormat
		got  media.PixelFormat
	}{
		{"first wanted offered", []media.PixelFormat{media.H264, media.YUYV}, media.H264},
		{"skips formats not offered", []media.PixelFormat{media.NV12, media.I420, media.MJPEG, media.YUYV}, media.MJPEG},
		{"raw before compressed", []media.PixelFormat{media.YUYV, media.MJPEG}, media.YUYV},
		{"no preference takes the camera's first", nil, media.YUYV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, cam, _ := openFake(t, webcam, Config{Width: 1280, Height: 720, FPS: 30, Formats: tt.want})
			if got := src.Mode().Format; got != tt.got {
				t.Fatalf("Mode().Format = %v, want %v", got, tt.got)
			}
			if got, want := cam.State().FourCC, fourccString(fourccOf(tt.got)); got != want {
				t.Fatalf("camera set to %s, want %s", got, want)
			}
			if frame := read(t, src); frame.Format != tt.got {
				t.Fatalf("frame format %v, want %v", frame.Format, tt.got)
			}
		})
	}
}

func TestOpenWithoutAWantedFormatFails(t *testing.T) {
	cam := NewFakeCamera(webcam)
	_, err := NewSource(cam, "/dev/video0", Config{Width: 1280, Height: 720, Formats: []media.PixelFormat{media.NV12, media.I420}}, device.NewClock())
	if !errors.Is(err, ErrNoFormat) {
		t.Fatalf("err = %v, want ErrNoFormat", err)
	}
	want := "open /dev/video0: offers YUYV, MJPG, H264, wanted NV12, I420: camera offers none of the wanted formats"
	if err.Error() != want {
		t.Fatalf("err = %q\nwant  %q", err, want)
	}
	if st := cam.State(); !st.Closed {
		t.Fatalf("device left open after a failed open: %+v", st)
	}
}

func TestOpenReportsWhatTheDriverGave(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		fps           int
		wantW, wantH  int
		wantFPS       float64
	}{
		{"exact", 1280, 720, 30, 1280, 720, 30},
		{"nearest size", 1300, 700, 30, 1280, 720, 30},
		{"too big", 4096, 2160, 30, 1920, 1080, 30},
		{"too small", 320, 240, 15, 640, 480, 15},
		{"nearest rate", 1280, 720, 25, 1280, 720, 30},
		{"fast", 640, 480, 60, 640, 480, 60},
		// No rate asked: the driver's own, as G_PARM reads it (the fake
		// starts at its first rate).
		{"rate left alone", 640, 480, 0, 640, 480, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, cam, _ := openFake(t, webcam, Config{Width: tt.width, Height: tt.height, FPS: tt.fps, Formats: []media.PixelFormat{media.YUYV}})
			m := src.Mode()
			if m.Width != tt.wantW || m.Height != tt.wantH || m.FPS != tt.wantFPS {
				t.Fatalf("Mode() = %dx%d at %v fps, want %dx%d at %v fps", m.Width, m.Height, m.FPS, tt.wantW, tt.wantH, tt.wantFPS)
			}
			if st := cam.State(); st.Width != tt.wantW || st.Height != tt.wantH {
				t.Fatalf("camera is at %dx%d, source reports %dx%d", st.Width, st.Height, m.Width, m.Height)
			}
			frame := read(t, src)
			if frame.Width != tt.wantW || frame.Height != tt.wantH || len(frame.Data) != tt.wantW*tt.wantH*2 {
				t.Fatalf("frame %dx%d with %d bytes, want %dx%d with %d", frame.Width, frame.Height, len(frame.Data), tt.wantW, tt.wantH, tt.wantW*tt.wantH*2)
			}
		})
	}
}

func TestOpenErrorsKeepErrnoAndSayWhatFailed(t *testing.T) {
	tests := []struct {
		name    string
		cfg     FakeConfig
		prepare func(t *testing.T, cam *FakeCamera)
		errno   error
		is      error
		message string
	}{
		{
			name: "format busy because another user holds buffers",
			cfg:  webcam,
			prepare: func(t *testing.T, cam *FakeCamera) {
				req := v4l2RequestBuffers{Count: 2, Type: bufTypeVideoCapture, Memory: memoryMMAP}
				if err := cam.Ioctl(vidiocReqBufs, unsafe.Pointer(&req)); err != nil {
					t.Fatal(err)
				}
			},
			errno:   unix.EBUSY,
			message: "set format 1280x720 YUYV on /dev/video0: device or resource busy",
		},
		{
			name:    "unplugged before open",
			cfg:     webcam,
			prepare: func(t *testing.T, cam *FakeCamera) { cam.Unplug() },
			errno:   unix.ENODEV,
			message: "query capabilities of /dev/video0: no such device",
		},
		{
			name:    "a codec is not a camera",
			cfg:     FakeConfig{Card: "bcm2835-codec-encode", M2M: true, Formats: []FakeFormat{{Format: media.H264}}},
			is:      ErrNotCapture,
			message: `open /dev/video0 (bcm2835-codec-encode, device caps 0x04004000): not a video capture device with streaming I/O`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(tt.cfg)
			if tt.prepare != nil {
				tt.prepare(t, cam)
			}
			_, err := NewSource(cam, "/dev/video0", Config{Width: 1280, Height: 720, FPS: 30, Formats: []media.PixelFormat{media.YUYV}}, device.NewClock())
			if err == nil {
				t.Fatal("NewSource succeeded")
			}
			if tt.errno != nil && !errors.Is(err, tt.errno) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.errno)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if err.Error() != tt.message {
				t.Errorf("err = %q\nwant  %q", err, tt.message)
			}
			if st := cam.State(); !st.Closed || st.Mapped != 0 {
				t.Errorf("after failed open: %+v, want closed with nothing mapped", st)
			}
		})
	}
}

func TestOpenMissingNode(t *testing.T) {
	_, err := Open("/dev/video-does-not-exist", Config{Width: 640, Height: 480}, device.NewClock())
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v, want ENOENT", err)
	}
	if !strings.Contains(err.Error(), "/dev/video-does-not-exist") {
		t.Fatalf("err = %q does not name the node", err)
	}
}

func TestOpenNonV4L2Node(t *testing.T) {
	// /dev/null answers no V4L2 ioctl: this runs the real system-call path.
	_, err := Open("/dev/null", Config{Width: 640, Height: 480}, device.NewClock())
	if err == nil || !strings.HasPrefix(err.Error(), "query capabilities of /dev/null: ") {
		t.Fatalf("err = %v, want a query capabilities error", err)
	}
}

func TestReadVideoFramesInOrderOnTheClocksLine(t *testing.T) {
	for _, format := range []media.PixelFormat{media.YUYV, media.MJPEG, media.H264} {
		t.Run(format.String(), func(t *testing.T) {
			cam := NewFakeCamera(webcam)
			clock := device.NewClock()
			before := clock.Now()
			src, err := NewSource(cam, "/dev/video0", Config{Width: 640, Height: 480, FPS: 30, Formats: []media.PixelFormat{format}}, clock)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			interval := time.Second / 30
			var first time.Duration
			for n := uint32(0); n < 12; n++ {
				frame := read(t, src)
				if got := frameNumber(t, frame); got != n {
					t.Fatalf("frame %d carries number %d", n, got)
				}
				if n == 0 {
					first = frame.Capture
					// The fake stamps frame 0 at STREAMON, which lies
					// between these two readings; timeval drops the
					// nanoseconds.
					if after := clock.Now(); first < before-time.Microsecond || first > after {
						t.Fatalf("first frame captured at %v, outside [%v, %v] of the clock", first, before, after)
					}
					continue
				}
				want := first + time.Duration(n)*interval
				if d := frame.Capture - want; d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("frame %d captured at %v, want %v (+-1us)", n, frame.Capture, want)
				}
				// While the consumer holds a frame, every other buffer is
				// back with the driver.
				if st := cam.State(); st.Queued != st.Buffers-1 {
					t.Fatalf("frame %d: %d of %d buffers queued, want all but the held one", n, st.Queued, st.Buffers)
				}
			}
		})
	}
}

func TestReadVideoWithoutMonotonicStampUsesClockNow(t *testing.T) {
	cfg := webcam
	cfg.NoMonotonic = true
	src, _, clock := openFake(t, cfg, Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.YUYV}})
	before := clock.Now()
	frame := read(t, src)
	if after := clock.Now(); frame.Capture < before || frame.Capture > after {
		t.Fatalf("Capture = %v, want the time of dequeue in [%v, %v]", frame.Capture, before, after)
	}
}

func TestReadVideoSkipsDamagedFrames(t *testing.T) {
	src, cam, _ := openFake(t, webcam, Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.YUYV}})
	cam.DamageNextFrame()
	if got := frameNumber(t, read(t, src)); got != 1 {
		t.Fatalf("first frame handed out is %d, want 1 (0 was damaged)", got)
	}
	if st := cam.State(); st.Queued != st.Buffers-1 {
		t.Fatalf("damaged buffer not requeued: %+v", st)
	}
}

func TestRawFrames(t *testing.T) {
	tests := []struct {
		format  media.PixelFormat
		padding int
		size    int // bytes of a packed 640x480 picture
	}{
		{media.YUYV, 0, 640 * 480 * 2},
		{media.YUYV, 64, 640 * 480 * 2},
		{media.NV12, 0, 640 * 480 * 3 / 2},
		{media.NV12, 64, 640 * 480 * 3 / 2},
		{media.I420, 0, 640 * 480 * 3 / 2},
		{media.I420, 64, 640 * 480 * 3 / 2},
	}
	for _, tt := range tests {
		name := tt.format.String()
		if tt.padding > 0 {
			name += " padded rows"
		}
		t.Run(name, func(t *testing.T) {
			cfg := FakeConfig{Formats: []FakeFormat{{Format: tt.format}}, RowPadding: tt.padding}
			src, _, _ := openFake(t, cfg, Config{Width: 640, Height: 480, Formats: []media.PixelFormat{tt.format}})
			if got, want := src.Mode().Copies, tt.padding > 0; got != want {
				t.Fatalf("Mode().Copies = %v, want %v", got, want)
			}
			for n := uint32(0); n < 3; n++ {
				frame := read(t, src)
				if len(frame.Data) != tt.size {
					t.Fatalf("frame has %d bytes, want %d", len(frame.Data), tt.size)
				}
				if got := frameNumber(t, frame); got != n {
					t.Fatalf("frame number %d, want %d", got, n)
				}
				for i, b := range frame.Data[4:] {
					if b != byte(n) {
						t.Fatalf("byte %d = %#x, want %#x (padding leaked or pattern broken)", i+4, b, byte(n))
					}
				}
				// Without padding the frame is the driver's buffer itself.
				inBuffer := false
				for _, mem := range src.buffers {
					inBuffer = inBuffer || &mem[0] == &frame.Data[0]
				}
				if inBuffer == (tt.padding > 0) {
					t.Fatalf("frame points into a driver buffer: %v, want %v", inBuffer, tt.padding == 0)
				}
			}
		})
	}
}

func TestReadVideoHonoursContext(t *testing.T) {
	src, cam, _ := openFake(t, webcam, Config{Width: 640, Height: 480})
	read(t, src)
	cam.Pause()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.ReadVideo(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("ReadVideo returned %v after the deadline", took)
	}

	// A cancelled read loses nothing: the camera resumes and frames go on.
	cam.Resume()
	if got := frameNumber(t, read(t, src)); got != 1 {
		t.Fatalf("after resume got frame %d, want 1", got)
	}
}

func TestCloseUnblocksReadVideoAndReleasesEverything(t *testing.T) {
	cam := NewFakeCamera(webcam)
	src, err := NewSource(cam, "/dev/video0", Config{Width: 640, Height: 480}, device.NewClock())
	if err != nil {
		t.Fatal(err)
	}
	read(t, src)
	cam.Pause()
	done := make(chan error)
	go func() {
		_, err := src.ReadVideo(context.Background())
		done <- err
	}()
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked ReadVideo returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadVideo still blocked after Close")
	}
	if st := cam.State(); !st.Closed || st.Streaming || st.Mapped != 0 {
		t.Fatalf("after Close: %+v, want closed, not streaming, nothing mapped", st)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := src.ReadVideo(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadVideo after Close: %v, want ErrClosed", err)
	}
}

func TestUnplugGivesAClearError(t *testing.T) {
	tests := []struct {
		name string
		// unplug pulls the camera; it returns after ReadVideo has been
		// called when waiting is true.
		waiting bool
		prefix  string
	}{
		{"between frames", false, "queue buffer 0 on /dev/video0: camera disconnected: no such device"},
		{"while waiting for a frame", true, "dequeue frame from /dev/video0: camera disconnected: no such device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam := NewFakeCamera(webcam)
			src, err := NewSource(cam, "/dev/video0", Config{Width: 640, Height: 480}, device.NewClock())
			if err != nil {
				t.Fatal(err)
			}
			read(t, src)
			done := make(chan error)
			if tt.waiting {
				cam.Pause()
				go func() {
					_, err := src.ReadVideo(context.Background())
					done <- err
				}()
				waitForPoller(t, cam)
				cam.Unplug()
			} else {
				cam.Unplug()
				go func() {
					_, err := src.ReadVideo(context.Background())
					done <- err
				}()
			}
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadVideo did not return after unplug")
			}
			if !errors.Is(err, ErrDisconnected) || !errors.Is(err, unix.ENODEV) {
				t.Fatalf("err = %v, want ErrDisconnected and ENODEV", err)
			}
			if err.Error() != tt.prefix {
				t.Fatalf("err = %q\nwant  %q", err, tt.prefix)
			}
			// Later reads fail the same way at once instead of spinning.
			start := time.Now()
			if _, again := src.ReadVideo(context.Background()); !errors.Is(again, ErrDisconnected) {
				t.Fatalf("second read: %v", again)
			}
			if time.Since(start) > time.Second {
				t.Fatal("second read after unplug was slow")
			}
			if err := src.Close(); err != nil {
				t.Fatalf("Close after unplug: %v", err)
			}
			if st := cam.State(); !st.Closed || st.Mapped != 0 {
				t.Fatalf("after Close: %+v", st)
			}
		})
	}
}

// waitForPoller returns once a reader is blocked in the fake's Poll.
func waitForPoller(t *testing.T, cam *FakeCamera) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for cam.pollers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reader reached Poll")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadVideoAllocatesNothing(t *testing.T) {
	src, _, _ := openFake(t, webcam, Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.MJPEG}})
	ctx := context.Background()
	read(t, src)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := src.ReadVideo(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadVideo allocates %v times per frame, want 0", allocs)
	}
}

// BenchmarkReadVideo measures the per-frame cost of the capture path at
// 720p against the fake (whose own frame filling is part of the figure).
// "padded" is a driver with row padding, where each frame is copied once.
func BenchmarkReadVideo(b *testing.B) {
	tests := []struct {
		name    string
		format  media.PixelFormat
		padding int
	}{
		{"MJPEG", media.MJPEG, 0},
		{"YUYV", media.YUYV, 0},
		{"YUYV padded", media.YUYV, 64},
		{"NV12 padded", media.NV12, 64},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			cfg := webcam
			cfg.Formats = []FakeFormat{{Format: tt.format, Sizes: sizesHD}}
			cfg.RowPadding = tt.padding
			cam := NewFakeCamera(cfg)
			src, err := NewSource(cam, "bench", Config{Width: 1280, Height: 720, Formats: []media.PixelFormat{tt.format}}, device.NewClock())
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := src.ReadVideo(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCloseWhileReading races Close against a reader that is streaming
// frames as fast as it can, many times over; run with -race it checks that
// Close never unmaps a buffer a ReadVideo is handing out.
func TestCloseWhileReading(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 10
	}
	for range rounds {
		cam := NewFakeCamera(webcam)
		src, err := NewSource(cam, "/dev/video0", Config{Width: 640, Height: 480, Formats: []media.PixelFormat{media.MJPEG}}, device.NewClock())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() {
			for {
				frame, err := src.ReadVideo(context.Background())
				if err != nil {
					done <- err
					return
				}
				_ = frame.Data[len(frame.Data)-1]
			}
		}()
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("reader ended with %v, want ErrClosed", err)
		}
		if st := cam.State(); !st.Closed || st.Mapped != 0 {
			t.Fatalf("after Close: %+v", st)
		}
	}
}
