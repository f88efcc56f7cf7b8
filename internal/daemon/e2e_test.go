//go:build cgo

package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/device/board"
	"github.com/onair/onair/internal/whepclient"
	"github.com/onair/onair/media"
)

type running struct {
	d     *Daemon
	base  string
	token string
	stop  func()
}

// start runs onaird in process on random ports with the test sources.
func start(t testing.TB, mutate func(*config.Config)) *running {
	t.Helper()
	return startWith(t, mutate, Options{})
}

func startWith(t testing.TB, mutate func(*config.Config), opt Options) *running {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.AdminToken = "test-admin-token"
	cfg.Video.Source = "test"
	cfg.Audio.Source = "test"
	cfg.Video.Width, cfg.Video.Height = 640, 360
	cfg.Video.BitrateKbps = 800
	cfg.WebRTC.UDPPort = 0
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	opt.Log = log
	d, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r := &running{d: d, base: "http://" + d.Addr().String(), token: cfg.HTTP.AdminToken}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) call(t testing.TB, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) admin(t testing.TB, method, path, body string) (int, string) {
	return r.call(t, method, path, body, map[string]string{"Authorization": "Bearer " + r.token, "Content-Type": "application/json"})
}

func (r *running) goLive(t testing.TB) {
	t.Helper()
	if code, body := r.admin(t, http.MethodPost, "/api/live", `{"title":"Test"}`); code != http.StatusOK {
		t.Fatalf("go live: %d %s", code, body)
	}
}

func ffprobeFrames(t *testing.T, stream []byte) (width, height, frames int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "received.h264")
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	// ffmpeg decodes every frame; -xerror turns any decode error into a failure.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-f", "h264", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg decode errors: %v\n%s", err, out)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "json", "-f", "h264", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p struct {
		Streams []struct {
			Width, Height int
			NbReadFrames  string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) != 1 {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	n, _ := strconv.Atoi(p.Streams[0].NbReadFrames)
	return p.Streams[0].Width, p.Streams[0].Height, n
}

func TestEndToEnd(t *testing.T) {
	r := start(t, func(c *config.Config) {
		c.Video.KeyframeInterval = config.Duration(10 * time.Second) // any early keyframe is a forced one
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{RecordH264: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Connected while idle: nothing may arrive.
	deadline := time.Now().Add(5 * time.Second)
	for client.Stats().Connected.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if client.Stats().Connected.IsZero() {
		t.Fatal("viewer did not connect while idle")
	}
	time.Sleep(500 * time.Millisecond)
	if st := client.Stats(); st.VideoFrames != 0 || st.AudioPackets != 0 || !st.FirstRTP.IsZero() {
		t.Fatalf("media left the box while idle: %+v", st)
	}

	encodedBefore := r.d.pipeline.Stats().FramesEncoded
	liveAt := time.Now()
	r.goLive(t)
	if err := client.WaitVideoFrames(ctx, 1); err != nil {
		t.Fatal(err)
	}
	firstKeyframe := client.Stats().FirstKeyframe.Sub(liveAt)
	t.Logf("go-live call -> first keyframe at the viewer: %v", firstKeyframe)
	if firstKeyframe > 5*time.Second {
		t.Fatalf("first keyframe after %v: it must be forced, not wait for the 10 s interval", firstKeyframe)
	}
	// Two seconds of live video.
	time.Sleep(2 * time.Second)
	if code, body := r.admin(t, http.MethodDelete, "/api/live", ""); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, body)
	}
	liveFor := time.Since(liveAt)
	encodedWhileLive := r.d.pipeline.Stats().FramesEncoded - encodedBefore
	time.Sleep(300 * time.Millisecond) // let the last packets land
	st := client.Stats()
	if !st.FirstFrameIsKeyframe {
		t.Fatal("the first frame was not a keyframe with SPS and PPS")
	}
	if st.AudioPackets < 50 || !st.AudioNonSilent {
		t.Fatalf("audio: %d packets, non-silent %v", st.AudioPackets, st.AudioNonSilent)
	}
	w, h, frames := ffprobeFrames(t, client.H264())
	if w != 640 || h != 360 {
		t.Fatalf("decoded %dx%d, want 640x360", w, h)
	}
	if frames != st.VideoFrames {
		t.Fatalf("ffmpeg decoded %d frames of the %d received", frames, st.VideoFrames)
	}
	// Every frame encoded while live reaches the viewer (+-10 % for the
	// frames around the go-live and stop calls). Comparing with what the
	// encoder produced rather than with 30 fps x wall time keeps the check
	// true on a loaded machine, where the pattern skips frames it is late for.
	expected := float64(encodedWhileLive)
	if float64(frames) < expected*0.9 || float64(frames) > expected*1.1 {
		t.Fatalf("%d frames received, %d encoded while live (%v)", frames, encodedWhileLive, liveFor)
	}
	t.Logf("%d frames received in %v live (%d encoded)", frames, liveFor, encodedWhileLive)
	// After stop nothing more arrives.
	before := client.Stats().VideoFrames
	time.Sleep(300 * time.Millisecond)
	if after := client.Stats().VideoFrames; after != before {
		t.Fatalf("%d frames arrived after stop", after-before)
	}
}

func TestBadInputAndChurn(t *testing.T) {
	r := start(t, nil)
	sdpHeader := map[string]string{"Content-Type": "application/sdp"}
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		want                     int
	}{
		{"garbage SDP", "POST", "/api/whep", "this is not sdp", sdpHeader, 400},
		{"SDP without video", "POST", "/api/whep", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n", sdpHeader, 400},
		{"wrong content type", "POST", "/api/whep", "v=0", map[string]string{"Content-Type": "application/json"}, 415},
		{"no content type", "POST", "/api/whep", "v=0", nil, 415},
		{"huge body", "POST", "/api/whep", strings.Repeat("a", 1<<20), sdpHeader, 413},
		{"delete unknown session", "DELETE", "/api/whep/0123456789abcdef", "", nil, 404},
		{"unknown route", "GET", "/api/nothing", "", nil, 404},
		{"wrong method", "PUT", "/api/status", "", nil, 405},
		{"live without token", "POST", "/api/live", "", nil, 401},
		{"live with wrong token", "POST", "/api/live", "", map[string]string{"Authorization": "Bearer nope"}, 403},
		{"private not a bool", "POST", "/api/live", `{"private": "yes"}`, map[string]string{"Authorization": "Bearer test-admin-token"}, 400},
		{"bad JSON", "POST", "/api/live", `{"title":`, map[string]string{"Authorization": "Bearer test-admin-token"}, 400},
		{"unknown field", "POST", "/api/live", `{"titel":"x"}`, map[string]string{"Authorization": "Bearer test-admin-token"}, 400},
		{"bad button", "POST", "/api/button", `{"press":"double"}`, map[string]string{"Authorization": "Bearer test-admin-token"}, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := r.call(t, c.method, c.path, c.body, c.header)
			if code != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Fatalf("error body is not JSON {\"error\": ...}: %q", body)
			}
		})
	}

	// A real offer, then 200 connects and disconnects: no goroutine or
	// memory growth.
	ctx := context.Background()
	first, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	churn := func(n int) {
		for i := 0; i < n; i++ {
			c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
			if err != nil {
				t.Fatalf("connect %d: %v", i, err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("disconnect %d: %v", i, err)
			}
		}
	}
	churn(20)
	baseGoroutines, baseHeap := settle()
	churn(200)
	goroutines, heap := settle()
	t.Logf("after 200 connects: goroutines %d -> %d, heap %d -> %d KiB", baseGoroutines, goroutines, baseHeap>>10, heap>>10)
	if goroutines > baseGoroutines+10 {
		t.Fatalf("goroutines grew from %d to %d over 200 connects", baseGoroutines, goroutines)
	}
	if heap > baseHeap+16<<20 {
		t.Fatalf("heap grew from %d to %d KiB over 200 connects", baseHeap>>10, heap>>10)
	}
	if now, _ := r.d.viewers.Viewers(); now != 0 {
		t.Fatalf("%d viewer sessions left after every client left", now)
	}
}

// settle waits for closed connections' goroutines to end and returns the
// goroutine count and live heap.
func settle() (int, uint64) {
	var n int
	for i := 0; i < 50; i++ {
		prev := runtime.NumGoroutine()
		time.Sleep(100 * time.Millisecond)
		n = runtime.NumGoroutine()
		if n == prev {
			break
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return n, ms.HeapInuse
}

func TestFanOutAndBlockedSink(t *testing.T) {
	r := start(t, func(c *config.Config) {
		c.Video.Width, c.Video.Height = 320, 240
		c.Video.BitrateKbps = 300
		c.Video.KeyframeInterval = config.Duration(time.Second)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const viewers = 20
	clients := make([]*whepclient.Client, viewers)
	for i := range clients {
		c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	for _, c := range clients {
		for c.Stats().Connected.IsZero() {
			if ctx.Err() != nil {
				t.Fatal("viewers did not connect")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// An in-process sink whose consumer blocks, as a stuck writer would.
	hub := r.d.Hub()
	stuck := hub.AddSink(broadcast.SinkOptions{Name: "stuck", Queue: 16})
	defer stuck.Close()

	// Count what the hub publishes while live with a sink that keeps up.
	counter := hub.AddSink(broadcast.SinkOptions{Name: "counter", Queue: 1024})
	defer counter.Close()
	var published int
	counted := make(chan struct{})
	counterCtx, stopCounter := context.WithCancel(ctx)
	go func() {
		defer close(counted)
		for {
			s, err := counter.Next(counterCtx)
			if err != nil {
				return
			}
			if s.Kind == media.Video {
				published++
			}
		}
	}()

	r.goLive(t)
	time.Sleep(2 * time.Second)
	if stuck.Dropped() == 0 {
		t.Fatal("the stuck sink never dropped: was it really full?")
	}
	// The stuck consumer comes back: it resumes at a keyframe, never in the
	// middle of a group of pictures.
	got, err := stuck.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != media.Video || !got.Keyframe {
		t.Fatalf("after dropping, the stuck sink resumed with a %s sample, keyframe=%v", got.Kind, got.Keyframe)
	}
	if code, _ := r.admin(t, http.MethodDelete, "/api/live", ""); code != 200 {
		t.Fatal("stop failed")
	}
	time.Sleep(500 * time.Millisecond)
	stopCounter()
	<-counted
	if published < 45 {
		t.Fatalf("only %d frames published in 2 s", published)
	}
	for i, c := range clients {
		st := c.Stats()
		if st.VideoFrames != published {
			t.Errorf("viewer %d got %d of %d frames (lost packets %d)", i, st.VideoFrames, published, st.VideoPacketsLost)
		}
		if !st.FirstFrameIsKeyframe {
			t.Errorf("viewer %d: first frame not a keyframe with SPS/PPS", i)
		}
	}
	if r.d.Hub().Counters().Dropped["whep"] != 0 {
		t.Fatalf("viewers dropped samples: %+v", r.d.Hub().Counters().Dropped)
	}
}

func TestKeyframeRequestsSpaced(t *testing.T) {
	r := start(t, func(c *config.Config) {
		c.Video.Width, c.Video.Height = 320, 240
		c.Video.BitrateKbps = 300
		c.Video.KeyframeInterval = config.Duration(20 * time.Second)
		c.Video.KeyframeMinInterval = config.Duration(150 * time.Millisecond)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watcher, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	r.goLive(t)
	if err := watcher.WaitVideoFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	// 10 joins within 200 ms.
	var joiners []*whepclient.Client
	for i := 0; i < 10; i++ {
		c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{PLIOnFirstPacket: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		joiners = append(joiners, c)
		time.Sleep(20 * time.Millisecond)
	}
	// A PLI storm from the watcher: 100 PLIs over one second.
	for i := 0; i < 100; i++ {
		watcher.SendPLI()
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range joiners {
		if err := c.WaitVideoFrames(ctx, 3); err != nil {
			t.Fatal(err)
		}
		if !c.Stats().FirstFrameIsKeyframe {
			t.Fatal("a joiner's first frame was not a keyframe with SPS/PPS")
		}
	}
	ts := watcher.Stats().KeyframeTimestamps
	if len(ts) < 3 {
		t.Fatalf("only %d keyframes during joins and a PLI storm", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if gap := time.Duration(ts[i]-ts[i-1]) * time.Second / 90000; gap < 150*time.Millisecond {
			t.Fatalf("keyframes %v apart (RTP), minimum spacing is 150ms: %v", gap, ts)
		}
	}
	t.Logf("%d keyframes during 10 joins and 100 PLIs", len(ts))
	if forced := r.d.Hub().Counters().KeyframesForced; forced > uint64(len(ts))+2 {
		t.Fatalf("hub forced %d keyframes, the watcher saw %d", forced, len(ts))
	}
}

func TestAdminPreviewPlaysWhileIdle(t *testing.T) {
	r := start(t, func(c *config.Config) { c.Video.Width, c.Video.Height = 320, 240 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := whepclient.Dial(ctx, r.base+"/api/whep?preview=1", whepclient.Options{}); err == nil {
		t.Fatal("a preview without the admin token was answered")
	} else if se, ok := err.(*whepclient.StatusError); !ok || se.Code != http.StatusUnauthorized {
		t.Fatalf("preview without token: %v, want 401", err)
	}
	if _, err := whepclient.Dial(ctx, r.base+"/api/whep?preview=1", whepclient.Options{Token: "wrong"}); err == nil {
		t.Fatal("a preview with a wrong token was answered")
	} else if se, ok := err.(*whepclient.StatusError); !ok || se.Code != http.StatusForbidden {
		t.Fatalf("preview with wrong token: %v, want 403", err)
	}
	preview, err := whepclient.Dial(ctx, r.base+"/api/whep?preview=1", whepclient.Options{Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	defer preview.Close()
	viewer, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	if err := preview.WaitVideoFrames(ctx, 15); err != nil {
		t.Fatal(err)
	}
	if !preview.Stats().FirstFrameIsKeyframe {
		t.Fatal("the preview's first frame was not a keyframe")
	}
	if st := viewer.Stats(); st.VideoFrames != 0 || st.AudioPackets != 0 {
		t.Fatalf("a viewer got media while idle next to a preview: %+v", st)
	}
	if st := r.d.Status(); st.State != "idle" {
		t.Fatalf("state %s: a preview must not go live", st.State)
	}
	if st := r.d.Status(); st.Viewers != 1 {
		t.Fatalf("%d viewers with one viewer and the console's preview connected, want 1", st.Viewers)
	}
}

func TestStatusMetricsHealth(t *testing.T) {
	r := start(t, nil)
	code, body := r.call(t, http.MethodGet, "/api/status", "", nil)
	var public map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &public) != nil {
		t.Fatalf("public status: %d %s", code, body)
	}
	for _, hidden := range []string{"video", "board", "firmware", "error"} {
		if _, ok := public[hidden]; ok {
			t.Fatalf("public status shows %q: %s", hidden, body)
		}
	}
	r.goLive(t)
	code, body = r.admin(t, http.MethodGet, "/api/status", "")
	var full map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &full) != nil {
		t.Fatalf("admin status: %d %s", code, body)
	}
	for _, key := range []string{"state", "title", "private", "live_since", "viewers", "viewers_peak", "video", "audio",
		"camera_connected", "uplink", "recording", "storage_free_mb", "board", "firmware", "uptime_s", "error"} {
		if _, ok := full[key]; !ok {
			t.Errorf("full status lacks %q", key)
		}
	}
	if full["state"] != "live" || full["title"] != "Test" {
		t.Fatalf("status after go live: %s", body)
	}
	code, body = r.call(t, http.MethodGet, "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{`onair_state{state="live"} 1`, `onair_state{state="idle"} 0`, "onair_viewers 0",
		"onair_viewers_peak", "onair_video_fps", "onair_video_bitrate_kbps", "onair_keyframes_forced_total",
		`onair_audio_level_dbfs{kind="rms"}`, "onair_uplink_up 0", "onair_recording_bytes_total", "onair_storage_free_bytes",
		"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, body = r.call(t, http.MethodGet, "/healthz", "", nil)
	if code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	// Title changes while live, and the button toggles through the same path.
	if code, body = r.admin(t, http.MethodPatch, "/api/broadcast", `{"title":"Second half"}`); code != 200 || !strings.Contains(body, "Second half") {
		t.Fatalf("patch title: %d %s", code, body)
	}
	if code, body = r.admin(t, http.MethodPost, "/api/button", `{"press":"short"}`); code != 200 || !strings.Contains(body, `"state":"idle"`) {
		t.Fatalf("button press while live: %d %s", code, body)
	}
}

func TestMaxViewersAndOneUDPPort(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	r := start(t, func(c *config.Config) {
		c.Video.Width, c.Video.Height = 320, 240
		c.WebRTC.MaxViewers = 2
		c.WebRTC.UDPPort = port
		c.WebRTC.AdditionalHosts = []string{"203.0.113.7"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var clients []*whepclient.Client
	for i := 0; i < 2; i++ {
		c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	_, err = whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	var se *whepclient.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !strings.Contains(se.Body, "maximum number of viewers") {
		t.Fatalf("third viewer with max_viewers 2: %v, want 503 with a clear error", err)
	}
	// Every host candidate in the answers is on the one configured port, and
	// the additional host is announced.
	answer := clients[0].RemoteSDP()
	var candidates int
	for _, line := range strings.Split(answer, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") || !strings.Contains(line, "typ host") {
			continue
		}
		candidates++
		f := strings.Fields(line)
		if f[5] != strconv.Itoa(port) {
			t.Fatalf("candidate on port %s, webrtc.udp_port is %d: %s", f[5], port, line)
		}
	}
	if candidates == 0 || !strings.Contains(answer, "203.0.113.7 "+strconv.Itoa(port)) {
		t.Fatalf("answer lacks host candidates on port %d or the additional host:\n%s", port, answer)
	}
	// Media flows over the shared port.
	r.goLive(t)
	for _, c := range clients {
		if err := c.WaitVideoFrames(ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	// One leaves: a new viewer fits again.
	clients[1].Close()
	c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	c.Close()
}

// TestLossyViewerRecovers drops one video packet in five at the viewer: NACKs
// bring them back over RTX and the stream still decodes without an error.
func TestLossyViewerRecovers(t *testing.T) {
	r := start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{RecordH264: true, DropVideoEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	encodedBefore := r.d.pipeline.Stats().FramesEncoded
	r.goLive(t)
	if err := client.WaitVideoFrames(ctx, 90); err != nil {
		t.Fatal(err)
	}
	r.admin(t, http.MethodDelete, "/api/live", "")
	encoded := r.d.pipeline.Stats().FramesEncoded - encodedBefore
	time.Sleep(300 * time.Millisecond)
	st := client.Stats()
	if client.Dropped() < 10 {
		t.Fatalf("only %d packets dropped: the test did not make loss", client.Dropped())
	}
	t.Logf("dropped %d packets; received %d frames of %d encoded; %d keyframes", client.Dropped(), st.VideoFrames, encoded, st.Keyframes)
	_, _, frames := ffprobeFrames(t, client.H264()) // fails on any decode error
	if float64(frames) < float64(encoded)*0.9 {
		t.Fatalf("decoded %d frames of %d encoded: lost packets were not recovered", frames, encoded)
	}
}

func TestTitleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first := start(t, func(c *config.Config) { c.DataDir = dir; c.Video.Width, c.Video.Height = 320, 240 })
	if code, body := first.admin(t, http.MethodPatch, "/api/broadcast", `{"title":"Day two"}`); code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "settings.json"))
		if strings.Contains(string(b), "Day two") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("title not saved: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.stop()
	second := start(t, func(c *config.Config) { c.DataDir = dir; c.Video.Width, c.Video.Height = 320, 240 })
	if st, _ := second.d.Hub().Status(); st.Title != "Day two" {
		t.Fatalf("title after restart: %q", st.Title)
	}
}

func TestWatchdogFedAndDisarmedOnStop(t *testing.T) {
	wd := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(wd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := startWith(t, func(c *config.Config) { c.Video.Width, c.Video.Height = 320, 240 }, Options{Watchdog: wd})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := os.Stat(wd); st.Size() > 0 {
			break // fed
		}
		if time.Now().After(deadline) {
			t.Fatal("the watchdog was never fed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stop()
	b, _ := os.ReadFile(wd)
	if !bytes.HasSuffix(b, []byte("V")) {
		t.Fatalf("a clean stop must disarm the watchdog with the magic V; wrote %q", b)
	}
}

// TestBoardInStatusAndMetrics lays out a Raspberry Pi's /proc and /sys: the
// model, serial, temperature and under-voltage alarm reach the status and
// /metrics, and the serial names the box.
func TestBoardInStatusAndMetrics(t *testing.T) {
	root := t.TempDir()
	write := func(path, content string) {
		p := filepath.Join(root, path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")
	write("proc/device-tree/serial-number", "10000000abcdef12\x00")
	write("sys/class/thermal/thermal_zone0/temp", "61234\n")
	write("sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1/in0_lcrit_alarm", "1\n")
	r := startWith(t, nil, Options{Board: board.Reader{Root: root}})
	defer r.stop()
	b := r.d.Status().Board
	if b.Model != "Raspberry Pi 4 Model B Rev 1.4" || b.Serial != "10000000abcdef12" || b.TemperatureC != 61.234 || !b.Throttled {
		t.Fatalf("board %+v", b)
	}
	if r.d.deviceID != "onair-abcdef12" {
		t.Fatalf("device id %q, want it from the serial", r.d.deviceID)
	}
	_, m := r.call(t, http.MethodGet, "/metrics", "", nil)
	for _, want := range []string{"onair_board_temperature_celsius 61.234", "onair_board_throttled 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
