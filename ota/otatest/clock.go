package otatest

import (
	"sync"
	"time"
)

// Clock is an ota.Clock that moves only when Advance is called.
type Clock struct {
	mu      sync.Mutex
	now     time.Duration
	timers  []*timer
	changed chan struct{}
}

type timer struct {
	at   time.Duration
	fire func()
}

// NewClock returns a clock at zero.
func NewClock() *Clock { return &Clock{changed: make(chan struct{})} }

func (c *Clock) add(d time.Duration, fire func()) *timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now + d, fire: fire}
	c.timers = append(c.timers, t)
	c.notify()
	return t
}

// notify wakes WaitForTimers; called with mu held.
func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// After delivers the time (since the clock's zero) once d has passed.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.add(d, func() { ch <- time.Unix(0, 0).Add(c.Now()) })
	return ch
}

// AfterFunc calls f in a new goroutine once d has passed.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	t := c.add(d, func() { go f() })
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				c.notify()
				return true
			}
		}
		return false
	}
}

// Now is the time since the clock's zero.
func (c *Clock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock and fires the timers that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*timer
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at <= c.now {
			due = append(due, t)
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.notify()
	c.mu.Unlock()
	for _, t := range due {
		t.fire()
	}
}

// WaitForTimers blocks until at least n timers are pending or done is
// closed, so a test advances the clock only once the code waits on it.
func (c *Clock) WaitForTimers(n int, done <-chan struct{}) bool {
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}
