package uplink

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// rtpMTU keeps packets under the path MTU of 4G modems, VPNs and PPPoE.
const rtpMTU = 1200

// H.264 RTP payload (RFC 6184) values used by the packetizer.
const (
	fuA          = 28   // fragmentation unit type A
	fuStart      = 0x80 // FU header: first fragment
	fuEnd        = 0x40 // FU header: last fragment
	typeFiller   = 12   // filler data NAL unit
	nalTypeMask  = 0x1f
	nalNRIAndF   = 0xe0
	fuHeaderSize = 2
)

// track packetizes the hub's samples onto a pion TrackLocalStaticRTP, which
// takes care of binding (payload type, SSRC). RTP timestamps come from each
// sample's capture time rather than from accumulated durations, so audio
// and video stay in sync and samples the sink dropped leave no drift.
//
// It packetizes H.264 itself (single NAL unit packets and FU-A, RFC 6184
// packetization mode 1) into one reused buffer, so that sending a frame
// allocates nothing: pion copies what it keeps (the NACK buffer, SRTP).
type track struct {
	local     *webrtc.TrackLocalStaticRTP
	video     bool
	clockRate uint32
	seq       uint16
	tsBase    uint32
	packet    rtp.Packet
	fragment  [rtpMTU]byte
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
	ts := t.tsBase + uint32(uint64(s.Capture/time.Microsecond)*uint64(t.clockRate)/1e6)
	if !t.video {
		return t.send(s.Data, ts, true) // one Opus packet per RTP packet (RFC 7587)
	}
	nal, rest := h264.NextNAL(s.Data)
	for nal != nil {
		next, after := h264.NextNAL(rest)
		last := next == nil
		// Access unit delimiters and filler carry nothing a receiver
		// needs; the last NAL unit always goes, it carries the marker.
		if typ := h264.Type(nal); len(nal) > 0 && (last || (typ != h264.TypeAUD && typ != typeFiller)) {
			if err := t.sendNAL(nal, ts, last); err != nil {
				return err
			}
		}
		nal, rest = next, after
	}
	return nil
}

// sendNAL sends a NAL unit whole when it fits, else in FU-A fragments.
func (t *track) sendNAL(nal []byte, ts uint32, lastInFrame bool) error {
	if len(nal) <= rtpMTU {
		return t.send(nal, ts, lastInFrame)
	}
	indicator := nal[0]&nalNRIAndF | fuA
	header := nal[0] & nalTypeMask
	body := nal[1:]
	for first := true; len(body) > 0; first = false {
		n := min(len(body), rtpMTU-fuHeaderSize)
		fu := header
		if first {
			fu |= fuStart
		}
		end := n == len(body)
		if end {
			fu |= fuEnd
		}
		t.fragment[0], t.fragment[1] = indicator, fu
		copy(t.fragment[fuHeaderSize:], body[:n])
		if err := t.send(t.fragment[:fuHeaderSize+n], ts, lastInFrame && end); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

func (t *track) send(payload []byte, ts uint32, marker bool) error {
	t.packet.Header = rtp.Header{Version: 2, Marker: marker, SequenceNumber: t.seq, Timestamp: ts}
	t.packet.Payload = payload
	t.seq++
	if err := t.local.WriteRTP(&t.packet); err != nil {
		return fmt.Errorf("send %s: %w", t.local.ID(), err)
	}
	return nil
}
