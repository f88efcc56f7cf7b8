package uplink

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media"
)

// rtpMTU keeps packets under the path MTU of 4G modems, VPNs and PPPoE.
const rtpMTU = 1200

// track packetizes the hub's samples onto a pion TrackLocalStaticRTP, which
// takes care of binding (payload type, SSRC). RTP timestamps come from each
// sample's capture time rather than from accumulated durations, so audio
// and video stay in sync and samples the sink dropped leave no drift.
type track struct {
	local     *webrtc.TrackLocalStaticRTP
	payloader rtp.Payloader
	clockRate uint32
	seq       uint16
	tsBase    uint32
	packet    rtp.Packet
}

func newTrack(capability webrtc.RTPCodecCapability, id string) (*track, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(capability, id, "onair")
	if err != nil {
		return nil, fmt.Errorf("make %s track: %w", id, err)
	}
	t := &track{local: local, clockRate: capability.ClockRate}
	if capability.MimeType == webrtc.MimeTypeH264 {
		t.payloader = &codecs.H264Payloader{}
	} else {
		t.payloader = &codecs.OpusPayloader{}
	}
	var r [6]byte
	_, _ = rand.Read(r[:]) // random start as RFC 3550 asks; crypto/rand does not fail on Linux
	t.seq = binary.BigEndian.Uint16(r[:2])
	t.tsBase = binary.BigEndian.Uint32(r[2:])
	return t, nil
}

// write sends one sample. Only the uplink's pump goroutine calls it.
func (t *track) write(s media.Sample) error {
	payloads := t.payloader.Payload(rtpMTU, s.Data)
	ts := t.tsBase + uint32(uint64(s.Capture/time.Microsecond)*uint64(t.clockRate)/1e6)
	for i, payload := range payloads {
		t.packet.Header = rtp.Header{
			Version:        2,
			Marker:         i == len(payloads)-1,
			SequenceNumber: t.seq,
			Timestamp:      ts,
		}
		t.packet.Payload = payload
		t.seq++
		if err := t.local.WriteRTP(&t.packet); err != nil {
			return fmt.Errorf("send %s: %w", t.local.ID(), err)
		}
	}
	return nil
}
