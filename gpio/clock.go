package gpio

import "time"

// Clock is the time source of buttons and LEDs. Debounce, long presses and
// LED patterns depend on time, so tests put a manual clock here
// (gpiofake.Clock) and advance it by hand instead of sleeping. A nil Clock in
// the options means real time, so production code needs no setup.
type Clock interface {
	// Now is the current time; only differences between two calls matter.
	Now() time.Time
	// AfterFunc calls f once, on a goroutine of the clock's choosing, after
	// d has passed. stop cancels the call and reports whether it did (false:
	// f has run or is running).
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the wall clock's monotonic reading, which a jump of the wall
// clock (a Pi without network starts in 1970) does not affect.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

func clockOrReal(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}
