package replay

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onair/onair/media"
)

// loopSource plays a clip over and over for a given length of media, with
// capture times running on, and counts the media bytes.
type loopSource struct {
	clip       []media.Sample
	period     time.Duration // clip length
	total      time.Duration
	i          int
	mediaBytes int64
}

func (s *loopSource) next() (media.Sample, bool) {
	x := s.clip[s.i%len(s.clip)]
	x.Capture += time.Duration(s.i/len(s.clip)) * s.period
	if x.Capture-s.clip[0].Capture >= s.total {
		return media.Sample{}, false
	}
	s.i++
	s.mediaBytes += int64(len(x.Data))
	return x, true
}

func (s *loopSource) Next(ctx context.Context) (media.Sample, error) {
	if x, ok := s.next(); ok {
		return x, nil
	}
	return media.Sample{}, errEnd
}

func clip720p(b *testing.B) ([]media.Sample, time.Duration) {
	b.Helper()
	testMedia(b) // sets up the media directory
	clip, err := makeMedia(1280, 720, 2500, 4)
	if err != nil {
		b.Fatal(err)
	}
	return clip, 4 * time.Second
}

// BenchmarkRecord720p30 writes 720p30 H.264 at 2.5 Mbit/s with 64 kbit/s
// Opus; one op is one second of media. "mux" is the muxer alone (the per
// sample hot path, which must not allocate), "record" the whole recorder:
// queue, muxer, a write and an fsync per fragment, the free space check,
// the index at the end. overhead_% is the file's bytes beyond the media's.
func BenchmarkRecord720p30(b *testing.B) {
	clip, period := clip720p(b)
	b.Run("mux", func(b *testing.B) {
		src := &loopSource{clip: clip, period: period, total: time.Duration(b.N+2) * time.Second}
		m := newMuxer()
		var out int64
		step := func(until time.Duration) {
			for {
				x, ok := src.next()
				if !ok {
					return
				}
				if m.needCut(x) {
					b, frag, _ := m.cut(x.Capture, x.Kind == media.Video)
					out += int64(len(b))
					m.written(&frag)
				}
				m.add(x)
				if x.Capture-clip[0].Capture >= until {
					return
				}
			}
		}
		step(2 * time.Second) // buffers grow to their size
		out, src.mediaBytes = 0, 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			step(time.Duration(i+3) * time.Second)
		}
		b.StopTimer()
		b.ReportMetric(100*float64(out-src.mediaBytes)/float64(src.mediaBytes), "overhead_%")
	})
	b.Run("record", func(b *testing.B) {
		dir := b.TempDir()
		l := openLib(b, dir, newFakeClock(broadcastStart), Options{FreeBytes: statfsFree, MinFreeBytes: 1})
		l.queueLen = (b.N + 1) * 100
		src := &loopSource{clip: clip, period: period, total: time.Duration(b.N) * time.Second}
		b.ReportAllocs()
		b.ResetTimer()
		if err := l.Record(context.Background(), Meta{BroadcastID: "bench"}, src); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st, err := os.Stat(filepath.Join(dir, "bench.mp4"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(100*float64(st.Size()-src.mediaBytes)/float64(src.mediaBytes), "overhead_%")
		b.ReportMetric(float64(src.mediaBytes)/float64(b.N)/1e6, "media_MB/op")
	})
}
