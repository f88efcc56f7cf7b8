package v4l2m2m

import (
	"fmt"
	"testing"

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
		}
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
