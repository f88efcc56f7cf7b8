package whep

import (
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// registerInterceptors negotiates what pion's RegisterDefaultInterceptors
// does (the same answer: NACK and PLI feedback, the simulcast and TWCC
// header extensions, transport-cc feedback) but runs only what a send-only
// viewer connection needs: sender reports. Left out, per viewer:
//   - the NACK responder: sampleTrack answers NACKs from the payloads all
//     viewers share, where pion kept a copy of every packet per viewer;
//   - the NACK generator, receiver reports and the TWCC feedback generator:
//     they act on media we would receive, and we receive none, yet each ran
//     a goroutine (and most a ticker) per viewer;
//   - the stats interceptor: it cloned every outgoing header for GetStats,
//     which nothing here calls.
func registerInterceptors(m *webrtc.MediaEngine, ir *interceptor.Registry) error {
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	reports, err := report.NewSenderInterceptor()
	if err != nil {
		return err
	}
	ir.Add(mainStreamOnly{reports})
	return nil
}

// mainStreamOnly keeps an interceptor to a stream's own SSRC: packets
// written under another SSRC (RTX retransmissions) go past it. Sender
// reports thus count and time the media stream alone, as with pion's
// responder, which wrote retransmissions below the report interceptor.
type mainStreamOnly struct{ factory interceptor.Factory }

func (m mainStreamOnly) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := m.factory.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &mainStream{i}, nil
}

type mainStream struct{ interceptor.Interceptor }

func (m *mainStream) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	wrapped := m.Interceptor.BindLocalStream(info, writer)
	ssrc := info.SSRC
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC != ssrc {
			return writer.Write(h, payload, a)
		}
		return wrapped.Write(h, payload, a)
	})
}
