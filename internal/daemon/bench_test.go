//go:build cgo

package daemon

import (
	"context"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	periphgpio "periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/gpio/gpiofake"
	"github.com/onair/onair/internal/whepclient"
)

// hd is the box's default picture: 1280x720 at 30 fps, 2.5 Mbit/s.
func hd(c *config.Config) {
	d := config.Default()
	c.Video.Width, c.Video.Height, c.Video.BitrateKbps = d.Video.Width, d.Video.Height, d.Video.BitrateKbps
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// connectedViewer dials a WHEP viewer and waits until its connection is up.
func connectedViewer(b *testing.B, r *running) *whepclient.Client {
	b.Helper()
	client, err := whepclient.Dial(context.Background(), r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for client.Stats().Connected.IsZero() {
		time.Sleep(5 * time.Millisecond)
	}
	return client
}

func reportLatency(b *testing.B, name string, d []time.Duration) {
	b.ReportMetric(float64(percentile(d, 0.5).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(percentile(d, 0.95).Microseconds())/1000, name+"-p95-ms")
}

// BenchmarkGoLive measures POST /api/live -> first keyframe at a viewer that
// was connected while idle, at 720p30 with x264.
func BenchmarkGoLive(b *testing.B) {
	r := start(b, hd)
	client := connectedViewer(b, r)
	defer client.Close()
	var lat []time.Duration
	for b.Loop() {
		before := client.Stats().Keyframes
		at := time.Now()
		r.goLive(b)
		for client.Stats().Keyframes == before {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(at))
		if code, body := r.admin(b, http.MethodDelete, "/api/live", ""); code != http.StatusOK {
			b.Fatalf("stop: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reportLatency(b, "golive-keyframe", lat)
	r.stop()
}

// BenchmarkJoinLive measures a viewer joining a live box: offer -> first
// keyframe, with the 2 s regular keyframe interval (so a fast join is a
// forced keyframe, not luck).
func BenchmarkJoinLive(b *testing.B) { benchmarkJoinLive(b, hd) }

// BenchmarkJoinLiveSharedPort is BenchmarkJoinLive with every viewer on one
// UDP port (webrtc.udp_port, the box's default), whose sends are batched.
func BenchmarkJoinLiveSharedPort(b *testing.B) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	benchmarkJoinLive(b, func(c *config.Config) { hd(c); c.WebRTC.UDPPort = port })
}

func benchmarkJoinLive(b *testing.B, mutate func(*config.Config)) {
	r := start(b, mutate)
	ctx := context.Background()
	r.goLive(b)
	var lat []time.Duration
	for b.Loop() {
		at := time.Now()
		c, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{PLIOnFirstPacket: true})
		if err != nil {
			b.Fatal(err)
		}
		for c.Stats().FirstKeyframe.IsZero() {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, c.Stats().FirstKeyframe.Sub(at))
		c.Close()
		time.Sleep(200 * time.Millisecond) // past the keyframe spacing
	}
	reportLatency(b, "join-keyframe", lat)
	r.stop()
}

// BenchmarkPressToKeyframe measures the crew's button: the release edge of a
// short press on the (fake) GPIO line -> first keyframe at a viewer that
// was connected while idle. A short press is known on release, after the
// debounce; each iteration then stops the broadcast again.
func BenchmarkPressToKeyframe(b *testing.B) {
	button := gpiofake.NewLivePin("GPIO17", 17)
	button.Drive(periphgpio.High)
	r := startWith(b, hd, Options{Pins: &Pins{Button: button}})
	ctx := context.Background()
	client := connectedViewer(b, r)
	defer client.Close()
	hub := r.d.Hub()
	var lat []time.Duration
	for b.Loop() {
		before := client.Stats().Keyframes
		button.Drive(periphgpio.Low)
		time.Sleep(100 * time.Millisecond) // held like a finger, past the 30 ms debounce
		released := time.Now()
		button.Drive(periphgpio.High)
		for client.Stats().Keyframes == before {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(released))
		for st, _ := hub.Status(); st.State != broadcast.Live; st, _ = hub.Status() {
			time.Sleep(time.Millisecond)
		}
		if _, err := hub.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // past the keyframe spacing
	}
	reportLatency(b, "press-keyframe", lat)
	r.stop()
}
