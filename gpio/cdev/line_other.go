//go:build !linux

package cdev

import (
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Line is a GPIO character-device line; off Linux, Open never returns one.
type Line struct{}

// Open fails with ErrUnsupported: there is no GPIO character device.
func Open(chipPath string, offset int, name string) (*Line, error) {
	return nil, ErrUnsupported
}

// In implements gpio.PinIn.
func (*Line) In(gpio.Pull, gpio.Edge) error { return ErrUnsupported }

// Read implements gpio.PinIn.
func (*Line) Read() gpio.Level { return gpio.Low }

// Err reports the last failed Read.
func (*Line) Err() error { return ErrUnsupported }

// Now is the kernel's monotonic clock.
func (*Line) Now() time.Duration { return 0 }

// NextEdge returns the oldest queued edge.
func (*Line) NextEdge(time.Duration) (Edge, bool, error) { return Edge{}, false, ErrUnsupported }

// WaitForEdge implements gpio.PinIn.
func (*Line) WaitForEdge(time.Duration) bool { return false }

// Halt implements conn.Resource.
func (*Line) Halt() error { return nil }

// Close releases the line.
func (*Line) Close() error { return nil }

// String implements conn.Resource.
func (*Line) String() string { return "" }

// Name implements pin.Pin.
func (*Line) Name() string { return "" }

// Number implements pin.Pin.
func (*Line) Number() int { return -1 }

// Function implements pin.Pin.
func (*Line) Function() string { return "" }

// Pull implements gpio.PinIn.
func (*Line) Pull() gpio.Pull { return gpio.PullNoChange }

// DefaultPull implements gpio.PinIn.
func (*Line) DefaultPull() gpio.Pull { return gpio.PullNoChange }

var _ gpio.PinIn = (*Line)(nil)
