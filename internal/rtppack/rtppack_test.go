package rtppack

import (
	"bytes"
	"testing"

	"github.com/pion/rtp/codecs"

	"github.com/onair/onair/media/h264"
)

type collect struct {
	payloads [][]byte
	markers  []bool
}

func (c *collect) SendRTP(p []byte, marker bool) error {
	c.payloads = append(c.payloads, bytes.Clone(p))
	c.markers = append(c.markers, marker)
	return nil
}

func nalOfSize(header byte, size int, fill byte) []byte {
	n := bytes.Repeat([]byte{fill}, size)
	n[0] = header
	return n
}

// TestRoundTripThroughPion packetizes an access unit and has pion's own
// depacketizer (an independent implementation) put it back together.
func TestRoundTripThroughPion(t *testing.T) {
	sps, pps := []byte{0x67, 0x42, 0xc0, 0x1f}, []byte{0x68, 0xce, 0x3c, 0x80}
	idr := nalOfSize(0x65, 3000, 9) // three FU-A fragments
	small := nalOfSize(0x41, 500, 3)
	au := h264.AppendAnnexB(nil, []byte{0x09, 0xf0}) // AUD, left out
	for _, nal := range [][]byte{sps, pps, idr, small} {
		au = h264.AppendAnnexB(au, nal)
	}
	var out collect
	var p H264
	if err := p.Packetize(au, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.payloads) != 6 {
		t.Fatalf("%d packets, want 6 (SPS, PPS, 3 FU-A, slice)", len(out.payloads))
	}
	var depacketizer codecs.H264Packet
	var got []byte
	for i, payload := range out.payloads {
		if out.markers[i] != (i == len(out.payloads)-1) {
			t.Errorf("packet %d: marker %v", i, out.markers[i])
		}
		if len(payload) > MTU {
			t.Errorf("packet %d: %d bytes, over the MTU", i, len(payload))
		}
		nal, err := depacketizer.Unmarshal(payload)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		got = append(got, nal...)
	}
	var want []byte
	for _, nal := range [][]byte{sps, pps, idr, small} {
		want = h264.AppendAnnexB(want, nal)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("depacketized access unit differs (%d bytes, want %d)", len(got), len(want))
	}
}

type discard struct{}

func (discard) SendRTP([]byte, bool) error { return nil }

func BenchmarkPacketize10kB(b *testing.B) {
	au := h264.AppendAnnexB(nil, nalOfSize(0x41, 10000, 7))
	var p H264
	b.ReportAllocs()
	for b.Loop() {
		p.Packetize(au, discard{})
	}
}
