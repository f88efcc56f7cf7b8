package uplink

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// BenchmarkTrackWrite is the per-frame path of the uplink: packetizing one
// 10 kB access unit and handing the packets to a bound pion track (the
// interceptors and SRTP behind it are pion's). It allocates nothing.
func BenchmarkTrackWrite(b *testing.B) {
	tr, err := newTrack(videoCodec, "video")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.local.Bind(bindContext{w: discard{}}); err != nil {
		b.Fatal(err)
	}
	sample := media.Sample{Kind: media.Video, Data: h264.AppendAnnexB(nil, nalOfSize(0x41, 10_000, 7))}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sample.Capture = time.Duration(i) * time.Second / 30
		if err := tr.write(sample); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) WriteRTP(_ *rtp.Header, payload []byte) (int, error) { return len(payload), nil }
func (discard) Write(b []byte) (int, error)                         { return len(b), nil }
