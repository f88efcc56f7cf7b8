package uplink

import (
	"context"
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
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", MinDelay: 10 * time.Millisecond,
		LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	boxNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	serverNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	// What reaches the server passes a token bucket: the box's uplink.
	bucket := vnet.NewTBFQueue(openBps, 4*1500, 60_000)
	shaped, err := vnet.NewQueue(serverNet, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(boxNet); err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(shaped); err != nil {
		t.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { wan.Stop(); shaped.Close() }()

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
	settle := time.Now().Add(3 * time.Second)
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
