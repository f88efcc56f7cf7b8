package uplink

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/media/h264"
)

// whipServer is a WHIP endpoint written with pion, playing the media
// server: it checks the token, answers offers, receives H.264 and Opus, and
// can refuse, hang, answer garbage, drop its connections or go away.
type whipServer struct {
	t     *testing.T
	token string
	net   transport.Net // nil: the host's network
	api   *webrtc.API

	mu      sync.Mutex
	addr    string
	ln      net.Listener
	srv     *http.Server
	refuse  int  // status code for the next POSTs, 0 = accept
	garbage bool // answer with something that is not SDP
	hang    bool // never answer
	remb    int  // bitrate to announce by REMB every 200 ms, 0 = none
	posts   []http.Header
	deletes []string
	// deleteAuth is the Authorization header of each DELETE.
	deleteAuth []string
	sessions   []*serverSession
	changed    chan struct{}
	quit       chan struct{} // closed by stop: hanging handlers return
	wg         sync.WaitGroup
}

// serverSession is what one accepted offer received.
type serverSession struct {
	id string
	pc *webrtc.PeerConnection

	mu           sync.Mutex
	frames       int
	keyframes    int
	firstIsKey   bool
	videoBytes   int
	audioPackets int
	deleted      bool
	seen         map[uint16]bool // video sequence numbers received
	last         uint16
	answer       string
	stopREMB     chan struct{}
	stopREMBOnce sync.Once
}

func (s *serverSession) stats() (frames, keyframes, audio int, firstIsKey bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, s.keyframes, s.audioPackets, s.firstIsKey
}

// lastSeq is the newest video sequence number received.
func (s *serverSession) lastSeq() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// missing counts the video sequence numbers from..to (wrapping) never
// received.
func (s *serverSession) missing(from, to uint16) (total, missing int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq := from; seq != to; seq++ {
		total++
		if !s.seen[seq] {
			missing++
		}
	}
	return total, missing
}

func (s *serverSession) bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.videoBytes
}

func newWHIPServer(t *testing.T, token string, vnet transport.Net) *whipServer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	// Like a browser or a media server: NACKs, receiver reports and TWCC
	// feedback.
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if vnet != nil {
		se.SetNet(vnet)
	} else {
		se.SetIncludeLoopbackCandidate(true)
	}
	s := &whipServer{t: t, token: token, net: vnet, changed: make(chan struct{}),
		api: webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *whipServer) url() string { return "http://" + s.addr + "/whip" }

// start listens (again, on the same address after stop).
func (s *whipServer) start() {
	s.t.Helper()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip", s.offer)
	mux.HandleFunc("DELETE /whip/{id}", s.delete)
	srv := &http.Server{Handler: mux}
	s.mu.Lock()
	s.ln, s.srv, s.addr, s.quit = ln, srv, ln.Addr().String(), make(chan struct{})
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = srv.Serve(ln) }()
}

// stop is the server going away: no more listener, every connection closed.
func (s *whipServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	if srv != nil {
		close(s.quit)
	}
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	s.dropAll()
	s.wg.Wait()
}

// dropAll closes every peer connection, as a server that restarts or kicks
// the publisher does; the HTTP side stays.
func (s *whipServer) dropAll() {
	s.mu.Lock()
	sessions := append([]*serverSession(nil), s.sessions...)
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.stopREMBOnce.Do(func() { close(sess.stopREMB) })
		sess.pc.Close()
	}
}

func (s *whipServer) set(f func(s *whipServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *whipServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *whipServer) offer(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.posts = append(s.posts, r.Header.Clone())
	refuse, garbage, hang, quit := s.refuse, s.garbage, s.hang, s.quit
	s.notifyLocked()
	s.mu.Unlock()
	switch {
	case hang:
		// With the body read, the server notices the client giving up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-quit:
		}
		return
	case s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token:
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	case r.Header.Get("Content-Type") != "application/sdp":
		http.Error(w, "want application/sdp", http.StatusUnsupportedMediaType)
		return
	case refuse != 0:
		http.Error(w, "refused by the test", refuse)
		return
	case garbage:
		w.Header().Set("Location", "/whip/garbage")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "this is not SDP")
		return
	}
	offer, _ := io.ReadAll(r.Body)
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	sess := &serverSession{id: fmt.Sprint(len(s.sessions) + 1), pc: pc, stopREMB: make(chan struct{})}
	s.sessions = append(s.sessions, sess)
	remb := s.remb
	s.notifyLocked()
	s.mu.Unlock()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			if remb > 0 {
				go s.sendREMB(sess, uint32(tr.SSRC()), remb)
			}
			s.readVideo(sess, tr)
			return
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			sess.mu.Lock()
			sess.audioPackets++
			sess.mu.Unlock()
		}
	})
	if err := answerOffer(pc, string(offer)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+sess.id)
	w.WriteHeader(http.StatusCreated)
	sess.mu.Lock()
	sess.answer = pc.LocalDescription().SDP
	sess.mu.Unlock()
	io.WriteString(w, sess.answer)
}

// answerOffer answers a WHIP offer as a media server does without trickle:
// the answer is set once ICE gathering is complete, so that it carries
// every candidate (pc.LocalDescription).
func answerOffer(pc *webrtc.PeerConnection, offer string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	<-gathered
	return nil
}

func (s *whipServer) sendREMB(sess *serverSession, ssrc uint32, bps int) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sess.stopREMB:
			return
		case <-tick.C:
		}
		err := sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bps), SSRCs: []uint32{ssrc}}})
		if err != nil {
			return
		}
	}
}

func (s *whipServer) readVideo(sess *serverSession, tr *webrtc.TrackRemote) {
	var depacketizer codecs.H264Packet
	var au []byte
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		sess.mu.Lock()
		sess.videoBytes += len(pkt.Payload)
		if sess.seen == nil {
			sess.seen = map[uint16]bool{}
		}
		sess.seen[pkt.SequenceNumber] = true
		if int16(pkt.SequenceNumber-sess.last) > 0 || len(sess.seen) == 1 {
			sess.last = pkt.SequenceNumber
		}
		sess.mu.Unlock()
		nal, err := depacketizer.Unmarshal(pkt.Payload)
		if err != nil {
			au = au[:0]
			continue
		}
		au = append(au, nal...)
		if !pkt.Marker {
			continue
		}
		info := h264.Inspect(au)
		au = au[:0]
		sess.mu.Lock()
		if sess.frames == 0 {
			sess.firstIsKey = info.IDR && info.SPS && info.PPS
		}
		sess.frames++
		if info.IDR {
			sess.keyframes++
		}
		sess.mu.Unlock()
		s.mu.Lock()
		s.notifyLocked()
		s.mu.Unlock()
	}
}

func (s *whipServer) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletes = append(s.deletes, r.PathValue("id"))
	s.deleteAuth = append(s.deleteAuth, r.Header.Get("Authorization"))
	for _, sess := range s.sessions {
		if sess.id == r.PathValue("id") {
			sess.mu.Lock()
			sess.deleted = true
			sess.mu.Unlock()
			sess.stopREMBOnce.Do(func() { close(sess.stopREMB) })
			go sess.pc.Close()
		}
	}
	s.notifyLocked()
}

// wait blocks until cond (called under the server's lock) holds.
func (s *whipServer) wait(ctx context.Context, what string, cond func(s *whipServer) bool) {
	s.t.Helper()
	for {
		s.mu.Lock()
		ok, changed := cond(s), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.t.Fatalf("waiting for the server: %s: %v", what, ctx.Err())
		}
	}
}

// waitFrames waits until the latest session received n video frames.
func (s *whipServer) waitFrames(ctx context.Context, n int) *serverSession {
	s.t.Helper()
	var last *serverSession
	s.wait(ctx, fmt.Sprintf("%d video frames", n), func(s *whipServer) bool {
		if len(s.sessions) == 0 {
			return false
		}
		last = s.sessions[len(s.sessions)-1]
		frames, _, _, _ := last.stats()
		return frames >= n
	})
	return last
}

func (s *whipServer) postCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.posts)
}

func hasPrefix(list []string, p string) bool {
	for _, x := range list {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}
