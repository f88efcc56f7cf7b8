package uplink

import "time"

// Clock is the time source of the reconnect backoff and the bitrate
// controller. Tests put a manual clock here and fire timers by hand instead
// of sleeping; a nil Clock in Options means real time.
type Clock interface {
	// Now is the current time; only differences between two calls matter.
	Now() time.Time
	// AfterFunc calls f once, on a goroutine of the clock's choosing, after
	// d has passed. stop cancels the call and reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock reads the monotonic clock, which a jump of the wall clock (a Pi
// without network starts in 1970) does not move.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// after is a channel that receives once after d on clock c; stop releases it.
func after(c Clock, d time.Duration) (<-chan struct{}, func() bool) {
	ch := make(chan struct{})
	stop := c.AfterFunc(d, func() { close(ch) })
	return ch, stop
}
