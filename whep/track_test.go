package whep

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media"
)

// fakeContext binds a track the way an RTPSender does.
type fakeContext struct {
	codecs    []webrtc.RTPCodecParameters
	ssrc, rtx webrtc.SSRC
	writer    *packetLog
}

func (c *fakeContext) CodecParameters() []webrtc.RTPCodecParameters           { return c.codecs }
func (c *fakeContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *fakeContext) SSRC() webrtc.SSRC                                      { return c.ssrc }
func (c *fakeContext) SSRCRetransmission() webrtc.SSRC                        { return c.rtx }
func (c *fakeContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *fakeContext) WriteStream() webrtc.TrackLocalWriter                   { return c.writer }
func (c *fakeContext) ID() string                                             { return "test" }
func (c *fakeContext) RTCPReader() interceptor.RTCPReader                     { return nil }
func (c *fakeContext) withoutRTX() *fakeContext {
	d := *c
	d.codecs = d.codecs[:2]
	d.rtx = 0
	return &d
}
func (c *fakeContext) mustBind(t testing.TB, track *sampleTrack) webrtc.RTPCodecParameters {
	t.Helper()
	codec, err := track.Bind(c)
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

// packetLog keeps every packet written, or only counts them.
type packetLog struct {
	keep    bool
	packets []rtp.Packet
	n       int
}

func (l *packetLog) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	l.n++
	if l.keep {
		l.packets = append(l.packets, rtp.Packet{Header: h.Clone(), Payload: bytes.Clone(payload)})
	}
	return len(payload), nil
}

func (l *packetLog) Write(b []byte) (int, error) { return len(b), nil }

func h264Codec(pt webrtc.PayloadType, fmtp string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{PayloadType: pt, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}}
}

func newContext() *fakeContext {
	return &fakeContext{
		codecs: []webrtc.RTPCodecParameters{
			h264Codec(96, "packetization-mode=0;profile-level-id=42e01f"),
			h264Codec(102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
			{PayloadType: 97, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}},
			{PayloadType: 103, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}},
		},
		ssrc: 1111, rtx: 2222, writer: &packetLog{keep: true},
	}
}

// Two viewers send the same payloads, each under its own SSRC, payload type
// and sequence numbers, and the sample is cut into packets only once.
func TestViewersShareOnePacketization(t *testing.T) {
	var cache packetCache
	a, b := newContext(), newContext()
	b.ssrc, b.codecs[1].PayloadType, b.codecs[3].SDPFmtpLine = 3333, 120, "apt=120"
	ta := newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &cache)
	tb := newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &cache)
	if codec := a.mustBind(t, ta); codec.PayloadType != 102 {
		t.Fatalf("bound payload type %d, want 102 (packetization-mode=1)", codec.PayloadType)
	}
	b.mustBind(t, tb)
	sample := media.Sample{Kind: media.Video, Data: picture(true, 1), Capture: time.Second, Keyframe: true}
	if err := ta.writeSample(sample); err != nil {
		t.Fatal(err)
	}
	if err := tb.writeSample(sample); err != nil {
		t.Fatal(err)
	}
	pa, pb := a.writer.packets, b.writer.packets
	if len(pa) < 3 || len(pa) != len(pb) {
		t.Fatalf("viewers got %d and %d packets", len(pa), len(pb))
	}
	for i := range pa {
		if !bytes.Equal(pa[i].Payload, pb[i].Payload) || pa[i].Marker != pb[i].Marker {
			t.Fatalf("packet %d differs between viewers", i)
		}
		if pa[i].SSRC != 1111 || pb[i].SSRC != 3333 || pa[i].PayloadType != 102 || pb[i].PayloadType != 120 {
			t.Fatalf("packet %d: ssrc %d/%d pt %d/%d", i, pa[i].SSRC, pb[i].SSRC, pa[i].PayloadType, pb[i].PayloadType)
		}
		if i > 0 && (pa[i].SequenceNumber != pa[i-1].SequenceNumber+1 || pb[i].SequenceNumber != pb[i-1].SequenceNumber+1) {
			t.Fatalf("packet %d: sequence numbers not consecutive", i)
		}
		if pa[i].Marker != (i == len(pa)-1) {
			t.Fatalf("packet %d: marker %v", i, pa[i].Marker)
		}
	}
	if cache.recent[1].f != nil || cache.recent[0].f == nil {
		t.Fatal("the sample was packetized more than once")
	}
	// A different sample with the same capture time is another frame.
	other := sample
	other.Data = picture(true, 2)
	if cache.get(other) == cache.get(sample) {
		t.Fatal("two samples shared one frame")
	}
}

// NACKed packets come back over RTX (original sequence number in front,
// RTX SSRC and payload type), not twice within a round trip, and as they
// were when the viewer has no RTX.
func TestNACKAnsweredFromSharedHistory(t *testing.T) {
	for _, rtx := range []bool{true, false} {
		ctx := newContext()
		if !rtx {
			ctx = ctx.withoutRTX()
		}
		track := newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &packetCache{})
		ctx.mustBind(t, track)
		for n := range 3 {
			s := media.Sample{Kind: media.Video, Data: picture(n == 0, byte(n)), Capture: time.Duration(n) * time.Second / 30}
			if err := track.writeSample(s); err != nil {
				t.Fatal(err)
			}
		}
		sent := append([]rtp.Packet(nil), ctx.writer.packets...)
		ctx.writer.packets = nil
		lost := []uint16{sent[2].SequenceNumber, sent[3].SequenceNumber, sent[len(sent)-1].SequenceNumber}
		nack := &rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers(lost)}
		// A round trip of half a second: the second NACK comes within it
		// however slowly this test runs (-race on a loaded machine).
		track.rtt = 500 * time.Millisecond
		track.resend(nack)
		track.resend(nack) // within the round trip: ignored
		got := ctx.writer.packets
		if len(got) != len(lost) {
			t.Fatalf("rtx=%v: %d packets resent for %d NACKed", rtx, len(got), len(lost))
		}
		for i, p := range got {
			orig := sent[map[int]int{0: 2, 1: 3, 2: len(sent) - 1}[i]]
			if p.Timestamp != orig.Timestamp || p.Marker != orig.Marker {
				t.Fatalf("rtx=%v: resent packet %d has ts %d marker %v, want %d %v", rtx, i, p.Timestamp, p.Marker, orig.Timestamp, orig.Marker)
			}
			if !rtx {
				if p.SSRC != 1111 || p.PayloadType != 102 || p.SequenceNumber != orig.SequenceNumber || !bytes.Equal(p.Payload, orig.Payload) {
					t.Fatalf("plain resend %d differs from the original", i)
				}
				continue
			}
			if p.SSRC != 2222 || p.PayloadType != 103 {
				t.Fatalf("RTX packet %d: ssrc %d pt %d", i, p.SSRC, p.PayloadType)
			}
			if i > 0 && p.SequenceNumber != got[i-1].SequenceNumber+1 {
				t.Fatal("RTX sequence numbers not consecutive")
			}
			if binary.BigEndian.Uint16(p.Payload) != orig.SequenceNumber || !bytes.Equal(p.Payload[2:], orig.Payload) {
				t.Fatalf("RTX packet %d does not carry the original", i)
			}
		}
		// Once the round trip has passed, a NACK is answered again; a
		// NACK for another SSRC or for a packet out of the history is not.
		track.epoch = track.epoch.Add(-2 * time.Second) // two seconds have passed
		ctx.writer.packets = nil
		track.resend(nack)
		track.resend(&rtcp.TransportLayerNack{MediaSSRC: 42, Nacks: nack.Nacks})
		track.resend(&rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{sent[0].SequenceNumber - 1})})
		if len(ctx.writer.packets) != len(lost) {
			t.Fatalf("rtx=%v: %d packets resent after the round trip, want %d", rtx, len(ctx.writer.packets), len(lost))
		}
	}
}

func TestRTTFromReceiverReport(t *testing.T) {
	track := newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &packetCache{})
	newContext().mustBind(t, track)
	// A sender report 300 ms ago, held 100 ms by the viewer: 200 ms round trip.
	lsr := ntpMiddle(time.Now().Add(-300 * time.Millisecond))
	track.updateRTT([]rtcp.ReceptionReport{{SSRC: 1111, LastSenderReport: lsr, Delay: 1 << 16 / 10}})
	if rtt := track.rtt; rtt < 190*time.Millisecond || rtt > 260*time.Millisecond {
		t.Fatalf("rtt %v, want about 200ms", rtt)
	}
}

// BenchmarkViewerWrite is one 720p picture (10 kB, nine packets) sent by N
// viewers through their tracks to a writer that only counts: the part of
// the fan-out that is ours, without pion's SRTP and the network.
func BenchmarkViewerWrite(b *testing.B) {
	for _, viewers := range []int{1, 50} {
		b.Run(map[int]string{1: "viewers=1", 50: "viewers=50"}[viewers], func(b *testing.B) {
			var cache packetCache
			tracks := make([]*sampleTrack, viewers)
			writer := &packetLog{}
			for i := range tracks {
				ctx := newContext()
				ctx.writer = writer
				tracks[i] = newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &cache)
				ctx.mustBind(b, tracks[i])
			}
			data := picture(false, 1)[:10000]
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				s := media.Sample{Kind: media.Video, Data: data, Capture: time.Duration(n) * time.Second / 30}
				for _, t := range tracks {
					if err := t.writeSample(s); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(viewers), "ns/sample/viewer")
		})
	}
}

// A keyframe request sent before the viewer could have seen the keyframe
// just sent to it (within a round trip plus keyframeCrossing) is taken as
// answered; later ones are not.
func TestKeyframeRequestCrossingKeyframe(t *testing.T) {
	track := newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &packetCache{})
	newContext().mustBind(t, track)
	if track.keyframeInFlight() {
		t.Fatal("a keyframe in flight before any was sent")
	}
	delta := media.Sample{Kind: media.Video, Data: picture(false, 1), Capture: time.Second}
	if err := track.writeSample(delta); err != nil {
		t.Fatal(err)
	}
	if track.keyframeInFlight() {
		t.Fatal("a picture that is not a keyframe counted as one")
	}
	key := media.Sample{Kind: media.Video, Data: picture(true, 2), Capture: time.Second + time.Second/30, Keyframe: true}
	if err := track.writeSample(key); err != nil {
		t.Fatal(err)
	}
	if !track.keyframeInFlight() {
		t.Fatal("a request right after the keyframe went out was not taken as crossing it")
	}
	track.epoch = track.epoch.Add(-keyframeCrossing - 10*time.Millisecond) // time passes
	if track.keyframeInFlight() {
		t.Fatal("a request after the keyframe could have arrived was ignored")
	}
	track.rtt = 300 * time.Millisecond // a far viewer: its request may still have crossed it
	if !track.keyframeInFlight() {
		t.Fatal("the round trip was not allowed for")
	}
}

// A sender report gives the RTP time of the moment it is sent as the
// least-delayed sample since the last report saw it: samples that waited
// (a joining viewer's burst, a writer behind) do not shift it.
func TestSenderReportIgnoresDelayedSamples(t *testing.T) {
	ctx := newContext()
	track := newSampleTrack(webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 48000, "audio", "onair", nil)
	ctx.codecs = []webrtc.RTPCodecParameters{{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}}}
	ctx.mustBind(t, track)
	var reports []*rtcp.SenderReport
	track.report = func(pkts []rtcp.Packet) error {
		for _, p := range pkts {
			reports = append(reports, p.(*rtcp.SenderReport))
		}
		return nil
	}
	// Capture time 0 is 10 s after the track's epoch. Instead of waiting,
	// the test moves the epoch back: the track sees time pass as it would.
	const origin = 10 * time.Second
	track.epoch = time.Now().Add(-origin)
	sample := func(capture, late time.Duration) {
		t.Helper()
		track.epoch = time.Now().Add(-origin - capture - late)
		if err := track.writeSample(media.Sample{Kind: media.Audio, Data: []byte{0xfc, 1, 2}, Capture: capture}); err != nil {
			t.Fatal(err)
		}
	}
	sample(0, 300*time.Millisecond)                   // from the join burst: 300 ms late
	sample(20*time.Millisecond, 280*time.Millisecond) // still the burst
	sample(320*time.Millisecond, 2*time.Millisecond)  // live
	track.nextReport = 1                              // due now
	sample(340*time.Millisecond, 400*time.Millisecond)
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	r := reports[0]
	// The report was sent 400 ms after the last sample's capture time, and
	// the live sample says the pipeline takes 2 ms: its RTP time is that of
	// capture time 340 + 400 - 2 = 738 ms.
	want := track.timestamp(738 * time.Millisecond)
	if diff := int64(int32(r.RTPTime - want)); diff < -48*5 || diff > 48*5 { // 5 ms at 48 kHz
		t.Errorf("report RTP time %d, want %d (%+.1f ms off)", r.RTPTime, want, float64(diff)/48)
	}
	if r.PacketCount != 4 || r.OctetCount != 12 {
		t.Errorf("report counts %d packets, %d bytes; want 4, 12", r.PacketCount, r.OctetCount)
	}
}
