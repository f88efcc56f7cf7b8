//go:build cgo

package daemon

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/config"
	"github.com/onair/onair/fleet"
)

// whipServer is a minimal media server: it answers WHIP offers with pion
// and keeps the H.264 it receives as Annex-B.
type whipServer struct {
	t       *testing.T
	mu      sync.Mutex
	h264    bytes.Buffer
	frames  int
	deletes int
	auth    string
	pcs     []*webrtc.PeerConnection
	wg      sync.WaitGroup
}

func (s *whipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		s.mu.Lock()
		s.deletes++
		s.mu.Unlock()
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

func (s *whipServer) received() (frames, deletes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames, s.deletes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUplinkSetAtRunTime points a running box at a media server, then at
// another, then switches the uplink off, as an operator does over MQTT
// (the controller is the MQTT commands' entry point): no restart, and the
// choice survives one.
func TestUplinkSetAtRunTime(t *testing.T) {
	a, b := &whipServer{t: t}, &whipServer{t: t}
	ha, hb := httptest.NewServer(a), httptest.NewServer(b)
	defer ha.Close()
	defer hb.Close()
	defer a.close()
	defer b.close()
	r := start(t, nil)
	defer r.stop()
	r.goLive(t)
	ctl := controller{r.d}
	ctx := context.Background()
	if doc := r.d.Status(); doc.Uplink.State != "off" {
		t.Fatalf("uplink %+v before any is set", doc.Uplink)
	}
	bad := "ftp://media.example.org/whip"
	if err := ctl.Set(ctx, fleet.SetArgs{UplinkURL: &bad}); err == nil {
		t.Fatal("an ftp:// uplink was accepted")
	}

	urlA, token := ha.URL+"/whip", "token-a"
	if err := ctl.Set(ctx, fleet.SetArgs{UplinkURL: &urlA, UplinkToken: &token}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "video at server A", func() bool { n, _ := a.received(); return n >= 30 })
	waitFor(t, "uplink up", func() bool { return r.d.Status().Uplink.State == "up" })
	if code, body := r.admin(t, http.MethodGet, "/api/status", ""); code != 200 || !strings.Contains(body, `"uplink":{"state":"up"`) {
		t.Fatalf("GET /api/status while the uplink sends: %d %s", code, body)
	}
	_, metrics := r.call(t, http.MethodGet, "/metrics", "", nil)
	if !strings.Contains(metrics, "onair_uplink_up 1") || strings.Contains(metrics, "onair_uplink_bitrate_kbps 0\n") {
		t.Fatalf("metrics while the uplink is up:\n%s", grepLines(metrics, "onair_uplink"))
	}
	a.mu.Lock()
	authA := a.auth
	a.mu.Unlock()
	if authA != "Bearer token-a" {
		t.Fatalf("server A got Authorization %q", authA)
	}

	urlB := hb.URL + "/whip"
	if err := ctl.Set(ctx, fleet.SetArgs{UplinkURL: &urlB}); err != nil {
		t.Fatal(err)
	}
	if _, deletes := a.received(); deletes != 1 {
		t.Fatalf("server A's session was not ended (%d DELETEs)", deletes)
	}
	waitFor(t, "video at server B", func() bool { n, _ := b.received(); return n >= 30 })

	off := false
	if err := ctl.Set(ctx, fleet.SetArgs{UplinkEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	if doc := r.d.Status(); doc.Uplink.State != "off" {
		t.Fatalf("uplink %+v after switching it off", doc.Uplink)
	}
	saved := r.d.settings.Get()
	if saved.UplinkURL == nil || *saved.UplinkURL != urlB || saved.UplinkEnabled == nil || *saved.UplinkEnabled ||
		saved.UplinkToken == nil || *saved.UplinkToken != "token-a" {
		t.Fatalf("saved uplink settings %+v", saved)
	}
	if t0 := initialUplink(r.d.cfg.Uplink, saved); t0.on() || t0.URL != urlB {
		t.Fatalf("after a restart the uplink would be %+v", t0)
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestUplinkHTTPAPI(t *testing.T) {
	srv := &whipServer{t: t}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.close()
	r := start(t, nil)
	defer r.stop()
	for _, c := range []struct {
		body string
		want int
	}{
		{`{}`, 400},
		{`{"url":"ftp://x/y"}`, 400},
		{`{"enabled":true}`, 400}, // no URL anywhere
		{`{"url":"` + hs.URL + `/whip","token":"t1"}`, 200},
	} {
		if code, body := r.admin(t, http.MethodPatch, "/api/uplink", c.body); code != c.want {
			t.Fatalf("PATCH /api/uplink %s: %d %s, want %d", c.body, code, body, c.want)
		}
	}
	if code, _ := r.call(t, http.MethodPatch, "/api/uplink", `{"enabled":false}`, nil); code != 401 {
		t.Fatalf("PATCH /api/uplink without the admin token: %d", code)
	}
	r.goLive(t)
	waitFor(t, "video at the server", func() bool { n, _ := srv.received(); return n >= 10 })
}
