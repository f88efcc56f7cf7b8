package gpiofake

import (
	"sort"
	"sync"
	"time"
)

// Clock is a manual clock: time stands still until Advance or AdvanceTo moves
// it. It satisfies gpio.Clock. Timers due during an advance run in deadline
// order on the advancing goroutine, each seeing Now equal to its own deadline,
// so behaviour that depends on time is checked at exact instants.
//
// The zero value is a clock standing at the zero time.Time, ready to use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*timer
}

type timer struct {
	at  time.Time
	seq uint64 // equal deadlines fire in the order they were set
	f   func()
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d. A d of zero or less runs f at the next
// advance (even by zero), never inside AfterFunc itself: callers may hold
// their own locks while they schedule.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, pending := range c.timers {
			if pending == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// Advance moves the clock forward by d, running the timers that fall due.
func (c *Clock) Advance(d time.Duration) {
	c.AdvanceTo(c.Now().Add(d))
}

// AdvanceTo moves the clock to t, running the timers due at or before t in
// deadline order. A t before Now leaves the clock where it is: time never runs
// backwards.
func (c *Clock) AdvanceTo(t time.Time) {
	for {
		c.mu.Lock()
		next := c.popDueLocked(t)
		if next == nil {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		// Outside the lock: the callback may set new timers or read Now.
		next.f()
	}
}

// Pending reports how many timers are set and not yet run or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *Clock) popDueLocked(t time.Time) *timer {
	if len(c.timers) == 0 {
		return nil
	}
	sort.SliceStable(c.timers, func(i, j int) bool {
		a, b := c.timers[i], c.timers[j]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return a.seq < b.seq
	})
	first := c.timers[0]
	if first.at.After(t) {
		return nil
	}
	c.timers = c.timers[1:]
	return first
}
