package uplink

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/internal/rtppack"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// capture is a TrackLocalWriter that keeps copies of what is written.
type capture struct{ packets []rtp.Packet }

func (c *capture) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	c.packets = append(c.packets, rtp.Packet{Header: *h, Payload: bytes.Clone(payload)})
	return len(payload), nil
}

func (c *capture) Write(b []byte) (int, error) { return len(b), nil }

type bindContext struct{ w webrtc.TrackLocalWriter }

func (b bindContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: videoCodec, PayloadType: 102}}
}
func (bindContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (bindContext) SSRC() webrtc.SSRC                                      { return 1234 }
func (bindContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (bindContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (b bindContext) WriteStream() webrtc.TrackLocalWriter                 { return b.w }
func (bindContext) ID() string                                             { return "test" }
func (bindContext) RTCPReader() interceptor.RTCPReader                     { return nil }

// The packetizer's output goes back together with pion's depacketizer into
// the same access unit, minus the access unit delimiter, with the marker
// on the last packet only and one timestamp from the capture time.
func TestTrackPacketizesH264(t *testing.T) {
	tr, err := newTrack(videoCodec, "video")
	if err != nil {
		t.Fatal(err)
	}
	out := &capture{}
	if _, err := tr.local.Bind(bindContext{w: out}); err != nil {
		t.Fatal(err)
	}
	var au []byte
	au = h264.AppendAnnexB(au, []byte{0x09, 0xf0}) // AUD, dropped
	sps, pps := []byte{0x67, 0x42, 0xc0, 0x1f}, []byte{0x68, 0xce, 0x3c, 0x80}
	idr := nalOfSize(0x65, 3000, 9) // three FU-A fragments
	small := nalOfSize(0x41, 500, 3)
	for _, nal := range [][]byte{sps, pps, idr, small} {
		au = h264.AppendAnnexB(au, nal)
	}
	if err := tr.write(media.Sample{Kind: media.Video, Data: au, Capture: time.Second, Keyframe: true}); err != nil {
		t.Fatal(err)
	}
	if got := len(out.packets); got != 6 {
		t.Fatalf("%d packets, want 6 (SPS, PPS, 3 FU-A, slice)", got)
	}
	var depacketizer codecs.H264Packet
	var got []byte
	for i, p := range out.packets {
		if p.Marker != (i == len(out.packets)-1) {
			t.Errorf("packet %d: marker %v", i, p.Marker)
		}
		if p.Timestamp != tr.tsBase+90000 || p.SequenceNumber != out.packets[0].SequenceNumber+uint16(i) {
			t.Errorf("packet %d: timestamp %d, sequence %d", i, p.Timestamp-tr.tsBase, p.SequenceNumber)
		}
		if len(p.Payload) > rtppack.MTU {
			t.Errorf("packet %d: %d bytes over the MTU", i, len(p.Payload))
		}
		nal, err := depacketizer.Unmarshal(p.Payload)
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
