package whep

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/internal/whepclient"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// testBox is a hub with a WHEP server behind an HTTP endpoint, and a fake
// encoder publishing 30 synthetic H.264 pictures a second (an IDR with
// SPS/PPS whenever a keyframe is due or asked for) and Opus-sized audio.
type testBox struct {
	hub    *broadcast.Hub
	server *Server
	url    string
	stop   func()
}

// fakeOptions shape the fake encoder's output.
type fakeOptions struct {
	// videoDelay is how long before publishing a picture it was captured
	// (an encoder's latency); audio is published as it is captured.
	videoDelay time.Duration
}

func startBox(t testing.TB, opt Options) *testBox {
	t.Helper()
	return startBoxWith(t, opt, fakeOptions{})
}

// startBoxWith starts a box whose fake encoder follows fake. The server
// gets the fake encoder's capture clock, as onaird gives it the pipeline's.
func startBoxWith(t testing.TB, opt Options, fake fakeOptions) *testBox {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end with pion viewers: runs natively, not with -short")
	}
	hub := broadcast.New(broadcast.Options{KeyframeMinInterval: 100 * time.Millisecond})
	opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if opt.MaxViewers == 0 {
		opt.MaxViewers = 100
	}
	start := time.Now().Add(-time.Second) // the capture clock had been running: captures stay positive with fake.videoDelay
	opt.CaptureClock = func() time.Duration { return time.Since(start) }
	server, err := New(hub, opt)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whep", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		answer, err := server.Offer(r.Context(), string(body), OfferOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Location", "/whep/"+answer.ID)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, answer.SDP)
	})
	mux.HandleFunc("DELETE /whep/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := server.Delete(r.PathValue("id")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	})
	web := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fakeEncoder(ctx, hub, start, fake) }()
	box := &testBox{hub: hub, server: server, url: web.URL + "/whep"}
	var once sync.Once
	box.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			web.Close()
			server.Close()
		})
	}
	t.Cleanup(box.stop)
	return box
}

func (b *testBox) goLive(t testing.TB) {
	t.Helper()
	if _, err := b.hub.GoLive(context.Background(), broadcast.LiveOptions{}); err != nil {
		t.Fatal(err)
	}
}

// fakeEncoder publishes 30 pictures and 50 audio packets a second until ctx
// ends, stamped on a capture clock that started at start. Pictures are 12 kB
// (ten RTP packets), keyframes 30 kB.
func fakeEncoder(ctx context.Context, hub *broadcast.Hub, start time.Time, fake fakeOptions) {
	video := time.NewTicker(time.Second / 30)
	defer video.Stop()
	audio := time.NewTicker(20 * time.Millisecond)
	defer audio.Stop()
	var n byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-audio.C:
			hub.Publish(media.Sample{Kind: media.Audio, Data: bytes.Repeat([]byte{0xfc, n}, 60),
				Capture: time.Since(start), Duration: 20 * time.Millisecond})
		case <-video.C:
			n++
			capture := time.Since(start) - fake.videoDelay
			key := hub.KeyframeDue(capture) || n%60 == 1
			hub.Publish(media.Sample{Kind: media.Video, Data: picture(key, n), Capture: capture,
				Duration: time.Second / 30, Keyframe: key})
		}
	}
}

func picture(key bool, n byte) []byte {
	var au []byte
	if key {
		au = h264.AppendAnnexB(au, []byte{0x67, 0x42, 0xc0, 0x1f, n})
		au = h264.AppendAnnexB(au, []byte{0x68, 0xce, 0x3c, 0x80})
		return h264.AppendAnnexB(au, append([]byte{0x65}, bytes.Repeat([]byte{n}, 30000)...))
	}
	return h264.AppendAnnexB(au, append([]byte{0x41}, bytes.Repeat([]byte{n}, 12000)...))
}

func dial(t testing.TB, box *testBox, opt whepclient.Options) *whepclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := whepclient.Dial(ctx, box.url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFrames(t testing.TB, c *whepclient.Client, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitVideoFrames(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func TestAnswerSDP(t *testing.T) {
	box := startBox(t, Options{})
	c := dial(t, box, whepclient.Options{})
	answer := c.RemoteSDP()
	for _, want := range []string{"a=rtcp-fb:102 nack", "a=rtcp-fb:102 nack pli", "a=rtcp-fb:102 ccm fir",
		"a=rtcp-fb:102 transport-cc", "a=rtpmap:103 rtx/90000", "a=fmtp:103 apt=102", "a=ssrc-group:FID",
		"a=rtpmap:111 opus/48000/2", "transport-wide-cc", "a=sendonly"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	if testing.Verbose() {
		t.Log(answer)
	}
}

// ports are the two ways viewers' media leave: each on its own random
// ports, or all on one shared port (webrtc.udp_port) with batched sends.
func ports(t *testing.T, test func(t *testing.T, opt Options)) {
	t.Run("own-ports", func(t *testing.T) { test(t, Options{}) })
	t.Run("shared-port", func(t *testing.T) {
		l, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		test(t, Options{UDPPort: port})
	})
}

// Every viewer starts at a keyframe with SPS/PPS, on its own SSRC, and gets
// every picture after it.
func TestViewersStartAtKeyframe(t *testing.T) { ports(t, testViewersStartAtKeyframe) }

func testViewersStartAtKeyframe(t *testing.T, opt Options) {
	box := startBox(t, opt)
	box.goLive(t)
	var clients []*whepclient.Client
	for range 4 {
		clients = append(clients, dial(t, box, whepclient.Options{}))
		time.Sleep(20 * time.Millisecond)
	}
	ssrcs := map[string]bool{}
	for i, c := range clients {
		waitFrames(t, c, 30)
		st := c.Stats()
		if !st.FirstFrameIsKeyframe {
			t.Errorf("viewer %d: first frame not a keyframe with SPS/PPS", i)
		}
		if st.VideoPacketsLost != 0 {
			t.Errorf("viewer %d: %d packets lost on loopback", i, st.VideoPacketsLost)
		}
		if st.AudioPackets == 0 {
			t.Errorf("viewer %d: no audio", i)
		}
		for _, line := range strings.Split(c.RemoteSDP(), "\n") {
			if strings.HasPrefix(line, "a=ssrc-group:FID ") {
				ssrcs[strings.TrimSpace(line)] = true
			}
		}
	}
	if len(ssrcs) != len(clients) {
		t.Fatalf("%d viewers but %d distinct video/RTX SSRC pairs", len(clients), len(ssrcs))
	}
}

// A viewer that loses one video packet in five gets them back over RTX:
// every picture it puts together is whole.
func TestLossyViewerRecovers(t *testing.T) { ports(t, testLossyViewerRecovers) }

func testLossyViewerRecovers(t *testing.T, opt Options) {
	box := startBox(t, opt)
	box.goLive(t)
	c := dial(t, box, whepclient.Options{DropVideoEvery: 5, RecordH264: true})
	waitFrames(t, c, 60)
	if c.Dropped() < 50 {
		t.Fatalf("only %d packets dropped: no loss was made", c.Dropped())
	}
	pictures, broken := 0, 0
	stream := c.H264()
	for nal, rest := h264.NextNAL(stream); nal != nil; nal, rest = h264.NextNAL(rest) {
		switch h264.Type(nal) {
		case 5:
			pictures++
			if len(nal) != 30001 {
				broken++
			}
		case 1:
			pictures++
			if len(nal) != 12001 {
				broken++
			}
		}
	}
	if pictures < 60 || broken > 0 {
		t.Fatalf("%d pictures put together, %d of them incomplete (%d packets dropped)", pictures, broken, c.Dropped())
	}
}

// A PLI from a viewer brings a keyframe.
func TestPLIBringsKeyframe(t *testing.T) {
	box := startBox(t, Options{})
	box.goLive(t)
	c := dial(t, box, whepclient.Options{})
	waitFrames(t, c, 5)
	time.Sleep(200 * time.Millisecond) // past the keyframe spacing
	before := c.Stats().Keyframes
	c.SendPLI()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Keyframes == before {
		if time.Now().After(deadline) {
			t.Fatal("no keyframe after a PLI")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
