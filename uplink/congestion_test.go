package uplink

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"
)

// Over pion's virtual network, a token bucket in front of the server caps
// the path below the bitrate in use: the uplink brings the encoder under
// the cap, and back up once the cap is lifted. Real time (the estimator
// measures real delays); the times are logged, the assertions have
// generous deadlines.
func TestCongestionMovesBitrate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about half a minute of real time")
	}
	const (
		startKbps = 1500
		capKbps   = 700
		openBps   = 100_000_000
	)
	path := newVirtualPath(t, openBps)
	bucket, boxNet, serverNet := path.bucket, path.box, path.server

	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", serverNet)
	defer srv.stop() // before the network goes away
	r := newRig(t, startKbps)
	up := startUplink(t, Options{
		URL: srv.url(), Hub: r.hub, MinBitrateKbps: 150, MaxBitrateKbps: 2500, StartBitrateKbps: startKbps,
		SetBitrate: r.pub.SetBitrate, Net: boxNet,
	})
	defer up.stop()
	r.goLive(t)
	waitState(ctx, t, up.Uplink, Up)
	sess := srv.waitFrames(ctx, 60)
	before, _ := up.Status()
	t.Logf("open path: bitrate %d kbps, estimate %d kbps, server receives %.0f kbps",
		before.BitrateKbps, before.EstimateKbps, receivedKbps(sess, time.Second))

	bucket.SetRate(capKbps * 1000)
	capped := time.Now()
	st := waitFor(ctx, t, up.Uplink, "bitrate under the cap", func(s Status) bool {
		return s.BitrateKbps < capKbps && s.BitrateKbps < before.BitrateKbps
	})
	t.Logf("cap %d kbps: bitrate %d kbps after %s (estimate %d kbps)", capKbps, st.BitrateKbps,
		time.Since(capped).Round(10*time.Millisecond), st.EstimateKbps)
	// Let it settle under the cap, and keep the lowest value seen.
	lowest := st.BitrateKbps
	settle := time.Now().Add(2 * time.Second)
	for time.Now().Before(settle) {
		s, changed := up.Status()
		lowest = min(lowest, s.BitrateKbps)
		select {
		case <-changed:
		case <-time.After(time.Until(settle)):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	t.Logf("under the cap: server receives %.0f kbps, lowest bitrate %d kbps", receivedKbps(sess, time.Second), lowest)

	bucket.SetRate(openBps)
	lifted := time.Now()
	st = waitFor(ctx, t, up.Uplink, "bitrate back up", func(s Status) bool {
		return s.BitrateKbps >= 2*lowest && s.BitrateKbps >= capKbps
	})
	t.Logf("cap lifted: bitrate %d kbps after %s (estimate %d kbps)", st.BitrateKbps,
		time.Since(lifted).Round(10*time.Millisecond), st.EstimateKbps)
	if st.State != Up {
		t.Errorf("state %s through congestion, want up all along", st.State)
	}
	if len(srv.sessions) != 1 {
		t.Errorf("%d sessions: congestion made the uplink reconnect", len(srv.sessions))
	}
}

// receivedKbps measures the server's received video rate over d.
func receivedKbps(s *serverSession, d time.Duration) float64 {
	start := s.bytes()
	time.Sleep(d)
	return float64(s.bytes()-start) * 8 / 1000 / d.Seconds()
}

// virtualPath is the box and the server on pion's virtual network; what
// reaches the server passes a token bucket (the box's uplink), and the link
// can be cut.
type virtualPath struct {
	box, server *vnet.Net
	bucket      *vnet.TBFQueue
	cut         atomic.Bool
	// lossPercent drops that share of packets, both ways, at random.
	lossPercent atomic.Int32
}

// vnetSetup serializes building virtual networks: pion's vnet hands out
// MAC addresses from an unguarded package counter (transport v5.1.4), which
// the race detector flags when parallel tests build networks together.
var vnetSetup sync.Mutex

func newVirtualPath(t *testing.T, bps int) *virtualPath {
	t.Helper()
	vnetSetup.Lock()
	defer vnetSetup.Unlock()
	p := &virtualPath{bucket: vnet.NewTBFQueue(bps, 4*1500, 60_000)}
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", MinDelay: 10 * time.Millisecond,
		LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	wan.AddChunkFilter(func(vnet.Chunk) bool {
		return !p.cut.Load() && rand.IntN(100) >= int(p.lossPercent.Load())
	})
	if p.box, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	if p.server, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.0.3"}}); err != nil {
		t.Fatal(err)
	}
	shaped, err := vnet.NewQueue(p.server, p.bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(p.box); err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(shaped); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the server's and the uplink's
	// cleanups: the network goes away last.
	t.Cleanup(func() { wan.Stop(); shaped.Close() })
	return p
}

// The link is cut for ten seconds in the middle of a broadcast: the uplink
// notices (ICE), retries, and media flows again, starting with a keyframe,
// soon after the link returns. Real time, short backoff.
func TestLinkCutReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about twenty seconds of real time")
	}
	// Runs beside other tests: it measures no rates, so sharing the CPU
	// does not change what it checks.
	t.Parallel()
	path := newVirtualPath(t, 100_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", path.server)
	r := newRig(t, 500)
	up := startUplink(t, Options{
		URL: srv.url(), Hub: r.hub, MinBitrateKbps: 200, MaxBitrateKbps: 1000, StartBitrateKbps: 500,
		SetBitrate: r.pub.SetBitrate, Net: path.box, Backoff: Backoff{Initial: 500 * time.Millisecond, Max: 2 * time.Second},
	})
	r.goLive(t)
	waitState(ctx, t, up.Uplink, Up)
	srv.waitFrames(ctx, 30)

	path.cut.Store(true)
	cutAt := time.Now()
	// The status leaves up once the server has been silent for
	// iceDisconnected, and the session ends after iceFailed; ICE looks
	// once per keepalive interval, and a busy machine adds some more.
	// Before: up for 7 s (pion adds the disconnected timeout to the
	// failed one) and more while the DELETE to the lost server waited.
	st := waitFor(ctx, t, up.Uplink, "state no longer up", func(s Status) bool { return s.State != Up })
	leftUp := time.Since(cutAt)
	t.Logf("cut: %s after %s: %s", st.State, leftUp.Round(10*time.Millisecond), st.Error)
	if leftUp > 2*iceDisconnected || st.DownSince.IsZero() {
		t.Errorf("cut: the status left up after %s (down since %v), want within about %s", leftUp.Round(10*time.Millisecond), st.DownSince, iceDisconnected)
	}
	st = waitState(ctx, t, up.Uplink, Retrying)
	retrying := time.Since(cutAt)
	t.Logf("cut: retrying after %s: %s", retrying.Round(10*time.Millisecond), st.Error)
	if retrying > iceFailed+3*iceKeepalive/2 {
		t.Errorf("cut: retrying only after %s, want about %s", retrying.Round(10*time.Millisecond), iceFailed)
	}
	select {
	case <-time.After(time.Until(cutAt.Add(10 * time.Second))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	path.cut.Store(false)
	restored := time.Now()
	srv.wait(ctx, "media on a new session", func(s *whipServer) bool {
		last := s.sessions[len(s.sessions)-1]
		frames, _, _, _ := last.stats()
		return len(s.sessions) > 1 && frames >= 5
	})
	srv.mu.Lock()
	last := srv.sessions[len(srv.sessions)-1]
	srv.mu.Unlock()
	t.Logf("link back: media again after %s (%d sessions)", time.Since(restored).Round(10*time.Millisecond), len(srv.sessions))
	if _, _, _, first := last.stats(); !first {
		t.Error("the first picture after the cut is not a keyframe")
	}
	if st, _ := up.Status(); st.State != Up {
		t.Errorf("state %s after the link returned", st.State)
	}
}

// Five percent of packets are lost at random, both ways: NACK and RTX
// repair nearly all of them, without a keyframe per loss.
func TestLossRepairedByRTX(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about ten seconds of real time")
	}
	// Runs beside other tests: it measures no rates, so sharing the CPU
	// does not change what it checks.
	t.Parallel()
	path := newVirtualPath(t, 100_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv := newWHIPServer(t, "", path.server)
	r := newRig(t, 800)
	up := startUplink(t, Options{
		URL: srv.url(), Hub: r.hub, MinBitrateKbps: 200, MaxBitrateKbps: 800, StartBitrateKbps: 800,
		SetBitrate: r.pub.SetBitrate, Net: path.box,
	})
	r.goLive(t)
	waitState(ctx, t, up.Uplink, Up)
	sess := srv.waitFrames(ctx, 30)
	keyframesBefore := r.pub.keyframes.Load()

	path.lossPercent.Store(5)
	from := sess.lastSeq()
	lossFrom := time.Now()
	// The window is counted in packets, not seconds: a test machine under
	// load sends fewer per second, and the check is about repair, not rate.
	srv.wait(ctx, "400 video packets under loss", func(*whipServer) bool {
		return sess.lastSeq()-from >= 400
	})
	// Packets near the end may still be on their way back as RTX.
	to := sess.lastSeq() - 100
	path.lossPercent.Store(0)
	lossFor := time.Since(lossFrom)
	// Repairs arrive late when the machine is busy: wait until they are in,
	// or until the receiver's NACK window has long passed them.
	var sent, missing int
	for deadline := time.Now().Add(5 * time.Second); ; {
		sent, missing = sess.missing(from, to)
		if float64(missing) <= 0.01*float64(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	keyframes := r.pub.keyframes.Load() - keyframesBefore
	t.Logf("5 %% loss for %s: %d of %d video packets missing after repair (%.2f %%), %d keyframes meanwhile",
		lossFor.Round(10*time.Millisecond), missing, sent, 100*float64(missing)/float64(sent), keyframes)
	if float64(missing) > 0.01*float64(sent) {
		t.Errorf("%d of %d packets missing: NACK/RTX did not repair the loss", missing, sent)
	}
	// The regular keyframe every 2 s, and one to spare.
	if limit := int64(lossFor/(2*time.Second)) + 2; keyframes > limit {
		t.Errorf("%d keyframes in %s of loss: losses were repaired by keyframes", keyframes, lossFor.Round(time.Second))
	}
	if st, _ := up.Status(); st.State != Up {
		t.Errorf("state %s under loss", st.State)
	}
}
