package whep

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/internal/rtppack"
	"github.com/onair/onair/media"
)

// historySize is how many of a viewer's latest video packets a NACK can
// bring back: about two seconds at 2.5 Mbit/s. The payloads themselves are
// the shared frames', so a viewer's history costs 24 bytes a packet.
const historySize = 512

// sampleTrack is a webrtc.TrackLocal for one viewer. Unlike pion's
// TrackLocalStaticSample, whose RTP timestamps advance by each sample's
// duration, it stamps packets from the sample's capture time, so audio and
// video stay in sync and a dropped run of samples leaves no drift.
//
// Video payloads come from the server's packetCache, cut once for every
// viewer; the track only writes its own header in front of them. It also
// answers the viewer's NACKs from those shared payloads (RTX when
// negotiated), in place of pion's NACK responder, which kept a copy of every
// packet for every viewer.
type sampleTrack struct {
	kind      webrtc.RTPCodecType
	mime      string
	clockRate uint32
	id        string
	streamID  string
	packets   *packetCache // video

	mu      sync.Mutex
	bound   bool
	ssrc    uint32
	pt      uint8
	rtxSSRC uint32 // 0: RTX not negotiated, lost packets go again as they were
	rtxPT   uint8
	writer  webrtc.TrackLocalWriter
	seq     uint16
	rtxSeq  uint16
	tsBase  uint32
	header  rtp.Header
	rtt     time.Duration // from the viewer's receiver reports
	sent    []sentPacket  // video: ring indexed by sequence number
	rtx     []byte        // an RTX payload being sent
	epoch   time.Time     // the origin of sentPacket.resent and lastKey
	lastKey time.Duration // since epoch: when the latest keyframe went out, 0 if none

	// Sender reports (RFC 3550 6.4.1), written by the track itself with
	// its samples, in place of pion's report interceptor, which took a lock
	// and the time for every packet and ran a goroutine and a ticker per
	// viewer.
	report     func([]rtcp.Packet) error // the connection's RTCP writer; nil: none
	captureNow func() time.Duration      // Options.CaptureClock; nil: from lag
	sentCount  uint32                    // packets sent on ssrc (retransmissions, RTX or not, not counted)
	sentOctets uint32                    // their payload bytes
	nextReport time.Duration             // since epoch; 0: not yet set
	// Without captureNow: lag is the least time from a sample's capture
	// to its sending, since epoch minus capture time (the capture clock is
	// another clock), of the samples since the last report; lagSeen: one
	// is known.
	lag     time.Duration
	lagSeen bool
}

// reportInterval is how often a viewer gets a sender report for each
// stream, as from pion's interceptor: the browser times audio against video
// with them, and echoes them in its receiver reports, whence the round trip.
// The first comes half of it after the first sample: a joining viewer first
// gets the samples since the latest keyframe in one burst.
const reportInterval = time.Second

// sentPacket is what one of a viewer's sequence numbers carried.
type sentPacket struct {
	f      *frame
	resent time.Duration // since the track's epoch (monotonic), 0 if never
	ts     uint32
	i      uint16
	seq    uint16
}

func newSampleTrack(kind webrtc.RTPCodecType, mime string, clockRate uint32, id, streamID string, packets *packetCache) *sampleTrack {
	t := &sampleTrack{kind: kind, mime: mime, clockRate: clockRate, id: id, streamID: streamID, packets: packets,
		epoch: time.Now()}
	var r [8]byte
	_, _ = rand.Read(r[:]) // random start as RFC 3550 asks; crypto/rand does not fail on Linux
	t.seq = binary.BigEndian.Uint16(r[:2])
	t.tsBase = binary.BigEndian.Uint32(r[2:])
	t.rtxSeq = binary.BigEndian.Uint16(r[6:])
	return t
}

// Bind picks the negotiated payload type of our codec, and its RTX.
func (t *sampleTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	for _, c := range codecs {
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		if t.kind == webrtc.RTPCodecTypeVideo && !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			continue
		}
		t.mu.Lock()
		t.bound, t.ssrc, t.pt, t.writer = true, uint32(ctx.SSRC()), uint8(c.PayloadType), ctx.WriteStream()
		t.rtxSSRC, t.rtxPT = 0, 0
		if t.kind == webrtc.RTPCodecTypeVideo {
			if pt, ok := rtxPayloadType(codecs, c.PayloadType); ok && ctx.SSRCRetransmission() != 0 {
				t.rtxSSRC, t.rtxPT = uint32(ctx.SSRCRetransmission()), pt
			}
			if t.sent == nil {
				t.sent = make([]sentPacket, historySize)
			}
		}
		t.mu.Unlock()
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// rtxPayloadType finds the negotiated RTX payload type for pt (apt=pt).
func rtxPayloadType(codecs []webrtc.RTPCodecParameters, pt webrtc.PayloadType) (uint8, bool) {
	apt := "apt=" + strconv.Itoa(int(pt))
	for _, c := range codecs {
		if !strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			continue
		}
		for _, p := range strings.Split(c.SDPFmtpLine, ";") {
			if strings.TrimSpace(p) == apt {
				return uint8(c.PayloadType), true
			}
		}
	}
	return 0, false
}

// Unbind stops writing and lets go of the history.
func (t *sampleTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.bound, t.writer = false, nil
	clear(t.sent)
	t.mu.Unlock()
	return nil
}

func (t *sampleTrack) ID() string                { return t.id }
func (t *sampleTrack) RID() string               { return "" }
func (t *sampleTrack) StreamID() string          { return t.streamID }
func (t *sampleTrack) Kind() webrtc.RTPCodecType { return t.kind }

var errNotBound = errors.New("track is not bound to a connection")

// writeSample sends one sample; it allocates nothing (the first viewer to
// send a video sample packetizes it for all) but, once a second, the
// sender report and what pion makes to send it.
func (t *sampleTrack) writeSample(s media.Sample) error {
	if t.kind != webrtc.RTPCodecTypeVideo {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.bound {
			return errNotBound
		}
		// One Opus packet per RTP packet (RFC 7587).
		ts := t.timestamp(s.Capture)
		if err := t.send(s.Data, true, ts); err != nil {
			return err
		}
		t.reportDue(s.Capture)
		return nil
	}
	f := t.packets.get(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return errNotBound
	}
	ts := t.timestamp(s.Capture)
	if s.Keyframe {
		t.lastKey = time.Since(t.epoch) + 1
	}
	last := f.len() - 1
	for i := range f.len() {
		t.sent[t.seq%historySize] = sentPacket{f: f, ts: ts, i: uint16(i), seq: t.seq}
		if err := t.send(f.payload(i), i == last && f.marker, ts); err != nil {
			return err
		}
	}
	t.reportDue(s.Capture)
	return nil
}

// reportDue sends a sender report when one is due, after a sample captured
// at capture went out; t.mu is held. The report gives the RTP time of the
// moment it is sent at from the capture clock, or without one as the
// least-delayed sample since the last report saw it: a sample that waited
// (the burst a viewer joins with, a writer that fell behind) does not
// shift it.
func (t *sampleTrack) reportDue(capture time.Duration) {
	if t.report == nil {
		return
	}
	now := time.Now()
	since := now.Sub(t.epoch)
	if lag := since - capture; t.captureNow == nil && (!t.lagSeen || lag < t.lag) {
		t.lag, t.lagSeen = lag, true
	}
	if t.nextReport == 0 {
		t.nextReport = since + reportInterval/2
	}
	if since < t.nextReport {
		return
	}
	t.nextReport = since + reportInterval
	var rtpTime uint32
	if t.captureNow != nil {
		rtpTime = t.timestamp(t.captureNow())
	} else {
		rtpTime = t.timestamp(since - t.lag)
		t.lagSeen = false
	}
	// A report that is not sent (the connection closing) is not sent again.
	_ = t.report([]rtcp.Packet{&rtcp.SenderReport{
		SSRC: t.ssrc, NTPTime: ntpTime(now), RTPTime: rtpTime, PacketCount: t.sentCount, OctetCount: t.sentOctets,
	}})
}

func (t *sampleTrack) timestamp(capture time.Duration) uint32 {
	return t.tsBase + uint32(uint64(capture/time.Microsecond)*uint64(t.clockRate)/1e6)
}

// send writes one packet with the next sequence number; t.mu is held.
func (t *sampleTrack) send(payload []byte, marker bool, ts uint32) error {
	t.header = rtp.Header{
		Version: 2, Marker: marker, PayloadType: t.pt,
		SequenceNumber: t.seq, Timestamp: ts, SSRC: t.ssrc,
	}
	t.seq++
	if _, err := t.writer.WriteRTP(&t.header, payload); err != nil {
		return err
	}
	t.sentCount++
	t.sentOctets += uint32(len(payload))
	return nil
}

// resend answers a NACK from the history: over RTX (RFC 4588) when the
// viewer negotiated it, else the packet as it was. A packet is not sent
// again within a round trip of its last retransmission, as pion's responder
// does: the NACK that asked first is still being answered.
func (t *sampleTrack) resend(nack *rtcp.TransportLayerNack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound || t.sent == nil || nack.MediaSSRC != t.ssrc {
		return
	}
	now := time.Since(t.epoch) + 1 // never 0: 0 means never resent
	wait := t.rtt + 5*time.Millisecond
	for _, pair := range nack.Nacks {
		stop := false
		pair.Range(func(seq uint16) bool {
			p := &t.sent[seq%historySize]
			if p.f == nil || p.seq != seq || (p.resent != 0 && now-p.resent < wait) {
				return true
			}
			p.resent = now
			if err := t.resendPacket(p); err != nil {
				stop = true
				return false
			}
			return true
		})
		if stop {
			return
		}
	}
}

// resendPacket writes one packet of the history again; t.mu is held.
func (t *sampleTrack) resendPacket(p *sentPacket) error {
	payload := p.f.payload(int(p.i))
	marker := int(p.i) == p.f.len()-1 && p.f.marker
	if t.rtxSSRC == 0 {
		t.header = rtp.Header{
			Version: 2, Marker: marker, PayloadType: t.pt,
			SequenceNumber: p.seq, Timestamp: p.ts, SSRC: t.ssrc,
		}
		_, err := t.writer.WriteRTP(&t.header, payload)
		return err
	}
	if t.rtx == nil {
		t.rtx = make([]byte, 0, 2+rtppack.MTU)
	}
	t.rtx = binary.BigEndian.AppendUint16(t.rtx[:0], p.seq) // the original sequence number
	t.rtx = append(t.rtx, payload...)
	t.header = rtp.Header{
		Version: 2, Marker: marker, PayloadType: t.rtxPT,
		SequenceNumber: t.rtxSeq, Timestamp: p.ts, SSRC: t.rtxSSRC,
	}
	t.rtxSeq++
	_, err := t.writer.WriteRTP(&t.header, t.rtx)
	return err
}

// keyframeCrossing is how long after a keyframe went out, beyond one round
// trip, a keyframe request from the viewer is taken to have crossed it.
const keyframeCrossing = 100 * time.Millisecond

// keyframeInFlight tells whether the viewer's keyframe request (PLI, FIR)
// was sent before the viewer could have seen the keyframe this track sent
// last: within a round trip (plus keyframeCrossing) of it. Viewers ask for
// a keyframe when their first packet arrives or the picture breaks; one
// that crossed a keyframe on its way would cost a second keyframe (bits on
// every viewer's link), and, as forced keyframes are spaced
// (video.keyframe_min_interval), make the next viewer to join wait for it.
func (t *sampleTrack) keyframeInFlight() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastKey != 0 && time.Since(t.epoch)+1-t.lastKey < t.rtt+keyframeCrossing
}

// maxRTT bounds the round trip used to hold back repeated retransmissions.
const maxRTT = time.Second

// updateRTT takes the round trip from a receiver report block about our
// stream (RFC 3550 6.4.1: now - LSR - DLSR, in 1/65536 s).
func (t *sampleTrack) updateRTT(reports []rtcp.ReceptionReport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range reports {
		if r.SSRC != t.ssrc || r.LastSenderReport == 0 {
			continue
		}
		// Both ends of the difference are on the wall clock (reportDue
		// stamps sender reports with it): a jump of it gives one wrong
		// value, which is bounded.
		rtt := ntpMiddle(time.Now()) - r.LastSenderReport - r.Delay
		if rtt < 1<<31 {
			t.rtt = min(time.Duration(rtt)*time.Second/(1<<16), maxRTT)
		}
	}
}

// ntpTime is the NTP time of now (32.32 fixed point seconds since 1900), as
// sender reports carry it.
func ntpTime(now time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(now.Unix()) + unixToNTP
	frac := uint64(now.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// ntpMiddle is the middle 32 bits of the NTP time (16.16 fixed point
// seconds), as receiver reports echo it.
func ntpMiddle(now time.Time) uint32 { return uint32(ntpTime(now) >> 16) }
