package uplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/media"
)

// Network timings of one session. They are real time, not Options.Clock:
// they bound waits on the network, not behaviour a test steps through.
const (
	gatherTimeout  = 5 * time.Second
	connectTimeout = 15 * time.Second
	deleteTimeout  = 3 * time.Second
	// ICE calls the path disconnected after iceDisconnected without a
	// packet from the server (the status leaves up then) and failed after
	// iceFailed, so a cut link leads to a reconnect within seconds. pion
	// counts its failed timeout from the moment of disconnection, hence
	// the difference in newAPI.
	iceDisconnected = 2 * time.Second
	iceFailed       = 5 * time.Second
	iceKeepalive    = time.Second
	// controlInterval is how often congestion feedback is read: a second
	// of congestion is then answered within a few reads.
	controlInterval = 200 * time.Millisecond
	// After a steep fall (steepFall) the uplink stops sending video for
	// drainPause, long enough for a typical bottleneck queue (200 ms) to
	// empty, and resumes with a keyframe at the new bitrate, which then
	// arrives whole instead of behind pictures the receiver cannot decode
	// anyway (their packets were lost in the overflowing queue). steepHold
	// keeps a fall in several steps to one pause.
	drainPause = 200 * time.Millisecond
	steepHold  = time.Second
	// maxErrorBody bounds what of an error response ends up in the status.
	maxErrorBody = 200
)

var (
	videoCodec = webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
	audioCodec = webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// session is one WHIP session: a peer connection and its HTTP resource.
type session struct {
	u         *Uplink
	pc        *webrtc.PeerConnection
	location  string
	video     *track
	audio     *track
	videoSSRC uint32
	estimator cc.BandwidthEstimator
	twcc      bool // the server acknowledged transport-wide CC

	ended   chan struct{} // closed when the connection fails or closes
	endOnce sync.Once
	endErr  error

	rembKbps atomic.Int64
	rembAt   atomic.Int64 // clock time of the last REMB, UnixNano
	// videoKbps is the video bitrate in force (chosen / frame divisor):
	// retransmissions get a share of it (rtxGuard).
	videoKbps atomic.Int64
	lossPPM   atomic.Int64 // latest receiver-report loss, parts per million; -1 none

	// estimateChanged wakes the control loop when GCC's estimate moves,
	// so that a fall is answered at once rather than at the next tick.
	estimateChanged chan struct{}
	// iceChanged wakes the control loop when ICE calls the connection
	// disconnected or connected again (iceLost).
	iceChanged chan struct{}
	iceLost    atomic.Bool
	// lastHeard is when RTCP last came from the server (time.Now,
	// UnixNano; 0 before the first), and heardGap the longest wait between
	// two so far: the session's own check that the server still answers,
	// beside ICE's (see silence).
	lastHeard, heardGap atomic.Int64
	// interrupted is what the status shows: the server does not answer.
	// Owned by the control loop.
	interrupted bool
	// skip holds video back after a steep fall (drainPause, then up to a
	// keyframe); set by the control loop, read by the pump.
	skip struct {
		sync.Mutex
		until    time.Time // no video before (real time: a queue drains in it)
		keyframe bool      // then none until a keyframe
		asked    bool      // the keyframe was requested
	}
	lastSteep time.Time

	wg sync.WaitGroup
}

func (s *session) end(err error) {
	s.endOnce.Do(func() { s.endErr = err; close(s.ended) })
}

// newAPI builds the WebRTC API of one session. Each session gets its own,
// so that the congestion-control interceptor it creates belongs to it.
func (u *Uplink) newAPI(startKbps int, estimator *cc.BandwidthEstimator, onEstimate func(), videoKbps func() int) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	feedback := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
		{Type: "transport-cc"},
	}
	codecs := []struct {
		params webrtc.RTPCodecParameters
		kind   webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: withFeedback(videoCodec, feedback), PayloadType: 102}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}, PayloadType: 103}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: audioCodec, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.params, c.kind); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", c.params.MimeType, err)
		}
	}
	ir := &interceptor.Registry{}
	// Order matters: the first registered sits closest to the network. The
	// NACK responder goes first so that its retransmissions, which carry
	// the RTX SSRC, go straight out: behind the congestion controller they
	// would hit its pacer, which knows only the media SSRC and drops them
	// (pion interceptor v0.1.51). The estimator then sees every first
	// transmission with the transport-wide sequence number the TWCC
	// interceptor (registered last, outermost) gave it. Below the responder,
	// the guard bounds what its retransmissions may add.
	ir.Add(rtxGuardFactory{videoKbps: videoKbps})
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("RTCP reports: %w", err)
	}
	// Pacing is left to the encoder, which follows the estimate.
	bwe, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		kbps := float64(startKbps) / videoShare
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(int(kbps*1000)),
			gcc.SendSideBWEMinBitrate(u.opt.MinBitrateKbps*1000),
			gcc.SendSideBWEMaxBitrate(int(float64(u.opt.MaxBitrateKbps)/videoShare*1000)),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("congestion control: %w", err)
	}
	bwe.OnNewPeerConnection(func(_ string, e cc.BandwidthEstimator) {
		*estimator = e
		if onEstimate != nil {
			e.OnTargetBitrateChange(func(int) { onEstimate() })
		}
	})
	ir.Add(bwe)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, ir); err != nil {
		return nil, fmt.Errorf("TWCC: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnected, iceFailed-iceDisconnected, iceKeepalive)
	if u.opt.Net != nil {
		se.SetNet(u.opt.Net)
	}
	if host := u.endpoint.Hostname(); host == "localhost" || net.ParseIP(host).IsLoopback() {
		// A media server on this very box (or a test) is reached over
		// loopback, which pion leaves out by default.
		se.SetIncludeLoopbackCandidate(true)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

func withFeedback(c webrtc.RTPCodecCapability, fb []webrtc.RTCPFeedback) webrtc.RTPCodecCapability {
	c.RTCPFeedback = fb
	return c
}

// connect offers, posts the offer and waits for ICE and DTLS. On success
// the session is connected; on failure everything is released.
func (u *Uplink) connect(ctx context.Context, startKbps int) (_ *session, err error) {
	s := &session{u: u, ended: make(chan struct{}),
		estimateChanged: make(chan struct{}, 1), iceChanged: make(chan struct{}, 1)}
	s.lossPPM.Store(-1)
	s.videoKbps.Store(int64(startKbps))
	api, err := u.newAPI(startKbps, &s.estimator, func() { wake(s.estimateChanged) },
		func() int { return int(s.videoKbps.Load()) })
	if err != nil {
		return nil, err
	}
	s.pc, err = api.NewPeerConnection(webrtc.Configuration{
		ICEServers: u.opt.ICEServers, BundlePolicy: webrtc.BundlePolicyMaxBundle,
	})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	connected := make(chan struct{})
	var connectedOnce sync.Once
	s.pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			connectedOnce.Do(func() { close(connected) })
			if s.iceLost.Swap(false) {
				wake(s.iceChanged)
			}
		case webrtc.PeerConnectionStateDisconnected:
			if !s.iceLost.Swap(true) {
				wake(s.iceChanged)
			}
		case webrtc.PeerConnectionStateFailed:
			s.end(errors.New("the connection to the media server failed (ICE)"))
		case webrtc.PeerConnectionStateClosed:
			s.end(errors.New("the connection to the media server was closed"))
		}
	})
	if s.video, err = newTrack(videoCodec, "video"); err != nil {
		return nil, err
	}
	if s.audio, err = newTrack(audioCodec, "audio"); err != nil {
		return nil, err
	}
	for _, t := range []*track{s.video, s.audio} {
		tr, err := s.pc.AddTransceiverFromTrack(t.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, fmt.Errorf("add %s track: %w", t.local.ID(), err)
		}
		if t == s.video {
			if enc := tr.Sender().GetParameters().Encodings; len(enc) > 0 {
				s.videoSSRC = uint32(enc[0].SSRC)
			}
		}
		s.wg.Add(1)
		go s.readRTCP(tr.Sender())
	}
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("set offer: %w", err)
	}
	// No trickle: the offer carries every candidate, which every WHIP
	// server accepts; host candidates come first, so a slow STUN server
	// costs at most gatherTimeout.
	gatherTimer := time.NewTimer(gatherTimeout)
	defer gatherTimer.Stop()
	select {
	case <-gathered:
	case <-gatherTimer.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	answer, err := s.post(ctx, s.pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	if err := checkAnswer(answer); err != nil {
		return nil, err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("the media server's answer was refused: %w", err)
	}
	s.twcc = strings.Contains(answer, sdp.TransportCCURI)
	timer := time.NewTimer(connectTimeout)
	defer timer.Stop()
	select {
	case <-connected:
		return s, nil
	case <-s.ended:
		return nil, s.endErr
	case <-timer.C:
		return nil, fmt.Errorf("no connection to the media server within %s (ICE)", connectTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// post sends the offer (RFC 9725 section 4.2) and returns the answer; the
// session's resource URL is kept for DELETE.
func (s *session) post(ctx context.Context, offer string) (string, error) {
	u := s.u
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.endpoint.String(), strings.NewReader(offer))
	if err != nil {
		return "", fmt.Errorf("WHIP request: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if u.opt.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+u.opt.BearerToken)
	}
	resp, err := u.opt.HTTPClient.Do(req)
	if err != nil {
		// The url.Error repeats method and URL; the status line names the
		// server once.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return "", fmt.Errorf("cannot reach the media server at %s: %w", u.endpoint.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("WHIP POST: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", &StatusError{Code: resp.StatusCode, Body: errorBody(body)}
	}
	// A resource URL is needed to end the session; without one the
	// session would linger on the server until it times out.
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("WHIP POST: 201 without a usable Location header: %w", err)
	}
	s.location = loc.String()
	return string(body), nil
}

// StatusError is a WHIP server's refusal of the offer.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Body is the start of the response body, for the status line.
	Body string
}

// Error is the one sentence the status shows: code, its meaning, and the
// start of what the server said.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("the media server refused the stream: HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func errorBody(body []byte) string {
	text := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if len(text) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(text[cut]) { // never half a character
			cut--
		}
		text = text[:cut] + "..."
	}
	return text
}

// checkAnswer refuses an answer that is not SDP, before pion sees it, with
// an error a person can act on.
func checkAnswer(answer string) error {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(answer); err != nil {
		return fmt.Errorf("the media server's answer is not SDP: %w", err)
	}
	if len(parsed.MediaDescriptions) == 0 {
		return errors.New("the media server's answer has no media")
	}
	return nil
}

// run sends the hub's samples until ctx ends (nil) or the connection is
// lost (its error), and steers the bitrate meanwhile.
func (s *session) run(ctx context.Context, ctrl *controller) error {
	u := s.u
	sink := u.opt.Hub.AddSink(broadcast.SinkOptions{Name: "uplink"})
	defer sink.Close()
	// AddSink asked for a keyframe and the sink waits for one, so the
	// server's first picture after every (re)connect is decodable.
	u.opt.Hub.RequestKeyframe()
	pumpCtx, stopPump := context.WithCancel(ctx)
	defer stopPump()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pump(pumpCtx, sink)
	}()
	for {
		tick, stop := after(u.clock, controlInterval)
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-s.ended:
			stop()
			return s.endErr
		case <-s.iceChanged:
			stop()
		case <-s.estimateChanged:
			stop()
		case <-tick:
		}
		silent, gap := s.silence()
		if silent >= max(iceFailed, 4*gap) {
			return fmt.Errorf("the media server stopped answering (nothing received for %s)", silent.Round(100*time.Millisecond))
		}
		if lost := s.iceLost.Load() || silent >= max(iceDisconnected, 2*gap); lost != s.interrupted {
			s.interrupted = lost
			s.reportInterruption()
		}
		s.control(ctrl)
	}
}

// silence is how long the server has sent nothing (no RTCP), once it has
// sent something, and the longest such wait before. It backs up ICE's own
// timeouts, which run on the ICE agent's loop: when the link's next hop
// itself is gone, the kernel holds the socket's packets while it tries to
// resolve the neighbour, writes block, and the agent, stuck in a write,
// noticed a 10 s cut only when the link came back (seen in
// TestRealNetwork). WebRTC receivers send RTCP several times a second
// (TWCC, REMB) or at least every second (receiver reports); a server that
// sends more rarely stretches the limits with its longest gap.
func (s *session) silence() (silent, longestGap time.Duration) {
	at := s.lastHeard.Load()
	if at == 0 {
		return 0, 0
	}
	return time.Since(time.Unix(0, at)), time.Duration(s.heardGap.Load())
}

// heard notes RTCP from the server.
func (s *session) heard() {
	now := time.Now().UnixNano()
	prev := s.lastHeard.Swap(now)
	if prev == 0 {
		return
	}
	for gap := now - prev; ; {
		longest := s.heardGap.Load()
		if gap <= longest || s.heardGap.CompareAndSwap(longest, gap) {
			return
		}
	}
}

// wake signals c without blocking; one pending signal is enough.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reportInterruption shows in the status that the server stopped answering
// (nothing came back for iceDisconnected), or that it answers again. The
// session goes on meanwhile: the path may come back, or the session ends
// after iceFailed.
func (s *session) reportInterruption() {
	u := s.u
	now := u.clock.Now()
	if s.interrupted {
		u.log.Warn("uplink interrupted: no answer from the media server", "for", iceDisconnected)
		u.update(func(st *Status) {
			st.State, st.Error = Connecting, fmt.Sprintf("no answer from the media server for %s", iceDisconnected)
			if st.DownSince.IsZero() {
				st.DownSince = now
			}
		})
		return
	}
	u.log.Info("uplink answers again")
	u.update(func(st *Status) { st.State, st.Error, st.DownSince = Up, "", time.Time{} })
}

func (s *session) pump(ctx context.Context, sink *broadcast.Sink) {
	for {
		sample, err := sink.Next(ctx)
		if err != nil {
			return
		}
		t := s.video
		if sample.Kind == media.Audio {
			t = s.audio
		} else if s.holdBack(sample) {
			continue
		}
		if err := t.write(sample); err != nil {
			s.end(fmt.Errorf("sending to the media server: %w", err))
			return
		}
	}
}

// holdBack tells whether a video sample is to be dropped after a steep
// fall: all during drainPause, then all up to a keyframe, which is asked
// for once the pause is over (so that it is encoded at the new bitrate and
// enters a queue that had time to empty).
func (s *session) holdBack(sample media.Sample) bool {
	s.skip.Lock()
	defer s.skip.Unlock()
	if !s.skip.keyframe {
		return false
	}
	if time.Now().Before(s.skip.until) {
		return true
	}
	if sample.Keyframe {
		s.skip.keyframe = false
		return false
	}
	if !s.skip.asked {
		s.skip.asked = true
		s.u.opt.Hub.RequestKeyframe()
	}
	return true
}

// startSkip holds video back after a steep fall (see steepFall).
func (s *session) startSkip() {
	s.skip.Lock()
	defer s.skip.Unlock()
	s.skip.until, s.skip.keyframe, s.skip.asked = time.Now().Add(drainPause), true, false
}

// control reads the congestion feedback and applies the chosen bitrate.
func (s *session) control(ctrl *controller) {
	u := s.u
	var sig signals
	if s.twcc && s.estimator != nil {
		sig.twccKbps = s.estimator.GetTargetBitrate() / 1000
	}
	if at := s.rembAt.Load(); at != 0 && u.clock.Now().Sub(time.Unix(0, at)) < rembMaxAge {
		sig.rembKbps = int(s.rembKbps.Load())
	}
	// Each receiver report counts once: acting on the same report at every
	// tick would cut the bitrate again and again for one lossy second.
	sig.loss = -1
	if ppm := s.lossPPM.Swap(-1); ppm >= 0 {
		sig.loss = float64(ppm) / 1e6
	}
	before := ctrl.chosenKbps
	kbps, changed, steep := ctrl.update(u.clock.Now(), sig)
	estimate := sig.twccKbps
	if estimate == 0 || (sig.rembKbps > 0 && sig.rembKbps < estimate) {
		estimate = sig.rembKbps
	}
	now := u.clock.Now()
	if changed {
		u.log.Info("uplink bitrate", "kbps", kbps, "was_kbps", before, "estimate_kbps", estimate,
			"remb_kbps", sig.rembKbps, "loss", sig.loss)
		u.setBitrate(kbps)
		if steep && (s.lastSteep.IsZero() || now.Sub(s.lastSteep) >= steepHold) {
			s.lastSteep = now
			u.log.Info("uplink steep fall: video paused, then a keyframe", "pause", drainPause, "kbps", kbps, "was_kbps", before)
			s.startSkip()
		}
	}
	div, divChanged := ctrl.frames(u.clock.Now(), sig)
	if divChanged {
		u.log.Info("uplink frame rate", "every_nth_picture", div, "room_kbps", ctrl.room(sig), "min_kbps", ctrl.minKbps)
		u.setFrameDivisor(div)
	}
	sending := kbps
	if u.opt.SetFrameDivisor != nil {
		sending /= div
	}
	s.videoKbps.Store(int64(sending))
	u.update(func(st *Status) { st.BitrateKbps, st.EstimateKbps, st.FrameDivisor = kbps, estimate, div })
}

// readRTCP drains a sender's RTCP (the interceptors act on NACKs, reports
// and TWCC while it is read), turns PLI and FIR into keyframe requests and
// keeps REMB and receiver-report loss for the controller.
func (s *session) readRTCP(sender *webrtc.RTPSender) {
	defer s.wg.Done()
	for {
		packets, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		s.heard()
		for _, p := range packets {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.u.opt.Hub.RequestKeyframe()
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				s.rembKbps.Store(int64(p.Bitrate / 1000))
				s.rembAt.Store(s.u.clock.Now().UnixNano())
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					if r.SSRC == s.videoSSRC {
						s.lossPPM.Store(int64(r.FractionLost) * 1e6 / 256)
					}
				}
			}
		}
	}
}

// close ends the session: DELETE of its resource (RFC 9725 section 4.3),
// then the peer connection, then its goroutines.
func (s *session) close() {
	if s.location != "" {
		s.delete()
	}
	if err := s.pc.Close(); err != nil {
		s.u.log.Debug("close peer connection", "err", err)
	}
	s.wg.Wait()
}

func (s *session) delete() {
	u := s.u
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.location, nil)
	if err != nil {
		u.log.Warn("WHIP DELETE", "url", s.location, "err", err)
		return
	}
	if u.opt.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+u.opt.BearerToken)
	}
	resp, err := u.opt.HTTPClient.Do(req)
	if err != nil {
		// The server may be the reason the session ended; it drops the
		// session on its own once ICE times out.
		u.log.Info("WHIP DELETE failed", "url", s.location, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		u.log.Info("WHIP DELETE refused", "url", s.location, "status", resp.StatusCode)
	}
}
