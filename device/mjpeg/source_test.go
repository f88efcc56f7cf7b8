package mjpeg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/v4l2"
	"github.com/onair/onair/internal/imagetest"
	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// frameTime is the capture interval of the test streams (30 fps).
const frameTime = time.Second / 30

// gate hands out a frame of its source only once a worker has taken the
// one before, so that no frame is ever skipped and a test knows exactly
// which frames get decoded. Its convert wraps the Source's.
type gate struct {
	device.VideoSource
	taken   chan struct{}
	started bool
}

func newGate(src device.VideoSource) *gate {
	return &gate{VideoSource: src, taken: make(chan struct{}, 1)}
}

func (g *gate) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if g.started {
		select {
		case <-g.taken:
		case <-ctx.Done():
			return media.VideoFrame{}, ctx.Err()
		}
	}
	g.started = true
	return g.VideoSource.ReadVideo(ctx)
}

func (g *gate) convert(next convertFunc) convertFunc {
	return func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
		g.taken <- struct{}{}
		return next(dec, dst, frame)
	}
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
	// The fake camera has a frame ready whenever asked: the gate keeps
	// the Source from skipping any, so the count below is exact.
	g := newGate(camera)
	src := newSource(g, Options{Workers: 2}, g.convert(convert))
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
		if p := imagetest.PSNR(frame.Data, want); p < 40 {
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
	if got := src.Skipped(); got != 0 {
		t.Fatalf("Skipped() = %d, want 0", got)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if st := cam.State(); !st.Closed || st.Mapped != 0 {
		t.Fatalf("camera not released: %+v", st)
	}
	if _, err := src.ReadVideo(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadVideo after Close: %v", err)
	}
}

// frames is a VideoSource that hands out given frames, then its error
// (nil: it blocks until the context ends).
type frames struct {
	list []media.VideoFrame
	err  error
}

func (f *frames) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if len(f.list) == 0 {
		if f.err != nil {
			return media.VideoFrame{}, f.err
		}
		<-ctx.Done()
		return media.VideoFrame{}, ctx.Err()
	}
	next := f.list[0]
	f.list = f.list[1:]
	return next, nil
}

func (f *frames) Close() error { return nil }

func TestSourcePassesOtherFormatsAndHonoursContext(t *testing.T) {
	raw := media.VideoFrame{Format: media.YUYV, Width: 2, Height: 2, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Capture: 5}
	broken := media.VideoFrame{Format: media.MJPEG, Width: 2, Height: 2, Data: []byte{0xff, 0xd8, 0xff}}
	g := newGate(&frames{list: []media.VideoFrame{raw, broken, broken}})
	src := newSource(g, Options{}, g.convert(convert))
	defer src.Close()
	got, err := src.ReadVideo(context.Background())
	if err != nil || got.Format != media.YUYV || got.Capture != 5 || !bytes.Equal(got.Data, raw.Data) {
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

// testPictures makes n JPEG frames of different content (a gradient
// shifted per frame, Huffman tables stripped as UVC sends them) and each
// one's I420 as a lone Decoder makes it.
func testPictures(t testing.TB, n, width, height int) (jpegs, want [][]byte) {
	t.Helper()
	var dec Decoder
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, width, height))
		for y := range height {
			for x := range width {
				img.Set(x, y, color.RGBA{R: uint8(x*3 + 37*i), G: uint8(y*5 + 71*i), B: uint8((x + y) ^ (i * 29)), A: 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
			t.Fatal(err)
		}
		frame := stripTables(t, buf.Bytes())
		i420, err := dec.Decode(frame, width, height)
		if err != nil {
			t.Fatalf("picture %d: %v", i, err)
		}
		jpegs = append(jpegs, frame)
		want = append(want, bytes.Clone(i420))
	}
	for i := 1; i < n; i++ {
		if bytes.Equal(want[i], want[i-1]) {
			t.Fatalf("pictures %d and %d are alike: reordering would go unseen", i-1, i)
		}
	}
	return jpegs, want
}

// stream is a camera that always has a frame: pictures in turn, frameTime
// apart, the count up to limit (0: no end).
type stream struct {
	pictures      [][]byte
	width, height int
	next, limit   int
}

func (s *stream) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if s.limit > 0 && s.next >= s.limit {
		<-ctx.Done()
		return media.VideoFrame{}, ctx.Err()
	}
	i := s.next
	s.next++
	return media.VideoFrame{
		Format: media.MJPEG, Width: s.width, Height: s.height,
		Data: s.pictures[i%len(s.pictures)], Capture: time.Duration(i) * frameTime,
	}, nil
}

func (s *stream) Close() error { return nil }

// checkFrame fails unless frame is the I420 of the picture its capture
// time says, and comes after the capture time before it.
func checkFrame(t *testing.T, frame media.VideoFrame, want [][]byte, last time.Duration) {
	t.Helper()
	if frame.Format != media.I420 {
		t.Fatalf("frame at %v is %s", frame.Capture, frame.Format)
	}
	if frame.Capture <= last {
		t.Fatalf("frame at %v came after the one at %v", frame.Capture, last)
	}
	i := int(frame.Capture / frameTime)
	if !bytes.Equal(frame.Data, want[i%len(want)]) {
		for j := range want {
			if bytes.Equal(frame.Data, want[j]) {
				t.Fatalf("frame %d (at %v) carries picture %d's data", i, frame.Capture, j)
			}
		}
		t.Fatalf("frame %d (at %v) is no picture of the stream", i, frame.Capture)
	}
}

// TestSourceKeepsOrderWhenDecodesFinishOutOfOrder makes every third frame
// finish decoding after the two that follow it: they must still come out
// in capture order, each with its own picture and capture time.
func TestSourceKeepsOrderWhenDecodesFinishOutOfOrder(t *testing.T) {
	const n = 12
	jpegs, want := testPictures(t, n, 96, 64)
	finished := make([]chan struct{}, n)
	for i := range finished {
		finished[i] = make(chan struct{})
	}
	g := newGate(&stream{pictures: jpegs, width: 96, height: 64, limit: n})
	conv := g.convert(func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
		i := int(frame.Capture / frameTime)
		if i%3 == 0 && i+2 < n {
			<-finished[i+1]
			<-finished[i+2]
		}
		defer close(finished[i])
		return convert(dec, dst, frame)
	})
	src := newSource(g, Options{Workers: 3}, conv)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last time.Duration = -1
	for i := range n {
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		checkFrame(t, frame, want, last)
		if frame.Capture != time.Duration(i)*frameTime {
			t.Fatalf("frame %d has capture time %v, want %v", i, frame.Capture, time.Duration(i)*frameTime)
		}
		last = frame.Capture
	}
	if src.Dropped() != 0 || src.Skipped() != 0 {
		t.Fatalf("Dropped() = %d, Skipped() = %d; want none", src.Dropped(), src.Skipped())
	}
}

// TestSourceKeepsOrderFreeRunning lets a camera that always has a frame
// run against 1-3 workers and a reader: frames are skipped, but those
// handed on keep their order and their own pictures, and memory stays
// within the bound.
func TestSourceKeepsOrderFreeRunning(t *testing.T) {
	jpegs, want := testPictures(t, 7, 320, 240)
	for workers := 1; workers <= 3; workers++ {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			src := NewSourceWith(&stream{pictures: jpegs, width: 320, height: 240}, Options{Workers: workers})
			defer src.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var last time.Duration = -1
			for range 60 {
				frame, err := src.ReadVideo(ctx)
				if err != nil {
					t.Fatal(err)
				}
				checkFrame(t, frame, want, last)
				last = frame.Capture
			}
			src.mu.Lock()
			jobs, pictures := src.jobsMade, src.picturesMade
			src.mu.Unlock()
			t.Logf("last frame %d, %d skipped; %d frame copies, %d pictures", int(last/frameTime), src.Skipped(), jobs, pictures)
			if jobs > workers+3 || pictures > workers+1 {
				t.Fatalf("%d frame copies and %d pictures made; the bound is %d and %d", jobs, pictures, workers+3, workers+1)
			}
		})
	}
}

// pushed is a camera the test drives: ReadVideo says it was called (so the
// frame before is queued) and returns what the test sends.
type pushed struct {
	asked  chan struct{}
	frames chan media.VideoFrame
}

func (p *pushed) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	select {
	case p.asked <- struct{}{}:
	case <-ctx.Done():
		return media.VideoFrame{}, ctx.Err()
	}
	select {
	case f := <-p.frames:
		return f, nil
	case <-ctx.Done():
		return media.VideoFrame{}, ctx.Err()
	}
}

func (p *pushed) Close() error { return nil }

// push hands the Source frame i and waits until it is queued.
func (p *pushed) push(jpegs [][]byte, width, height, i int) {
	<-p.asked
	p.frames <- media.VideoFrame{Format: media.MJPEG, Width: width, Height: height, Data: jpegs[i], Capture: time.Duration(i) * frameTime}
}

// TestSourceDropsOldestWhenBehind stalls the consumer: two workers decode
// frames 0 and 1 and then have no room; of the frames that come after, only
// the newest is kept, and it is the next one handed on after 0 and 1.
func TestSourceDropsOldestWhenBehind(t *testing.T) {
	const width, height = 64, 48
	jpegs, want := testPictures(t, 8, width, height)
	cam := &pushed{asked: make(chan struct{}), frames: make(chan media.VideoFrame)}
	taken := make(chan int, 8)
	src := newSource(cam, Options{Workers: 2}, func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
		taken <- int(frame.Capture / frameTime)
		return convert(dec, dst, frame)
	})
	defer src.Close()
	for i := range 2 {
		// Each waits for its worker, or the next would push it out.
		cam.push(jpegs, width, height, i)
		<-taken
	}
	for i := 2; i <= 5; i++ {
		cam.push(jpegs, width, height, i)
	}
	<-cam.asked // frame 5 is queued
	src.mu.Lock()
	queued, waiting, inFlight := len(src.queue), src.waiting, src.inFlight
	src.mu.Unlock()
	if queued != 3 || waiting != 1 || inFlight != 2 {
		t.Fatalf("queue of %d, %d waiting, %d in flight; want 3, 1 (the newest), 2 (the workers)", queued, waiting, inFlight)
	}
	if got := src.Skipped(); got != 3 {
		t.Fatalf("Skipped() = %d, want 3 (frames 2, 3, 4)", got)
	}
	select {
	case i := <-taken:
		t.Fatalf("frame %d decoded with two in flight and two workers", i)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last time.Duration = -1
	for _, i := range []int{0, 1, 5} {
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkFrame(t, frame, want, last)
		if got := int(frame.Capture / frameTime); got != i {
			t.Fatalf("got frame %d, want %d", got, i)
		}
		last = frame.Capture
	}
	if got := src.Skipped(); got != 3 {
		t.Fatalf("Skipped() = %d after reading, want 3", got)
	}
}

// TestSourceBoundsBrokenFramesNobodyReads feeds only broken frames, as fast
// as they come, with no consumer: they must not pile up in the queue.
func TestSourceBoundsBrokenFramesNobodyReads(t *testing.T) {
	broken := []byte{0xff, 0xd8, 0xff, 0xc0, 0x00}
	src := NewSourceWith(&stream{pictures: [][]byte{broken}, width: 64, height: 48}, Options{Workers: 2})
	defer src.Close()
	deadline := time.Now().Add(10 * time.Second)
	for src.Skipped() < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d frames skipped in 10 s", src.Skipped())
		}
		runtime.Gosched()
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.queue) > 3 || src.jobsMade > 2+3 {
		t.Fatalf("queue of %d, %d frame copies made with 2 workers", len(src.queue), src.jobsMade)
	}
}

func TestSourceHandsOnTheSourcesErrorAfterItsFrames(t *testing.T) {
	jpegs, want := testPictures(t, 2, 64, 48)
	unplugged := errors.New("camera unplugged")
	cam := &frames{err: unplugged}
	for i := range 2 {
		cam.list = append(cam.list, media.VideoFrame{Format: media.MJPEG, Width: 64, Height: 48, Data: jpegs[i], Capture: time.Duration(i) * frameTime})
	}
	g := newGate(cam)
	src := newSource(g, Options{Workers: 3}, g.convert(convert))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last time.Duration = -1
	for range 2 {
		frame, err := src.ReadVideo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkFrame(t, frame, want, last)
		last = frame.Capture
	}
	for range 2 {
		if _, err := src.ReadVideo(ctx); !errors.Is(err, unplugged) {
			t.Fatalf("err = %v, want the camera's", err)
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadVideo(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadVideo after Close: %v", err)
	}
}

func TestSourceCloseWakesReadVideoAndStopsDecoding(t *testing.T) {
	jpegs, _ := testPictures(t, 1, 64, 48)
	release := make(chan struct{})
	decoding := make(chan struct{}, 1)
	src := newSource(&stream{pictures: jpegs, width: 64, height: 48}, Options{Workers: 2}, func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
		select {
		case decoding <- struct{}{}:
		default:
		}
		<-release // a decode that is still running when Close comes
		return convert(dec, dst, frame)
	})
	read := make(chan error)
	go func() {
		_, err := src.ReadVideo(context.Background())
		read <- err
	}()
	<-decoding
	closed := make(chan error)
	go func() { closed <- src.Close() }()
	if err := <-read; !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadVideo blocked during Close returned %v", err)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestDefaultWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 3, 8: 3} {
		runtime.GOMAXPROCS(procs)
		if got := DefaultWorkers(); got != want {
			t.Errorf("GOMAXPROCS %d: %d workers, want %d", procs, got, want)
		}
	}
}

// TestSourceAddsNoAllocations checks that, in steady state, a frame through
// Source costs only what image/jpeg allocates for it: the copies and
// pictures come from the pools.
func TestSourceAddsNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	jpeg := stripTables(t, ffmpegJPEG(t, 320, 240, "yuvj422p", true))
	var dec Decoder
	decodeAllocs := testing.AllocsPerRun(20, func() {
		if _, err := dec.Decode(jpeg, 320, 240); err != nil {
			t.Fatal(err)
		}
	})
	for workers := 1; workers <= 3; workers++ {
		g := newGate(&stream{pictures: [][]byte{jpeg}, width: 320, height: 240})
		src := newSource(g, Options{Workers: workers}, g.convert(convert))
		ctx := context.Background()
		sourceAllocs := testing.AllocsPerRun(50, func() {
			if _, err := src.ReadVideo(ctx); err != nil {
				t.Fatal(err)
			}
		})
		src.Close()
		t.Logf("%d workers: %.0f allocations per frame; image/jpeg alone %.0f", workers, sourceAllocs, decodeAllocs)
		if sourceAllocs > decodeAllocs {
			t.Errorf("%d workers: %.0f allocations per frame, image/jpeg alone makes %.0f", workers, sourceAllocs, decodeAllocs)
		}
	}
}

// BenchmarkSource is the throughput of Source with 1, 2 and 3 workers on
// a webcam's 4:2:2 MJPEG without tables: a camera that always has the next
// frame, held back only so that none is skipped (every frame read is
// decoded), and a consumer that takes each as soon as it is ready. One op
// is one frame handed on. Beside ns/op and allocs/op (per frame) it
// reports frames/s, the process's CPU time per frame (all goroutines, GC
// included) and the GC's share of it.
func BenchmarkSource(b *testing.B) {
	for _, size := range []struct {
		name          string
		width, height int
	}{{"720p", 1280, 720}, {"1080p", 1920, 1080}} {
		jpeg := stripTables(b, ffmpegJPEG(b, size.width, size.height, "yuvj422p", true))
		for workers := 1; workers <= 3; workers++ {
			b.Run(fmt.Sprintf("%s/workers=%d", size.name, workers), func(b *testing.B) {
				g := newGate(&stream{pictures: [][]byte{jpeg}, width: size.width, height: size.height})
				src := newSource(g, Options{Workers: workers}, g.convert(convert))
				defer src.Close()
				ctx := context.Background()
				// Warm up: the pools fill on the first frames.
				for range workers + 2 {
					if _, err := src.ReadVideo(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(jpeg)))
				cpu, gc := cpuTime(), gcCPUTime()
				start := time.Now()
				for b.Loop() {
					if _, err := src.ReadVideo(ctx); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				frames := float64(b.N)
				b.ReportMetric(frames/elapsed.Seconds(), "frames/s")
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/frames, "cpu-ms/frame")
				b.ReportMetric((gcCPUTime()-gc)*1000/frames, "gc-ms/frame")
			})
		}
	}
}

// BenchmarkSourcePipeline checks the pipeline's own scaling, apart from
// the CPU it can get on a shared machine: each "decode" sleeps 10 ms, so N
// workers should hand on close to N*100 frames/s.
func BenchmarkSourcePipeline(b *testing.B) {
	jpegs, _ := testPictures(b, 1, 64, 48)
	for workers := 1; workers <= 3; workers++ {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			g := newGate(&stream{pictures: jpegs, width: 64, height: 48})
			src := newSource(g, Options{Workers: workers}, g.convert(func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
				time.Sleep(10 * time.Millisecond)
				return convert(dec, dst, frame)
			}))
			defer src.Close()
			ctx := context.Background()
			start := time.Now()
			for b.Loop() {
				if _, err := src.ReadVideo(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
		})
	}
}
