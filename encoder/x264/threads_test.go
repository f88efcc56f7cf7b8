//go:build cgo

package x264

import (
	"fmt"
	"testing"
	"time"

	"github.com/onair/onair/encoder"
)

// BenchmarkEncodeThreads is the software encoder's scaling with its slice
// threads (Options.Threads, 1 to 4) on 720p30 noise at 2.5 Mbit/s, the
// load of a Pi 5, which has no H.264 block: wall time per picture (ns/op,
// what real time needs under 33 ms) and CPU per picture (cpu-ns/op, what
// the box pays).
//
//	go test -run - -bench EncodeThreads -benchtime 150x ./encoder/x264/
func BenchmarkEncodeThreads(b *testing.B) {
	frames := patternFrames(b, 30, true)
	for threads := 1; threads <= 4; threads++ {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			enc, err := New(encoder.VideoParams{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, KeyframeInterval: 2 * time.Second},
				Options{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			before := processCPU()
			i := 0
			for b.Loop() {
				if _, _, err := enc.Encode(frames[i%len(frames)], false); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(processCPU()-before)/float64(b.N), "cpu-ns/op")
		})
	}
}
