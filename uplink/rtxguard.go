package uplink

import (
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// Retransmissions get at most rtxShare of the video bitrate in force, with
// a burst of rtxBurst of it (and never less than rtxMinBurst bytes, so one
// full packet always fits), and each packet is sent again at most
// rtxMaxPerPacket times.
const (
	rtxShare        = 0.25
	rtxBurst        = 250 * time.Millisecond
	rtxMinBurst     = 3000
	rtxMaxPerPacket = 3
	// rtxHistory is how many packets back the counts reach: the
	// responder's own history (pion's default, 1024).
	rtxHistory = 1024
)

// rtxGuard sits between pion's NACK responder and the network and drops
// the retransmissions beyond a budget: a share of the video bitrate the
// uplink chose, and at most rtxMaxPerPacket copies of any one packet.
// Without it, a link that suddenly caps the rate turns into a
// retransmission storm: the queue overflows, hundreds of packets go missing
// at once, the receiver asks for each of them again every 100 ms while the
// queue delays the answers, and the responder (which paces nothing: the
// congestion controller runs without a pacer, and its RTT estimate, an
// average since the start, barely moves when the queue grows) answers every
// request. The retransmissions then keep the link congested long after the
// encoder has come down, and the picture stays frozen for seconds (seen on
// a veth capped at 1 Mbit/s with tc tbf: 15 to 22 s). pion's own limit for
// this needs the congestion controller to read RTCP before the responder,
// which would route retransmissions through the controller's pacer, which
// drops them. With the budget the receiver soon gives up on the oldest
// losses and asks for a keyframe, which the encoder sends at the lower
// bitrate. The cap per packet keeps receivers that ask again for packets
// already repaired (pion's NACK generator does not see repairs that come
// over RTX, and asks every 100 ms while they are in its window) from using
// up the budget that real repairs need.
type rtxGuard struct {
	interceptor.NoOp
	// videoKbps is the video bitrate in force (the controller's choice).
	videoKbps func() int
	now       func() time.Time

	mu      sync.Mutex
	tokens  float64 // bytes
	updated time.Time
	resent  [rtxHistory]struct {
		seq   uint16
		count uint8
	}
}

// rtxGuardFactory makes the guard of one peer connection.
type rtxGuardFactory struct {
	videoKbps func() int
	now       func() time.Time
}

// NewInterceptor implements interceptor.Factory.
func (f rtxGuardFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	now := f.now
	if now == nil {
		now = time.Now
	}
	return &rtxGuard{videoKbps: f.videoKbps, now: now, tokens: rtxMinBurst}, nil
}

// BindLocalStream drops, on a stream with retransmissions, the
// retransmitted packets the budget has no room for; media packets pass.
func (g *rtxGuard) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	rtxSSRC := info.SSRCRetransmission
	if rtxSSRC == 0 {
		return writer
	}
	return interceptor.RTPWriterFunc(func(header *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		// An RTX payload starts with the original sequence number (RFC 4588).
		if header.SSRC == rtxSSRC && len(payload) >= 2 &&
			!g.allow(uint16(payload[0])<<8|uint16(payload[1]), header.MarshalSize()+len(payload)) {
			// As if sent: the receiver asks again or gives up.
			return header.MarshalSize() + len(payload), nil
		}
		return writer.Write(header, payload, a)
	})
}

// allow takes size bytes from the budget for another copy of packet seq,
// if they are there and the packet has not been sent again too often.
func (g *rtxGuard) allow(seq uint16, size int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	entry := &g.resent[seq%rtxHistory]
	if entry.seq != seq {
		entry.seq, entry.count = seq, 0
	}
	if entry.count >= rtxMaxPerPacket {
		return false
	}
	now := g.now()
	rate := float64(max(g.videoKbps(), 0)) * 1000 / 8 * rtxShare // bytes per second
	burst := max(rate*rtxBurst.Seconds(), rtxMinBurst)
	if !g.updated.IsZero() {
		g.tokens = min(burst, g.tokens+rate*now.Sub(g.updated).Seconds())
	}
	g.updated = now
	if g.tokens < float64(size) {
		return false
	}
	g.tokens -= float64(size)
	entry.count++
	return true
}
