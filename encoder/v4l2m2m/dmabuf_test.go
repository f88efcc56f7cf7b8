package v4l2m2m

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/device/v4l2/dmabuftest"
	"github.com/onair/onair/media"
)

// exportingCamera opens a fake camera whose buffers are exported into heap
// as memory, and closes it when the test ends.
func exportingCamera(t testing.TB, heap *dmabuftest.Heap, memory dmabuftest.Memory, format media.PixelFormat, width, height, rowPadding int) *v4l2.Source {
	t.Helper()
	cam := v4l2.NewFakeCamera(v4l2.FakeConfig{
		Formats:      []v4l2.FakeFormat{{Format: format, Sizes: []v4l2.FakeSize{{Width: width, Height: height}}}},
		RowPadding:   rowPadding,
		DMABufs:      heap,
		DMABufMemory: memory,
	})
	src, err := v4l2.NewSource(cam, "/dev/video0", v4l2.Config{
		Width: width, Height: height, Formats: []media.PixelFormat{format}, Logger: quiet,
	}, device.NewClock())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.ExportBuffers(); err != nil {
		t.Fatal(err)
	}
	return src
}

// pictureCheck is an OnPicture that compares what the fake encoder read
// with the frame handed to Encode.
type pictureCheck struct {
	mu      sync.Mutex
	current media.VideoFrame
	seen    int
	wrong   int
}

func (c *pictureCheck) onPicture(p FakePicture) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen++
	if !bytes.Equal(p.Data, c.current.Data[:len(p.Data)]) {
		c.wrong++
	}
}

func (c *pictureCheck) set(frame media.VideoFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = frame
}

// logRecorder keeps the messages logged, for tests that count them.
type logRecorder struct {
	mu   sync.Mutex
	logs bytes.Buffer
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// encodeCamera reads n frames from src and encodes each, checking that the
// encoder gave the camera's buffer back before Encode returned.
func encodeCamera(t *testing.T, src *v4l2.Source, e *Encoder, heap *dmabuftest.Heap, check *pictureCheck, n int) {
	t.Helper()
	ctx := context.Background()
	got := 0
	for i := 0; i < n; i++ {
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if frame.DMABuf.Size == 0 {
			t.Fatalf("frame %d carries no dma-buf", i)
		}
		check.set(frame)
		_, ok, err := e.Encode(frame, false)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ok {
			got++
		}
		if lent := heap.Lent(frame.DMABuf.FD); lent != 0 {
			t.Fatalf("frame %d: Encode returned with the camera's buffer still lent %d times", i, lent)
		}
	}
	if got < n-e.opt.Delay {
		t.Fatalf("%d access units from %d pictures", got, n)
	}
	if check.seen != n || check.wrong != 0 {
		t.Fatalf("the hardware read %d pictures, %d of them not the camera's", check.seen, check.wrong)
	}
}

func TestDMABufImport(t *testing.T) {
	tests := []struct {
		format        media.PixelFormat
		latency       int
		width, height int
	}{
		{media.I420, 0, 640, 480},
		{media.NV12, 0, 640, 480},
		{media.YUYV, 0, 1280, 720},
		{media.I420, 1, 640, 480}, // the hardware holds a picture: Encode still gets the buffer back
	}
	for _, tt := range tests {
		t.Run(tt.format.String(), func(t *testing.T) {
			heap := dmabuftest.NewHeap(func(v string) { t.Error(v) })
			src := exportingCamera(t, heap, dmabuftest.Contiguous, tt.format, tt.width, tt.height, 0)
			check := &pictureCheck{}
			devices := &fakes{cfg: FakeConfig{DMABufs: heap, OnPicture: check.onPicture, Latency: tt.latency}}
			e, err := New(devices.open, "/dev/video11", params(tt.width, tt.height),
				Options{Format: tt.format, Delay: tt.latency, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			encodeCamera(t, src, e, heap, check, 12)
			if info := e.Info(); info.RawMemory != "dmabuf" {
				t.Errorf("Info.RawMemory = %q, want dmabuf", info.RawMemory)
			}
			// Open set up for copying; the first frame with a dma-buf
			// set the encoder up again, once.
			if len(devices.devices) != 2 {
				t.Errorf("%d sessions, want 2", len(devices.devices))
			}
			st := devices.last().State()
			if st.OutputMemory != "dmabuf" || st.Stats.Imports != 12 || st.Stats.ImportsRefused != 0 {
				t.Errorf("OUTPUT memory %q, %d imports, %d refused", st.OutputMemory, st.Stats.Imports, st.Stats.ImportsRefused)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if st := devices.last().State(); st.Mapped != 0 || !st.Closed {
				t.Errorf("after Close: %d mappings, closed %v", st.Mapped, st.Closed)
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			if open := heap.Open(); open != 0 {
				t.Errorf("%d dma-buf descriptors left open after the camera closed", open)
			}
		})
	}
}

// TestDMABufRefused: a camera whose buffers the encoder cannot import
// (vmalloc memory: QBUF says EFAULT; rows the encoder cannot take: S_FMT
// gives another stride) makes the encoder copy, with one log line saying
// why, and nothing else changes.
func TestDMABufRefused(t *testing.T) {
	tests := []struct {
		name       string
		memory     dmabuftest.Memory
		rowPadding int
		reason     string
		sessions   int
	}{
		{"vmalloc", dmabuftest.Vmalloc, 0, "bad address", 3},
		{"stride", dmabuftest.Contiguous, 8, "rows 704 bytes apart, the camera's buffers 648", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			heap := dmabuftest.NewHeap(func(v string) { t.Error(v) })
			src := exportingCamera(t, heap, tt.memory, media.I420, 640, 480, tt.rowPadding)
			check := &pictureCheck{}
			logs := &logRecorder{}
			devices := &fakes{cfg: FakeConfig{DMABufs: heap, OnPicture: check.onPicture}}
			e, err := New(devices.open, "/dev/video11", params(640, 480),
				Options{Format: media.I420, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			encodeCamera(t, src, e, heap, check, 8)
			if info := e.Info(); info.RawMemory != "mmap" {
				t.Errorf("Info.RawMemory = %q, want mmap", info.RawMemory)
			}
			if n := strings.Count(logs.String(), "cannot read the camera's buffers"); n != 1 {
				t.Errorf("fallback logged %d times, want once:\n%s", n, logs)
			}
			if !strings.Contains(logs.String(), tt.reason) {
				t.Errorf("fallback log does not say %q:\n%s", tt.reason, logs)
			}
			if len(devices.devices) != tt.sessions {
				t.Errorf("%d sessions, want %d", len(devices.devices), tt.sessions)
			}
			if st := devices.last().State(); st.OutputMemory != "mmap" || st.Stats.FramesEncoded != 8 {
				t.Errorf("after the fallback: OUTPUT memory %q, %d pictures", st.OutputMemory, st.Stats.FramesEncoded)
			}
		})
	}
}

// TestDMABufOwnershipChecked shows that the fakes catch both ways of
// breaking the hand-off: the camera filling a buffer the encoder holds,
// and the encoder importing a buffer the camera is filling.
func TestDMABufOwnershipChecked(t *testing.T) {
	var mu sync.Mutex
	var broken []string
	heap := dmabuftest.NewHeap(func(v string) {
		mu.Lock()
		defer mu.Unlock()
		broken = append(broken, v)
	})
	src := exportingCamera(t, heap, dmabuftest.Contiguous, media.I420, 640, 480, 0)
	ctx := context.Background()

	// An encoder that kept the buffer past the next ReadVideo.
	frame, err := src.ReadVideo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heap.Lend(frame.DMABuf.FD, "a careless encoder")
	if _, err := src.ReadVideo(ctx); err != nil {
		t.Fatal(err)
	}
	heap.Return(frame.DMABuf.FD)
	if len(broken) != 1 || !strings.Contains(broken[0], "while an importer still holds it") {
		t.Fatalf("camera refilling a lent buffer: violations %q", broken)
	}

	// An encoder handed a buffer that is queued on the camera: the frame
	// just read holds one buffer, the others are being filled.
	devices := &fakes{cfg: FakeConfig{DMABufs: heap}}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Format: media.I420, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	frame, err = src.ReadVideo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stray := frame
	stray.DMABuf.FD = frame.DMABuf.FD + 1 // the next buffer's export
	if _, _, err := e.Encode(stray, false); err != nil {
		t.Fatal(err)
	}
	if len(broken) != 2 || !strings.Contains(broken[1], "while it is queued to be filled") {
		t.Fatalf("encoder importing a buffer being filled: violations %q", broken)
	}
}

// TestDMABufFailureGivesBufferBack: when the hardware fails holding the
// camera's buffer, Encode returns the error with the buffer given back
// (the caller reads on before Reset), and Reset carries on.
func TestDMABufFailureGivesBufferBack(t *testing.T) {
	heap := dmabuftest.NewHeap(func(v string) { t.Error(v) })
	src := exportingCamera(t, heap, dmabuftest.Contiguous, media.I420, 640, 480, 0)
	check := &pictureCheck{}
	devices := &fakes{cfg: FakeConfig{DMABufs: heap, OnPicture: check.onPicture}}
	e, err := New(devices.open, "/dev/video11", params(640, 480), Options{Format: media.I420, Logger: quiet, Timeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	encodeCamera(t, src, e, heap, check, 3)

	// The firmware wedges: the imported picture is never given back.
	devices.cfg.Stall = true
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	frame, err := src.ReadVideo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.Encode(frame, false)
	if !errors.Is(err, unix.ETIMEDOUT) {
		t.Fatalf("Encode on a stalled encoder: %v, want ETIMEDOUT", err)
	}
	if lent := heap.Lent(frame.DMABuf.FD); lent != 0 {
		t.Fatalf("after the failure the camera's buffer is still lent %d times", lent)
	}
	if st := devices.last().State(); !st.Closed {
		t.Fatal("the failed session holding the buffer was not torn down")
	}
	devices.cfg.Stall = false
	if err := e.Reset(); err != nil {
		t.Fatal(err)
	}
	check.seen = 0
	encodeCamera(t, src, e, heap, check, 3)
	if info := e.Info(); info.RawMemory != "dmabuf" {
		t.Errorf("after Reset: Info.RawMemory = %q, want dmabuf", info.RawMemory)
	}
}

// TestDMABufAllocations: importing allocates no more per picture than
// copying (the sample's data and the fake's copy of its slice).
func TestDMABufAllocations(t *testing.T) {
	heap := dmabuftest.NewHeap(func(v string) { t.Error(v) })
	src := exportingCamera(t, heap, dmabuftest.Contiguous, media.I420, 1280, 720, 0)
	frame, err := src.ReadVideo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	devices := &fakes{cfg: FakeConfig{DMABufs: heap}}
	e, err := New(devices.open, "/dev/video11", params(1280, 720), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := 0; i < 2; i++ {
		if _, _, err := e.Encode(frame, false); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, ok, err := e.Encode(frame, false); err != nil || !ok {
			t.Fatal(ok, err)
		}
	})
	if allocs > 2 {
		t.Fatalf("%v allocations per imported picture", allocs)
	}
	if e.Info().RawMemory != "dmabuf" {
		t.Fatal("the encoder does not import")
	}
}
