package whep

import (
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// registerFeedback negotiates what pion's RegisterDefaultInterceptors does
// (the same answer: NACK and PLI feedback, the simulcast and TWCC header
// extensions, transport-cc feedback), while the connection runs none of
// pion's interceptors (the API gets an empty registry: without one, pion
// would add its defaults). What they did for a send-only viewer is done
// once for all viewers, or not at all:
//   - the NACK responder: sampleTrack answers NACKs from the payloads all
//     viewers share, where pion kept a copy of every packet per viewer;
//   - sender reports: sampleTrack writes them with its samples, where pion's
//     interceptor took a lock and the time for every packet and ran a
//     goroutine and a ticker per viewer;
//   - the NACK generator, receiver reports and the TWCC feedback generator:
//     they act on media we would receive, and we receive none, yet each ran
//     a goroutine (and most a ticker) per viewer;
//   - the stats interceptor: it cloned every outgoing header for GetStats,
//     which nothing here calls.
func registerFeedback(m *webrtc.MediaEngine) error {
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
	return nil
}
