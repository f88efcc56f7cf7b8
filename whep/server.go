// Package whep serves viewers over WebRTC-HTTP Egress (WHEP): each viewer's
// offer gets a peer connection that sends the hub's H.264 and Opus. The HTTP
// routes themselves live in package web; this package speaks WebRTC.
package whep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/broadcast"
)

// Errors that the HTTP layer maps to status codes.
var (
	// ErrBadOffer: the offer is not SDP we can answer (400).
	ErrBadOffer = errors.New("bad offer")
	// ErrFull: max_viewers are connected (503).
	ErrFull = errors.New("the box serves its maximum number of viewers")
	// ErrNotFound: no session with that id (404).
	ErrNotFound = errors.New("no such viewer session")
	// ErrClosed: the server is shutting down (503).
	ErrClosed = errors.New("the server is shutting down")
)

// Options configure the server.
type Options struct {
	ICEServers []webrtc.ICEServer
	// UDPPort carries every viewer's media on one port; 0 gives each viewer
	// random ports.
	UDPPort int
	// AdditionalHosts are extra addresses announced as host candidates (a
	// public IP or name behind a port forward).
	AdditionalHosts []string
	MaxViewers      int
	Log             *slog.Logger
	// CaptureClock tells the time now on the clock the samples' Capture
	// times are on (the pipeline's device.Clock). Sender reports then give
	// the RTP time of the moment they are sent from it, the same for audio
	// and video, so that a browser lines the two up as they were captured.
	// Nil: from the least-delayed sample of each stream, which leaves the
	// difference between the two streams' encoding delays as an offset.
	CaptureClock func() time.Duration
}

// Server is the WHEP endpoint's WebRTC side.
type Server struct {
	hub  *broadcast.Hub
	opt  Options
	api  *webrtc.API
	conn net.PacketConn // the shared UDP port, nil with random ports
	mux  ice.UDPMux
	// packets cuts each video sample into RTP payloads once for all viewers
	packets packetCache

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
	// peak viewers of the broadcast named peakOf
	peak   int
	peakOf string
	wg     sync.WaitGroup
	// fanouts write samples to viewers, one goroutine each, until stop
	fanouts []*fanout
	stop    context.CancelFunc
}

type session struct {
	id      string
	viewer  string
	preview bool
	access  string
	pc      *webrtc.PeerConnection
	video   *sampleTrack
	audio   *sampleTrack
	// stopMedia disconnects the viewer from the hub (set once media flows)
	stopMedia func()
	started   sync.Once
	closed    sync.Once
}

// New sets up the WebRTC API: codecs, feedback (NACK/RTX, PLI/FIR, reports,
// TWCC), the shared UDP port and announced addresses.
func New(hub *broadcast.Hub, opt Options) (*Server, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxViewers <= 0 {
		opt.MaxViewers = 50
	}
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("whep: register codecs: %w", err)
	}
	if err := registerFeedback(m); err != nil {
		return nil, fmt.Errorf("whep: register feedback: %w", err)
	}
	ir := &interceptor.Registry{} // empty: see registerFeedback
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	s := &Server{hub: hub, opt: opt, sessions: map[string]*session{}}
	if opt.UDPPort > 0 {
		conn, err := net.ListenPacket("udp", fmt.Sprintf(":%d", opt.UDPPort))
		if err != nil {
			return nil, fmt.Errorf("whep: listen on UDP port %d (webrtc.udp_port): %w", opt.UDPPort, err)
		}
		s.conn = conn
		if udp, ok := conn.(*net.UDPConn); ok {
			if batched, err := newBatchConn(udp, opt.Log); err == nil {
				s.conn = batched
			} else {
				opt.Log.Debug("whep: UDP sends not batched", "err", err)
			}
		}
		s.mux = webrtc.NewICEUDPMux(nil, s.conn)
		se.SetICEUDPMux(s.mux)
	}
	if hosts := resolveHosts(opt.AdditionalHosts, opt.Log); len(hosts) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: hosts, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		})
		if err != nil {
			s.closeConn()
			return nil, fmt.Errorf("whep: webrtc.additional_hosts: %w", err)
		}
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	var r rounds
	if batched, ok := s.conn.(*batchConn); ok {
		r = batched
	}
	for range runtime.GOMAXPROCS(0) {
		f := newFanout(opt.Log, r)
		s.fanouts = append(s.fanouts, f)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); f.run(ctx) }()
	}
	return s, nil
}

// UDPAddr is the shared media port's address, nil with random ports.
func (s *Server) UDPAddr() net.Addr {
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

func resolveHosts(hosts []string, log *slog.Logger) []string {
	var out []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			out = append(out, ip.String())
			continue
		}
		ips, err := net.LookupIP(h)
		if err != nil || len(ips) == 0 {
			log.Warn("webrtc.additional_hosts: cannot resolve, not announced", "host", h, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, ip.String())
		}
	}
	return out
}

func registerCodecs(m *webrtc.MediaEngine) error {
	feedback := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
		{Type: "transport-cc"},
	}
	codecs := []struct {
		params webrtc.RTPCodecParameters
		kind   webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: feedback}, PayloadType: 102}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}, PayloadType: 103}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
			RTCPFeedback: feedback}, PayloadType: 104}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=104"}, PayloadType: 105}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.params, c.kind); err != nil {
			return err
		}
	}
	return nil
}

// Answer is the result of a successful offer.
type Answer struct {
	ID  string
	SDP string
}

// OfferOptions describe who is offering.
type OfferOptions struct {
	// Viewer is the viewer's id, for logs.
	Viewer string
	// Preview sessions (the admin console's) receive media while idle too;
	// the caller has checked the admin token.
	Preview bool
	// Access is what let the viewer in (the invite token of a private
	// broadcast, empty for a public one), kept so that DropUnless can check
	// it again when the broadcast turns private or an invite is revoked.
	Access string
}

// Offer answers a viewer's SDP offer. The connection starts receiving media
// when the box is live (a preview at once); until then it is connected and
// waits.
func (s *Server) Offer(ctx context.Context, offer string, opt OfferOptions) (Answer, error) {
	if err := checkOffer(offer); err != nil {
		return Answer{}, err
	}
	id, err := newID()
	if err != nil {
		return Answer{}, fmt.Errorf("whep: session id: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Answer{}, ErrClosed
	}
	if len(s.sessions) >= s.opt.MaxViewers {
		s.mu.Unlock()
		return Answer{}, fmt.Errorf("%w (%d)", ErrFull, s.opt.MaxViewers)
	}
	sess := &session{id: id, viewer: opt.Viewer, preview: opt.Preview, access: opt.Access}
	s.sessions[id] = sess // holds the place while we negotiate
	s.updatePeakLocked()
	s.mu.Unlock()

	answer, err := s.negotiate(ctx, sess, offer)
	if err != nil {
		s.remove(sess)
		return Answer{}, err
	}
	return Answer{ID: id, SDP: answer}, nil
}

// checkOffer refuses what is not an SDP offer with media we can send to,
// before any WebRTC state is made.
func checkOffer(offer string) error {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offer); err != nil {
		return fmt.Errorf("%w: not valid SDP: %v", ErrBadOffer, err)
	}
	hasH264 := false
	for _, md := range parsed.MediaDescriptions {
		if md.MediaName.Media != "video" {
			continue
		}
		for _, a := range md.Attributes {
			if a.Key == "rtpmap" && strings.Contains(strings.ToLower(a.Value), "h264/90000") {
				hasH264 = true
			}
		}
	}
	if !hasH264 {
		return fmt.Errorf("%w: the offer has no H.264 video to receive", ErrBadOffer)
	}
	return nil
}

func (s *Server) negotiate(ctx context.Context, sess *session, offer string) (string, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.opt.ICEServers})
	if err != nil {
		return "", fmt.Errorf("whep: new peer connection: %w", err)
	}
	sess.video = newSampleTrack(webrtc.RTPCodecTypeVideo, webrtc.MimeTypeH264, 90000, "video", "onair", &s.packets)
	sess.audio = newSampleTrack(webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 48000, "audio", "onair", nil)
	tracks := []*sampleTrack{sess.video, sess.audio}
	var senders []*webrtc.RTPSender
	for _, track := range tracks {
		sender, err := pc.AddTrack(track)
		if err != nil {
			pc.Close()
			return "", fmt.Errorf("whep: add %s track: %w", track.kind, err)
		}
		track.report, track.captureNow = pc.WriteRTCP, s.opt.CaptureClock
		senders = append(senders, sender)
	}
	// The session gets its connection only while it is still the server's:
	// a Close or remove that came first found no connection to close and
	// would leave this one, and its RTCP readers, running.
	s.mu.Lock()
	if s.closed || s.sessions[sess.id] != sess {
		s.mu.Unlock()
		pc.Close()
		return "", ErrClosed
	}
	sess.pc = pc
	s.wg.Add(len(senders))
	s.mu.Unlock()
	for i, sender := range senders {
		go s.readRTCP(sender, tracks[i])
	}
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			sess.started.Do(func() { s.startMedia(sess) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// Not from pion's callback goroutine: pc.Close waits for it.
			s.mu.Lock()
			if !s.closed {
				s.wg.Add(1)
				go func() { defer s.wg.Done(); s.remove(sess) }()
			}
			s.mu.Unlock()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C: // answer with what we have: host candidates come first
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// startMedia connects the viewer to the hub once ICE and DTLS are up, so the
// keyframe asked for on joining is not lost to a handshake still running.
func (s *Server) startMedia(sess *session) {
	f := s.fanouts[0] // the one with the fewest viewers
	for _, g := range s.fanouts[1:] {
		if g.size() < f.size() {
			f = g
		}
	}
	name := "whep"
	if sess.preview {
		name = "preview"
	}
	v := &viewerSink{sess: sess, sink: s.hub.AddSink(broadcast.SinkOptions{Name: name, Preview: sess.preview, Signal: f.signal})}
	s.mu.Lock()
	if s.closed || s.sessions[sess.id] != sess {
		s.mu.Unlock()
		v.sink.Close()
		return
	}
	// remove calls it before it closes the connection: once a viewer is
	// removed (left, dropped, revoked), no sample is taken for it any more
	// (one already taken may still be in its writer's hands).
	sess.stopMedia = func() {
		f.remove(v)
		v.sink.Close()
	}
	f.add(v)
	s.mu.Unlock()
	s.opt.Log.Info("viewer connected", "session", sess.id, "viewer", sess.viewer, "preview", sess.preview)
}

// readRTCP drains a sender's RTCP (unread, it would pile up in pion's
// buffers): NACKs are answered from the shared history, receiver reports
// give the round trip, PLI and FIR become keyframe requests.
func (s *Server) readRTCP(sender *webrtc.RTPSender, track *sampleTrack) {
	defer s.wg.Done()
	for {
		packets, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range packets {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if track.keyframeInFlight() {
					continue // answered by the keyframe on its way
				}
				s.hub.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				track.resend(p)
			case *rtcp.ReceiverReport:
				track.updateRTT(p.Reports)
			case *rtcp.SenderReport:
				track.updateRTT(p.Reports)
			}
		}
	}
}

// Delete ends a viewer's session.
func (s *Server) Delete(id string) error {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok || sess.pc == nil {
		return ErrNotFound
	}
	s.remove(sess)
	return nil
}

func (s *Server) remove(sess *session) {
	sess.closed.Do(func() {
		s.mu.Lock()
		if s.sessions[sess.id] == sess {
			delete(s.sessions, sess.id)
		}
		s.mu.Unlock()
		if sess.stopMedia != nil {
			sess.stopMedia()
		}
		if sess.pc != nil {
			if err := sess.pc.Close(); err != nil {
				s.opt.Log.Debug("close peer connection", "session", sess.id, "err", err)
			}
		}
		s.opt.Log.Info("viewer left", "session", sess.id, "viewer", sess.viewer)
	})
}

// DropUnless ends every session whose access keep refuses (preview sessions
// are the admin's and always kept) and returns how many it ended.
func (s *Server) DropUnless(keep func(access string) bool) int {
	s.mu.Lock()
	var drop []*session
	for _, sess := range s.sessions {
		if !sess.preview && !keep(sess.access) {
			drop = append(drop, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range drop {
		s.opt.Log.Info("viewer no longer admitted", "session", sess.id, "viewer", sess.viewer)
		s.remove(sess)
	}
	return len(drop)
}

// Viewers returns the number of viewer sessions now and the most there
// were during the current (or last) broadcast.
func (s *Server) Viewers() (now, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updatePeakLocked()
	return s.viewersLocked(), s.peak
}

// viewersLocked counts the audience: the console's preview is not a viewer.
func (s *Server) viewersLocked() int {
	n := 0
	for _, sess := range s.sessions {
		if !sess.preview {
			n++
		}
	}
	return n
}

func (s *Server) updatePeakLocked() {
	st, _ := s.hub.Status()
	if st.BroadcastID != s.peakOf {
		s.peakOf, s.peak = st.BroadcastID, 0
	}
	s.peak = max(s.peak, s.viewersLocked())
}

// Close ends every session and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		s.remove(sess)
	}
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	s.closeConn()
	return nil
}

func (s *Server) closeConn() {
	if s.mux != nil {
		s.mux.Close()
	}
	if s.conn != nil {
		s.conn.Close()
	}
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
