package whep

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/internal/rtppack"
	"github.com/onair/onair/media"
)

// sampleTrack is a webrtc.TrackLocal for one viewer that packetizes samples
// itself. Unlike pion's TrackLocalStaticSample, whose RTP timestamps advance
// by each sample's duration, it stamps packets from the sample's capture
// time, so audio and video stay in sync and a dropped run of samples leaves
// no drift.
type sampleTrack struct {
	kind      webrtc.RTPCodecType
	mime      string
	clockRate uint32
	id        string
	streamID  string
	h264      rtppack.H264

	mu     sync.Mutex
	bound  bool
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter
	seq    uint16
	tsBase uint32
	ts     uint32 // of the sample being sent
	header rtp.Header
}

func newSampleTrack(kind webrtc.RTPCodecType, mime string, clockRate uint32, id, streamID string) *sampleTrack {
	t := &sampleTrack{kind: kind, mime: mime, clockRate: clockRate, id: id, streamID: streamID}
	var r [6]byte
	_, _ = rand.Read(r[:]) // random start as RFC 3550 asks; crypto/rand does not fail on Linux
	t.seq = binary.BigEndian.Uint16(r[:2])
	t.tsBase = binary.BigEndian.Uint32(r[2:])
	return t
}

// Bind picks the negotiated payload type of our codec.
func (t *sampleTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, t.mime) {
			continue
		}
		if t.kind == webrtc.RTPCodecTypeVideo && !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			continue
		}
		t.mu.Lock()
		t.bound, t.ssrc, t.pt, t.writer = true, uint32(ctx.SSRC()), uint8(c.PayloadType), ctx.WriteStream()
		t.mu.Unlock()
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

// Unbind stops writing.
func (t *sampleTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.bound, t.writer = false, nil
	t.mu.Unlock()
	return nil
}

func (t *sampleTrack) ID() string                { return t.id }
func (t *sampleTrack) RID() string               { return "" }
func (t *sampleTrack) StreamID() string          { return t.streamID }
func (t *sampleTrack) Kind() webrtc.RTPCodecType { return t.kind }

var errNotBound = errors.New("track is not bound to a connection")

// writeSample packetizes and sends one sample; it allocates nothing.
func (t *sampleTrack) writeSample(s media.Sample) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.bound {
		return errNotBound
	}
	t.ts = t.tsBase + uint32(uint64(s.Capture/time.Microsecond)*uint64(t.clockRate)/1e6)
	if t.kind != webrtc.RTPCodecTypeVideo {
		return t.SendRTP(s.Data, true) // one Opus packet per RTP packet (RFC 7587)
	}
	return t.h264.Packetize(s.Data, t)
}

// SendRTP writes one payload with the current sample's timestamp
// (rtppack.Sender); t.mu is held by writeSample.
func (t *sampleTrack) SendRTP(payload []byte, marker bool) error {
	t.header = rtp.Header{
		Version: 2, Marker: marker, PayloadType: t.pt,
		SequenceNumber: t.seq, Timestamp: t.ts, SSRC: t.ssrc,
	}
	t.seq++
	_, err := t.writer.WriteRTP(&t.header, payload)
	return err
}
