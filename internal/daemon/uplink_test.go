//go:build cgo

package daemon

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/config"
)

// whipServer is a minimal media server: it answers WHIP offers with pion
// and keeps the H.264 it receives as Annex-B.
type whipServer struct {
	t      *testing.T
	mu     sync.Mutex
	h264   bytes.Buffer
	frames int
	auth   string
	pcs    []*webrtc.PeerConnection
	wg     sync.WaitGroup
}

func (s *whipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.mu.Lock()
	s.auth = r.Header.Get("Authorization")
	s.mu.Unlock()
	offer, _ := io.ReadAll(r.Body)
	m := &webrtc.MediaEngine{}
	m.RegisterDefaultCodecs()
	ir := &interceptor.Registry{}
	webrtc.RegisterDefaultInterceptors(m, ir)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	s.mu.Lock()
	s.pcs = append(s.pcs, pc)
	s.mu.Unlock()
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if track.Kind() != webrtc.RTPCodecTypeVideo {
			for {
				if _, _, err := track.ReadRTP(); err != nil {
					return
				}
			}
		}
		var depacketizer codecs.H264Packet
		var au []byte
		for {
			pkt, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			nal, err := depacketizer.Unmarshal(pkt.Payload)
			if err != nil {
				continue
			}
			au = append(au, nal...)
			if pkt.Marker {
				s.mu.Lock()
				s.h264.Write(au)
				s.frames++
				s.mu.Unlock()
				au = au[:0]
			}
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	answer, _ := pc.CreateAnswer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(answer)
	<-gathered
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/session/1")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, pc.LocalDescription().SDP)
}

func (s *whipServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pc := range s.pcs {
		pc.Close()
	}
}

// TestUplinkPushesDecodableVideo goes live with uplink.whip_url set: the
// media server receives the same H.264 the viewers get, and ffmpeg decodes it.
func TestUplinkPushesDecodableVideo(t *testing.T) {
	srv := &whipServer{t: t}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.close()
	r := start(t, func(c *config.Config) {
		c.Uplink.WHIPURL = hs.URL + "/whip"
		c.Uplink.BearerToken = "media-token"
	})
	r.goLive(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		srv.mu.Lock()
		n := srv.frames
		srv.mu.Unlock()
		if n >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the media server received %d frames", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if doc := r.d.Status(); doc.Uplink.State != "up" {
		t.Fatalf("status uplink %+v while media flows", doc.Uplink)
	}
	r.admin(t, http.MethodDelete, "/api/live", "")
	srv.mu.Lock()
	stream, auth := bytes.Clone(srv.h264.Bytes()), srv.auth
	srv.mu.Unlock()
	if auth != "Bearer media-token" {
		t.Fatalf("Authorization %q", auth)
	}
	w, h, frames := ffprobeFrames(t, stream)
	if w != 640 || h != 360 || frames < 60 {
		t.Fatalf("server stream %dx%d with %d frames", w, h, frames)
	}
}
