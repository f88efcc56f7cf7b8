package mjpeg

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// TestSourceDecodesACameraStream runs a fake UVC camera that sends MJPEG
// without Huffman tables, one frame of three cut short, through Source.
func TestSourceDecodesACameraStream(t *testing.T) {
	good := stripTables(t, ffmpegJPEG(t, 320, 240, "yuvj422p", true))
	want := ffmpegI420(t, ffmpegJPEG(t, 320, 240, "yuvj422p", true))
	cam := v4l2.NewFakeCamera(v4l2.FakeConfig{
		Formats:  []v4l2.FakeFormat{{Format: media.MJPEG, Sizes: []v4l2.FakeSize{{Width: 320, Height: 240}}}},
		Pictures: [][]byte{good, good[:len(good)/2], good},
	})
	camera, err := v4l2.NewSource(cam, "/dev/video0", v4l2.Config{Width: 320, Height: 240, FPS: 30, Formats: []media.PixelFormat{media.YUYV, media.MJPEG}}, device.NewClock())
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource(camera, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last time.Duration = -1
	for i := range 4 {
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if frame.Format != media.I420 || frame.Width != 320 || frame.Height != 240 || len(frame.Data) != 320*240*3/2 {
			t.Fatalf("frame %d: %s %dx%d, %d bytes", i, frame.Format, frame.Width, frame.Height, len(frame.Data))
		}
		if p := psnr(frame.Data, want); p < 40 {
			t.Fatalf("frame %d: PSNR %.1f dB against ffmpeg's decode", i, p)
		}
		if frame.Capture <= last {
			t.Fatalf("frame %d: capture time %v not after %v", i, frame.Capture, last)
		}
		last = frame.Capture
	}
	// Frames 0, 2, 3 and 5 decoded; 1 and 4 were cut short.
	if got := src.Dropped(); got != 2 {
		t.Fatalf("Dropped() = %d, want 2", got)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if st := cam.State(); !st.Closed || st.Mapped != 0 {
		t.Fatalf("camera not released: %+v", st)
	}
	if _, err := src.ReadVideo(ctx); !errors.Is(err, v4l2.ErrClosed) {
		t.Fatalf("ReadVideo after Close: %v", err)
	}
}

// frames is a VideoSource that hands out given frames, then blocks.
type frames struct{ list []media.VideoFrame }

func (f *frames) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if len(f.list) == 0 {
		<-ctx.Done()
		return media.VideoFrame{}, ctx.Err()
	}
	next := f.list[0]
	f.list = f.list[1:]
	return next, nil
}

func (f *frames) Close() error { return nil }

func TestSourcePassesOtherFormatsAndHonoursContext(t *testing.T) {
	raw := media.VideoFrame{Format: media.YUYV, Width: 2, Height: 2, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	broken := media.VideoFrame{Format: media.MJPEG, Width: 2, Height: 2, Data: []byte{0xff, 0xd8, 0xff}}
	src := NewSource(&frames{list: []media.VideoFrame{raw, broken, broken}}, nil)
	got, err := src.ReadVideo(context.Background())
	if err != nil || got.Format != media.YUYV || !bytes.Equal(got.Data, raw.Data) {
		t.Fatalf("raw frame came out as %+v, %v", got, err)
	}
	// Only broken frames follow: ReadVideo keeps dropping them and ends
	// with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := src.ReadVideo(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if src.Dropped() != 2 {
		t.Fatalf("Dropped() = %d, want 2", src.Dropped())
	}
}
