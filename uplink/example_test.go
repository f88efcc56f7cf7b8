package uplink_test

import (
	"context"
	"log/slog"

	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/uplink"
)

// How the daemon wires the uplink: it follows the hub by itself, steers the
// encoder through SetBitrate, and its Status feeds the status document
// (uplink {state, error}) and onair_uplink_up.
func Example() {
	hub := broadcast.New(broadcast.Options{})
	setBitrate := func(kbps int) { /* pipeline.SetBitrate */ }
	up, err := uplink.New(uplink.Options{
		URL:            "https://media.example.org/live/whip",
		BearerToken:    "stream-key",
		ICEServers:     []webrtc.ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}},
		MinBitrateKbps: 300, MaxBitrateKbps: 4000, StartBitrateKbps: 2500,
		Hub: hub, SetBitrate: setBitrate, Logger: slog.Default(),
	})
	if err != nil {
		slog.Error("uplink", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); up.Run(ctx) }()

	st, _ := up.Status() // for /api/status, MQTT and /metrics
	_ = st.State == uplink.Up

	cancel() // shutdown (or a new uplink_url): Run ends the session and returns
	<-done
}
