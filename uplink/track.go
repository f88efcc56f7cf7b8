package uplink

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/internal/rtppack"
	"github.com/onair/onair/media"
)

// track packetizes the hub's samples onto a pion TrackLocalStaticRTP, which
// takes care of binding (payload type, SSRC). RTP timestamps come from each
// sample's capture time rather than from accumulated durations, so audio
// and video stay in sync and samples the sink dropped leave no drift.
//
// H.264 goes through rtppack into one reused buffer, so that sending a frame
// allocates nothing: pion copies what it keeps (the NACK buffer, SRTP).
type track struct {
	local     *webrtc.TrackLocalStaticRTP
	video     bool
	clockRate uint32
	seq       uint16
	tsBase    uint32
	ts        uint32 // of the sample being sent
	packet    rtp.Packet
	h264      rtppack.H264
}

func newTrack(capability webrtc.RTPCodecCapability, id string) (*track, error) {
	local, err := webrtc.NewTrackLocalStaticRTP(capability, id, "onair")
	if err != nil {
		return nil, fmt.Errorf("make %s track: %w", id, err)
	}
	t := &track{local: local, clockRate: capability.ClockRate, video: capability.MimeType == webrtc.MimeTypeH264}
	var r [6]byte
	_, _ = rand.Read(r[:]) // random start as RFC 3550 asks; crypto/rand does not fail on Linux
	t.seq = binary.BigEndian.Uint16(r[:2])
	t.tsBase = binary.BigEndian.Uint32(r[2:])
	return t, nil
}

// write sends one sample. Only the uplink's pump goroutine calls it.
func (t *track) write(s media.Sample) error {
	t.ts = t.tsBase + uint32(uint64(s.Capture/time.Microsecond)*uint64(t.clockRate)/1e6)
	if !t.video {
		return t.SendRTP(s.Data, true) // one Opus packet per RTP packet (RFC 7587)
	}
	return t.h264.Packetize(s.Data, t)
}

// SendRTP sends one payload with the current sample's timestamp
// (rtppack.Sender).
func (t *track) SendRTP(payload []byte, marker bool) error {
	t.packet.Header = rtp.Header{Version: 2, Marker: marker, SequenceNumber: t.seq, Timestamp: t.ts}
	t.packet.Payload = payload
	t.seq++
	if err := t.local.WriteRTP(&t.packet); err != nil {
		return fmt.Errorf("send %s: %w", t.local.ID(), err)
	}
	return nil
}
