package fleet

import (
	"math/rand/v2"
	"time"
)

// Clock tells the time and waits. Status coalescing, telemetry, command
// de-duplication and reconnect backoff all read it, so tests move time by
// hand instead of sleeping. Options.Clock nil means real time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff returns how long to wait before reconnect attempt n (0 for the
// first after a loss): it doubles from min up to max, and a random part of
// up to half of it spreads boxes out, so a thousand boxes that lose the same
// broker at the same moment do not come back in lockstep.
func backoff(n int, min, max time.Duration, rnd *rand.Rand) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rnd.Int64N(int64(half)+1))
}
