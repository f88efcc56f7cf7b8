package alsa_test

import (
	"context"
	"errors"
	"log/slog"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/alsa"
)

// The daemon's audio.source: alsa path: open the configured microphone on
// the pipeline clock and hand its 20 ms buffers to the Opus encoder. A lost
// microphone ends the loop with ErrDeviceLost; the caller closes the source
// and reopens it (or falls back to the tone) when it wants to retry.
func ExampleOpen() {
	clock := device.NewClock()
	mic, err := alsa.Open(alsa.Config{Device: "USB", Channels: 1, Logger: slog.Default()}, clock)
	if err != nil {
		slog.Warn("no microphone, using the test tone", "err", err)
		return
	}
	defer mic.Close()
	ctx := context.Background()
	for {
		frame, err := mic.ReadAudio(ctx)
		if errors.Is(err, alsa.ErrDeviceLost) {
			slog.Error("microphone lost", "err", err)
			return
		}
		if err != nil {
			return
		}
		_ = frame // encode frame.Samples (960 frames at 48 kHz) stamped frame.Capture
	}
}

// audio.source: auto uses List to decide whether there is a microphone.
func ExampleList() {
	devices, err := alsa.List()
	if err != nil || len(devices) == 0 {
		slog.Info("no ALSA capture device", "err", err)
		return
	}
	for _, d := range devices {
		slog.Info("capture device", "name", d.Name, "id", d.ID)
	}
}
