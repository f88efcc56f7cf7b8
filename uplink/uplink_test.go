package uplink

import (
	"context"
	"encoding/base64"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/media"
)

// A live broadcast reaches the server with the bearer token, the first
// picture is a keyframe, stopping sends DELETE, and the states go
// off -> connecting -> up -> off.
func TestSendsBroadcastAndDeletesOnStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "s3cret", nil)
	r := newRig(t, 800)
	var log statusLog
	var bitrates []int
	up := startUplink(t, Options{
		URL: srv.url(), BearerToken: "s3cret", Hub: r.hub,
		MinBitrateKbps: 300, MaxBitrateKbps: 1000, StartBitrateKbps: 1200,
		SetBitrate: func(kbps int) { bitrates = append(bitrates, kbps); r.pub.SetBitrate(kbps) },
		OnStatus:   log.add,
	})
	if st, _ := up.Status(); st.State != Off {
		t.Fatalf("state before going live = %s, want off", st.State)
	}
	r.goLive(t)
	st := waitState(ctx, t, up.Uplink, Up)
	if st.BitrateKbps != 1000 {
		t.Errorf("bitrate = %d kbps, want the start bitrate within the bounds (1000)", st.BitrateKbps)
	}
	sess := srv.waitFrames(ctx, 30)
	srv.wait(ctx, "audio", func(*whipServer) bool { _, _, audio, _ := sess.stats(); return audio >= 20 })
	frames, _, audio, firstIsKey := sess.stats()
	if !firstIsKey {
		t.Error("the first picture at the server is not a keyframe with SPS and PPS")
	}
	srv.mu.Lock()
	post := srv.posts[0]
	srv.mu.Unlock()
	if got := post.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q, want the bearer token", got)
	}
	if got := post.Get("Content-Type"); got != "application/sdp" {
		t.Errorf("Content-Type = %q", got)
	}
	t.Logf("received %d video frames, %d audio packets", frames, audio)
	sess.mu.Lock()
	answer := sess.answer
	sess.mu.Unlock()
	for _, want := range []string{"rtx/90000", "transport-cc", "nack"} {
		if !strings.Contains(strings.ToLower(answer), want) {
			t.Errorf("the server's answer lacks %s: not negotiated", want)
		}
	}

	r.stopLive(t)
	waitState(ctx, t, up.Uplink, Off)
	srv.wait(ctx, "DELETE of the session", func(s *whipServer) bool { return slices.Contains(s.deletes, sess.id) })
	if got, want := log.states(), []State{Connecting, Up, Off}; !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	if last := bitrates[len(bitrates)-1]; last != 1200 {
		t.Errorf("encoder bitrate after the broadcast = %d, want the configured 1200 back", last)
	}

	// Going live again makes a new session.
	r.goLive(t)
	waitState(ctx, t, up.Uplink, Up)
	if sess2 := srv.waitFrames(ctx, 5); sess2 == sess {
		t.Error("no new session for the second broadcast")
	}
	up.stop()
	srv.wait(ctx, "DELETE when the uplink ends", func(s *whipServer) bool { return len(s.deletes) == 2 })
	if st, _ := up.Status(); st.State != Off {
		t.Errorf("state after Run returned = %s", st.State)
	}
}

// The server fails in every way a server fails; the uplink retries with
// capped exponential backoff (on the fake clock), says why in its status,
// and after each reconnect the server's first picture is a keyframe.
func TestReconnectsWithBackoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", nil)
	srv.set(func(s *whipServer) { s.refuse = 503 })
	r := newRig(t, 500)
	clock := newFakeClock()
	var log statusLog
	up := startUplink(t, Options{
		URL: srv.url(), Hub: r.hub, MinBitrateKbps: 200, MaxBitrateKbps: 1000,
		SetBitrate: r.pub.SetBitrate, OnStatus: log.add, Clock: clock,
		Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second, Jitter: 0.2},
	})
	viewer := watchViewer(t, r)
	r.goLive(t)

	// 503 three times: 1 s, 2 s, 4 s (each ±20 %).
	for i, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		st := waitFailures(ctx, t, up.Uplink, i+1)
		if !strings.Contains(st.Error, "503") || st.Failures != i+1 {
			t.Fatalf("retry %d: error %q, failures %d", i, st.Error, st.Failures)
		}
		d := clock.waitBackoff(ctx, t)
		checkDelay(t, d, base, 0.2)
		if i == 2 {
			srv.set(func(s *whipServer) { s.refuse = 0 })
		}
		clock.Advance(d)
	}
	waitState(ctx, t, up.Uplink, Up)
	requireKeyframeFirst(ctx, t, srv, 1)

	// Connection lost mid-broadcast; the backoff stays at its cap (4 s).
	srv.dropAll()
	st := waitFailures(ctx, t, up.Uplink, 4)
	if st.Error == "" || st.DownSince.IsZero() {
		t.Fatalf("after a drop: %+v", st)
	}
	d := clock.waitBackoff(ctx, t)
	checkDelay(t, d, 4*time.Second, 0.2)
	clock.Advance(d)
	waitState(ctx, t, up.Uplink, Up)
	requireKeyframeFirst(ctx, t, srv, 2)

	// The server goes away and comes back on the same address.
	srv.stop()
	st = waitFailures(ctx, t, up.Uplink, 5)
	t.Logf("server down: %s", st.Error)
	clock.Advance(clock.waitBackoff(ctx, t))
	st = waitFailures(ctx, t, up.Uplink, 6) // refused again: the server is still down
	if !strings.Contains(st.Error, "refused") {
		t.Errorf("server down: error %q, want connection refused", st.Error)
	}
	srv.start()
	clock.Advance(clock.waitBackoff(ctx, t))
	waitState(ctx, t, up.Uplink, Up)
	requireKeyframeFirst(ctx, t, srv, 3)
	if st, _ := up.Status(); st.Error != "" || !st.DownSince.IsZero() {
		t.Errorf("up again but status keeps the failure: %+v", st)
	}

	viewer.check(t)

	states := log.states()
	want := []State{Connecting, Retrying, Connecting, Retrying, Connecting, Retrying, Connecting, Up, Retrying, Connecting, Up}
	if len(states) < len(want) || !slices.Equal(states[:len(want)], want) {
		t.Errorf("states = %v, want them to start with %v", states, want)
	}
}

func checkDelay(t *testing.T, d, base time.Duration, jitter float64) {
	t.Helper()
	lo, hi := time.Duration(float64(base)*(1-jitter)), time.Duration(float64(base)*(1+jitter))
	if d < lo || d > hi {
		t.Errorf("backoff %s, want %s ±%.0f%%", d, base, jitter*100)
	} else {
		t.Logf("backoff %s (base %s)", d.Round(time.Millisecond), base)
	}
}

// requireKeyframeFirst waits for the nth accepted session to receive
// pictures and checks that the first was a keyframe.
func requireKeyframeFirst(ctx context.Context, t *testing.T, srv *whipServer, n int) {
	t.Helper()
	srv.wait(ctx, "session", func(s *whipServer) bool { return len(s.sessions) >= n })
	sess := srv.waitFrames(ctx, 5)
	if sess.id != strconv.Itoa(n) {
		t.Fatalf("frames arrived on session %s, want %d", sess.id, n)
	}
	if _, _, _, first := sess.stats(); !first {
		t.Errorf("session %d: the first picture after (re)connecting is not a keyframe", n)
	}
}

// Refusals end up in the status as one clear sentence, and a hundred failed
// attempts leave no goroutines behind.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(s *whipServer)
		token     string
		wantError string
		attempts  int
	}{
		{"wrong token", func(*whipServer) {}, "wrong", "HTTP 401", 3},
		{"server error", func(s *whipServer) { s.refuse = 500 }, "right", "HTTP 500", 100},
		{"garbage answer", func(s *whipServer) { s.garbage = true }, "right", "not SDP", 3},
		{"hanging server", func(s *whipServer) { s.hang = true }, "right", "Timeout", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.attempts > 10 {
				tc.attempts = 10
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			srv := newWHIPServer(t, "right", nil)
			srv.set(tc.setup)
			r := newRig(t, 300)
			clock := newFakeClock()
			up := startUplink(t, Options{
				URL: srv.url(), BearerToken: tc.token, Hub: r.hub, MinBitrateKbps: 200, MaxBitrateKbps: 500,
				Clock: clock, HTTPClient: &http.Client{Timeout: 500 * time.Millisecond},
			})
			r.goLive(t)
			var baseline int
			for i := range tc.attempts {
				st := waitFailures(ctx, t, up.Uplink, i+1)
				if !strings.Contains(st.Error, tc.wantError) {
					t.Fatalf("attempt %d: error %q, want it to contain %q", i+1, st.Error, tc.wantError)
				}
				if i == 0 {
					t.Logf("status error: %s", st.Error)
				}
				if i == 1 {
					baseline = runtime.NumGoroutine()
				}
				clock.Advance(clock.waitBackoff(ctx, t))
			}
			if tc.attempts > 10 {
				// Let closed connections' goroutines finish before counting.
				deadline := time.Now().Add(5 * time.Second)
				n := runtime.NumGoroutine()
				for n > baseline+5 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
					n = runtime.NumGoroutine()
				}
				if n > baseline+5 {
					t.Errorf("goroutines grew from %d to %d over %d failed attempts", baseline, n, tc.attempts)
				}
				t.Logf("goroutines: %d after the 2nd attempt, %d after the %dth", baseline, n, tc.attempts)
			}
			if got := srv.postCount(); got < tc.attempts {
				t.Errorf("%d offers posted, want %d", got, tc.attempts)
			}
			r.stopLive(t)
			waitState(ctx, t, up.Uplink, Off)
		})
	}
}

// A REMB from the server caps the bitrate.
func TestREMBCapsBitrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", nil)
	srv.set(func(s *whipServer) { s.remb = 500_000 })
	r := newRig(t, 1500)
	up := startUplink(t, Options{
		URL: srv.url(), Hub: r.hub, MinBitrateKbps: 200, MaxBitrateKbps: 2000, StartBitrateKbps: 1500,
		SetBitrate: r.pub.SetBitrate,
	})
	r.goLive(t)
	for {
		st, changed := up.Status()
		if st.State == Up && st.BitrateKbps <= 425 {
			t.Logf("bitrate %d kbps under a REMB of 500 kbps", st.BitrateKbps)
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("bitrate stays at %d kbps under a REMB of 500 kbps", st.BitrateKbps)
		}
	}
	if got := r.pub.bitrateKbps.Load(); got > 425 {
		t.Errorf("encoder at %d kbps", got)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	hub := broadcast.New(broadcast.Options{})
	for _, opt := range []Options{
		{URL: "ftp://x/whip", Hub: hub, MinBitrateKbps: 1, MaxBitrateKbps: 2},
		{URL: "http://x/whip", MinBitrateKbps: 1, MaxBitrateKbps: 2},
		{URL: "http://x/whip", Hub: hub, MinBitrateKbps: 300, MaxBitrateKbps: 200},
	} {
		if _, err := New(opt); err == nil {
			t.Errorf("New(%+v) accepted", opt)
		}
	}
}

// A user and password in the URL go out as Basic auth (MediaMTX's internal
// users), on the offer and on the DELETE, and stay out of the status.
func TestBasicAuthFromURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", nil)
	r := newRig(t, 300)
	up := startUplink(t, Options{
		URL: strings.Replace(srv.url(), "http://", "http://cam:pa55@", 1), Hub: r.hub,
		MinBitrateKbps: 200, MaxBitrateKbps: 500,
	})
	r.goLive(t)
	waitState(ctx, t, up.Uplink, Up)
	srv.waitFrames(ctx, 1)
	r.stopLive(t)
	srv.wait(ctx, "DELETE", func(s *whipServer) bool { return len(s.deletes) == 1 })
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("cam:pa55"))
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := srv.posts[0].Get("Authorization"); got != want {
		t.Errorf("offer Authorization = %q, want %q", got, want)
	}
	if got := srv.deleteAuth[0]; got != want {
		t.Errorf("DELETE Authorization = %q, want %q", got, want)
	}
}

// viewerWatch is a local viewer's sink beside the uplink: it must receive
// every picture, whatever the uplink goes through.
type viewerWatch struct {
	hub    *broadcast.Hub
	cancel context.CancelFunc
	done   chan struct{}
	frames int
	gaps   int
}

func watchViewer(t *testing.T, r *rig) *viewerWatch {
	ctx, cancel := context.WithCancel(context.Background())
	v := &viewerWatch{hub: r.hub, cancel: cancel, done: make(chan struct{})}
	sink := r.hub.AddSink(broadcast.SinkOptions{Name: "whep"})
	go func() {
		defer close(v.done)
		defer sink.Close()
		var last time.Duration
		for {
			s, err := sink.Next(ctx)
			if err != nil {
				return
			}
			if s.Kind != media.Video {
				continue
			}
			if d := s.Capture - last; v.frames > 0 && (d-time.Second/30).Abs() > time.Millisecond {
				v.gaps++
			}
			last = s.Capture
			v.frames++
		}
	}()
	t.Cleanup(func() { cancel(); <-v.done })
	return v
}

func (v *viewerWatch) check(t *testing.T) {
	t.Helper()
	v.cancel()
	<-v.done
	dropped := v.hub.Counters().Dropped["whep"]
	t.Logf("local viewer: %d pictures, %d gaps, %d dropped", v.frames, v.gaps, dropped)
	if v.frames == 0 || v.gaps > 0 || dropped > 0 {
		t.Errorf("the local viewer noticed the uplink's trouble: %d pictures, %d gaps, %d dropped", v.frames, v.gaps, dropped)
	}
}
