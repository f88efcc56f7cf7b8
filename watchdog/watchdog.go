// Package watchdog feeds the kernel watchdog (/dev/watchdog) while the
// daemon's own loops answer. Fed on health of the loops, not of the camera:
// an unplugged camera must never reboot a box in the middle of an event, but
// a daemon whose loops are stuck must.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Device is what the watchdog writes to: /dev/watchdog on the box, a file in
// tests. Any write is a keep-alive; writing "V" just before closing tells a
// driver with "magic close" that the stop is deliberate.
type Device interface {
	io.Writer
	io.Closer
}

// Options configure the feeder.
type Options struct {
	// Interval between keep-alives; default 5 s (the image sets the kernel
	// timeout to 15 s).
	Interval time.Duration
	// Healthy reports whether the daemon's loops answer; nil error feeds.
	Healthy func(context.Context) error
	Log     *slog.Logger
}

// ErrNoWatchdog is returned by Open on a machine without a watchdog device.
var ErrNoWatchdog = errors.New("no watchdog device")

// Open opens the watchdog device at path. A missing device (a PC) is
// ErrNoWatchdog; opening starts the kernel's countdown.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoWatchdog, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open watchdog %s: %w", path, err)
	}
	return f, nil
}

// Feed keeps the watchdog fed while Healthy says yes, until ctx ends; then it
// disarms it with the magic close and closes the device. While unhealthy it
// stops feeding and logs why, so the kernel reboots the box after its
// timeout unless the loops recover first.
func Feed(ctx context.Context, dev Device, opt Options) error {
	if opt.Interval <= 0 {
		opt.Interval = 5 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	tick := time.NewTicker(opt.Interval)
	defer tick.Stop()
	starving := false
	for {
		err := opt.Healthy(ctx)
		switch {
		case err == nil:
			if _, werr := dev.Write([]byte{0}); werr != nil {
				opt.Log.Error("watchdog keep-alive failed", "err", werr)
			}
			if starving {
				opt.Log.Info("watchdog fed again: the daemon's loops answer")
			}
			starving = false
		case ctx.Err() == nil && !starving:
			opt.Log.Error("watchdog not fed: the box reboots unless the daemon recovers", "err", err)
			starving = true
		}
		select {
		case <-ctx.Done():
			// Magic close: a clean stop of the daemon is not a hang.
			_, werr := dev.Write([]byte("V"))
			return errors.Join(werr, dev.Close())
		case <-tick.C:
		}
	}
}
