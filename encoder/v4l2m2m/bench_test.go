package v4l2m2m

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onair/onair/device/v4l2/dmabuftest"
	"github.com/onair/onair/media"
)

var benchSizes = []struct {
	name          string
	width, height int
}{{"720p", 1280, 720}, {"1080p", 1920, 1080}}

// BenchmarkHandOff is the per-frame cost of handing a picture to the
// hardware: the copy from the frame (no row padding) into the mapped
// OUTPUT buffer, laid out with the stride the driver asked for. It is the
// one copy of a raw picture between capture and encoder on this path.
//
//	go test -run - -bench HandOff -benchmem ./encoder/v4l2m2m/
func BenchmarkHandOff(b *testing.B) {
	for _, size := range benchSizes {
		for _, format := range []media.PixelFormat{media.I420, media.NV12, media.YUYV} {
			b.Run(fmt.Sprintf("%s/%s", size.name, format), func(b *testing.B) {
				devices := &fakes{}
				e, err := New(devices.open, "/dev/video11", params(size.width, size.height), Options{Format: format, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				frame := picture(format, size.width, size.height, 0)
				s := e.s
				dst := s.output[0].mem
				n, err := s.layout.copyFrame(dst, frame.Data)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s.layout.copyFrame(dst, frame.Data)
				}
				b.ReportMetric(float64(n), "copied-B/frame")
			})
			b.Run(fmt.Sprintf("%s/%s-dmabuf", size.name, format), func(b *testing.B) {
				benchmarkImport(b, format, size.width, size.height)
			})
		}
	}
}

// benchmarkImport is the hand-off of a camera's dma-buf instead: no copy;
// per frame the QBUF that imports the buffer and the DQBUFs that give it
// and the coded picture back (the fake encodes inside the QBUF; it writes
// a P slice and reads none of the picture). output-wait-ns/frame is the
// part spent getting the camera's buffer back before Encode may return.
func benchmarkImport(b *testing.B, format media.PixelFormat, width, height int) {
	heap := dmabuftest.NewHeap(func(v string) { b.Error(v) })
	src := exportingCamera(b, heap, dmabuftest.Contiguous, format, width, height, 0)
	frame, err := src.ReadVideo(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	devices := &fakes{cfg: FakeConfig{DMABufs: heap}}
	p := params(width, height)
	p.KeyframeInterval = 0
	e, err := New(devices.open, "/dev/video11", p, Options{Format: format, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if _, _, err := e.Encode(frame, false); err != nil { // sets up the import
		b.Fatal(err)
	}
	devices.last().find(cidH264IPeriod).value = 0
	s := e.s
	var wait time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.queueFrame(frame, false, time.Second); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := s.awaitSample(0, time.Second); err != nil || !ok {
			b.Fatal(ok, err)
		}
		start := time.Now()
		if err := s.awaitOutput(time.Second); err != nil {
			b.Fatal(err)
		}
		wait += time.Since(start)
	}
	b.ReportMetric(0, "copied-B/frame")
	b.ReportMetric(float64(wait.Nanoseconds())/float64(b.N), "output-wait-ns/frame")
	if info := e.Info(); info.RawMemory != "dmabuf" {
		b.Fatalf("encoder copies: %s", info.RawMemory)
	}
}

// BenchmarkEncode is a whole Encode against the fake: the hand-off, the
// buffer ioctls and polls, the fake's own encoding (it writes a P slice)
// and the copy of the access unit out of the coded buffer into the
// sample. Allocations: the sample's data (the VideoEncoder contract gives
// every sample its own) and the fake's copy of its slice.
//
//	go test -run - -bench Encode -benchmem ./encoder/v4l2m2m/
func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			devices := &fakes{}
			p := params(size.width, size.height)
			p.KeyframeInterval = 0 // only the first picture is a keyframe
			e, err := New(devices.open, "/dev/video11", p, Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			devices.last().find(cidH264IPeriod).value = 0
			frame := picture(media.I420, size.width, size.height, 0)
			if _, _, err := e.Encode(frame, false); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(frame.Data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, err := e.Encode(frame, false); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkEncodeCamera is a whole Encode of a camera's frame against the
// fakes, copied into the encoder's buffer (copy: the frame's dma-buf is
// left out) or imported (dmabuf), for the per-frame difference.
//
//	go test -run - -bench EncodeCamera -benchmem ./encoder/v4l2m2m/
func BenchmarkEncodeCamera(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range []string{"copy", "dmabuf"} {
			b.Run(size.name+"/"+mode, func(b *testing.B) {
				heap := dmabuftest.NewHeap(func(v string) { b.Error(v) })
				src := exportingCamera(b, heap, dmabuftest.Contiguous, media.I420, size.width, size.height, 0)
				frame, err := src.ReadVideo(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if mode == "copy" {
					frame.DMABuf = media.DMABuf{}
				}
				devices := &fakes{cfg: FakeConfig{DMABufs: heap}}
				p := params(size.width, size.height)
				p.KeyframeInterval = 0
				e, err := New(devices.open, "/dev/video11", p, Options{Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				if _, _, err := e.Encode(frame, false); err != nil {
					b.Fatal(err)
				}
				devices.last().find(cidH264IPeriod).value = 0
				if mode == "copy" {
					b.SetBytes(int64(len(frame.Data))) // the bytes copied; dmabuf copies none
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, ok, err := e.Encode(frame, false); err != nil || !ok {
						b.Fatal(ok, err)
					}
				}
				b.StopTimer()
				if got := e.Info().RawMemory; (got == "dmabuf") != (mode == "dmabuf") {
					b.Fatalf("raw memory %s in the %s run", got, mode)
				}
			})
		}
	}
}
