// Package rtppack cuts H.264 access units into RTP payloads (RFC 6184,
// packetization mode 1: single NAL unit packets and FU-A fragments) into one
// reused buffer, so that sending a frame allocates nothing. The viewers'
// tracks (whep) and the uplink share it.
package rtppack

import "github.com/onair/onair/media/h264"

// MTU is the largest RTP payload: under the path MTU of Wi-Fi, 4G modems,
// VPNs and PPPoE once RTP, SRTP, UDP and IP headers are added.
const MTU = 1200

// H.264 RTP payload values (RFC 6184).
const (
	fuA          = 28   // fragmentation unit type A
	fuStart      = 0x80 // FU header: first fragment
	fuEnd        = 0x40 // FU header: last fragment
	typeFiller   = 12   // filler data NAL unit
	nalTypeMask  = 0x1f
	nalNRIAndF   = 0xe0
	fuHeaderSize = 2
)

// Sender takes one RTP payload; marker is set on the last one of a frame.
// The payload is only valid during the call.
type Sender interface {
	SendRTP(payload []byte, marker bool) error
}

// H264 packetizes access units. The zero value is ready; it is used by one
// goroutine at a time.
type H264 struct {
	fragment [MTU]byte
}

// Packetize sends the NAL units of an Annex-B access unit: whole when they
// fit, else as FU-A fragments. Access unit delimiters and filler carry
// nothing a receiver needs and are left out (the last NAL unit always goes:
// it carries the marker).
func (p *H264) Packetize(au []byte, out Sender) error {
	nal, rest := h264.NextNAL(au)
	for nal != nil {
		next, after := h264.NextNAL(rest)
		last := next == nil
		if typ := h264.Type(nal); len(nal) > 0 && (last || (typ != h264.TypeAUD && typ != typeFiller)) {
			if err := p.sendNAL(nal, last, out); err != nil {
				return err
			}
		}
		nal, rest = next, after
	}
	return nil
}

func (p *H264) sendNAL(nal []byte, lastInFrame bool, out Sender) error {
	if len(nal) <= MTU {
		return out.SendRTP(nal, lastInFrame)
	}
	indicator := nal[0]&nalNRIAndF | fuA
	header := nal[0] & nalTypeMask
	body := nal[1:]
	for first := true; len(body) > 0; first = false {
		n := min(len(body), MTU-fuHeaderSize)
		fu := header
		if first {
			fu |= fuStart
		}
		end := n == len(body)
		if end {
			fu |= fuEnd
		}
		p.fragment[0], p.fragment[1] = indicator, fu
		copy(p.fragment[fuHeaderSize:], body[:n])
		if err := out.SendRTP(p.fragment[:fuHeaderSize+n], lastInFrame && end); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}
