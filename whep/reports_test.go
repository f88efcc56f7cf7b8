package whep

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/onair/onair/internal/whepclient"
)

// A pion viewer gets the box's sender reports for both streams about once
// a second, and what they say holds: counts that grow with the media, and
// an RTP clock that keeps pace with the NTP time beside it (what a browser
// times audio against video with).
func TestSenderReports(t *testing.T) {
	box := startBox(t, Options{})
	box.goLive(t)
	c := dial(t, box, whepclient.Options{})
	waitFrames(t, c, 10)
	st := waitReports(t, c, 4)
	for _, stream := range []struct {
		name    string
		rate    float64
		reports []whepclient.SenderReport
	}{{"video", 90000, st.VideoReports}, {"audio", 48000, st.AudioReports}} {
		for i := 1; i < len(stream.reports); i++ {
			r, p := stream.reports[i], stream.reports[i-1]
			if r.Packets <= p.Packets || r.Octets <= p.Octets {
				t.Errorf("%s report %d: %d packets, %d bytes; the one before: %d, %d", stream.name, i, r.Packets, r.Octets, p.Packets, p.Octets)
			}
			wall := float64(r.NTPTime-p.NTPTime) / (1 << 32)
			media := float64(r.RTPTime-p.RTPTime) / stream.rate
			if wall < 0.5 || wall > 1.5 {
				t.Errorf("%s reports %d and %d are %.3f s apart, want about a second", stream.name, i-1, i, wall)
			}
			// The fake encoder stamps samples with the time they are made;
			// each report maps the time it is sent at through the sample
			// since the last report that waited least to be sent.
			if math.Abs(wall-media) > 0.1 {
				t.Errorf("%s reports %d and %d: %.3f s apart on the NTP clock, %.3f s on the RTP clock", stream.name, i-1, i, wall, media)
			}
		}
	}
	// The fake encoder's audio packets all carry 120 bytes.
	for i, r := range st.AudioReports {
		if r.Octets != 120*r.Packets {
			t.Errorf("audio report %d: %d bytes in %d packets, want 120 a packet", i, r.Octets, r.Packets)
		}
	}
	// Every packet counted was sent before its report, and none is lost on
	// loopback: the viewer has them all.
	last := st.VideoReports[len(st.VideoReports)-1]
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && c.Stats().VideoPackets < int(last.Packets) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.Stats().VideoPackets; got < int(last.Packets) {
		t.Errorf("the last video report counts %d packets, the viewer got %d", last.Packets, got)
	}
}

// With the capture clock, the two streams' reports tie the wall clock to
// the same capture time, though pictures reach the viewer later than the
// sound captured with them (an encoder's delay): the browser then plays
// them together.
func TestSenderReportsLineUpAudioAndVideo(t *testing.T) {
	const encoderDelay = 60 * time.Millisecond
	box := startBoxWith(t, Options{}, fakeOptions{videoDelay: encoderDelay})
	box.goLive(t)
	c := dial(t, box, whepclient.Options{})
	waitFrames(t, c, 10)
	st := waitReports(t, c, 2)
	box.server.mu.Lock()
	var sess *session
	for _, s := range box.server.sessions {
		sess = s
	}
	box.server.mu.Unlock()
	if sess == nil || sess.video == nil || sess.audio == nil {
		t.Fatal("no session with tracks on the server")
	}
	// offset is wall clock minus capture time, as a report says it.
	offset := func(r whepclient.SenderReport, tsBase uint32, rate float64) float64 {
		wall := float64(r.NTPTime>>32) + float64(r.NTPTime&0xffffffff)/(1<<32)
		return wall - float64(r.RTPTime-tsBase)/rate
	}
	for i := 1; i < min(len(st.VideoReports), len(st.AudioReports)); i++ {
		video := offset(st.VideoReports[i], sess.video.tsBase, 90000)
		audio := offset(st.AudioReports[i], sess.audio.tsBase, 48000)
		if d := video - audio; math.Abs(d) > 0.01 {
			t.Errorf("report %d: video's capture times are %+.1f ms off audio's on the wall clock, want the same (the encoder's delay is %v)",
				i, d*1000, encoderDelay)
		}
	}
}

// waitReports waits until the viewer has n sender reports of each stream.
func waitReports(t *testing.T, c *whepclient.Client, n int) whepclient.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		st := c.Stats()
		if len(st.VideoReports) >= n && len(st.AudioReports) >= n {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d video and %d audio sender reports in 20 s, want %d each", len(st.VideoReports), len(st.AudioReports), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
