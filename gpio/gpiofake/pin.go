package gpiofake

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// Edge is a scripted level change of an input line: at At the line goes to
// Level.
type Edge struct {
	At    time.Time
	Level gpio.Level
}

// Sample is one write to an output line, stamped with the clock's time.
type Sample struct {
	At    time.Time
	Level gpio.Level
}

type direction int

const (
	dirNone direction = iota
	dirIn
	dirOut
)

// Pin is a fake GPIO line implementing gpio.PinIO, driven in virtual time.
//
// As an input it plays a script of edges (Push). The reader's WaitForEdge
// moves the pin's Clock forward to the next edge or to the end of its
// timeout, so a reader sees edges at their exact scripted times without
// anybody sleeping. Time never passes the horizon that RunUntil sets: there
// the reader blocks until the test pushes more edges, moves the horizon or
// calls Halt. RunUntil returns once the reader waits at the horizon, which
// makes "after this script, the reader has seen exactly these edges" a
// deterministic point to check results.
//
// As an output it records every write with its time (History).
type Pin struct {
	name   string
	number int
	clock  *Clock

	mu   sync.Mutex
	cond *sync.Cond // signals changes of script, horizon, halt and waiting

	dir    direction
	pull   gpio.Pull
	edge   gpio.Edge
	level  gpio.Level
	driven bool // something outside drives the line, so pull no longer decides its level

	queue     []Edge
	horizon   time.Time
	unbounded bool // a Halt found no wait to stop: from now on timeouts run out in virtual time
	waiting   bool
	atHorizon bool
	haltWake  bool

	history []Sample
	err     error
}

// NewPin returns an unconfigured line named name (as gpioreg would, e.g.
// "GPIO17") whose virtual time is clock. The horizon starts at clock's
// current time: nothing happens until Push and RunUntil.
func NewPin(name string, number int, clock *Clock) *Pin {
	p := &Pin{name: name, number: number, clock: clock, horizon: clock.Now()}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Clock returns the pin's virtual time.
func (p *Pin) Clock() *Clock { return p.clock }

// Set drives the line to level at once without an edge event, the way a
// button already held down looks to a program that configures the line
// afterwards. Use Push for changes a running reader should see.
func (p *Pin) Set(level gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.level = level
	p.driven = true
	p.cond.Broadcast()
}

// Push appends edges to the script. Times must not go backwards nor lie in
// the past, and each edge must change the level (a real line cannot report an
// edge to the level it already has); Push panics on a broken script because
// that is a bug in the test.
func (p *Pin) Push(edges ...Edge) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, lastAt := p.level, p.clock.Now()
	if n := len(p.queue); n > 0 {
		last, lastAt = p.queue[n-1].Level, p.queue[n-1].At
	}
	for _, e := range edges {
		if e.At.Before(lastAt) {
			panic(fmt.Sprintf("gpiofake: %s: edge at %v is before %v", p.name, e.At, lastAt))
		}
		if e.Level == last {
			panic(fmt.Sprintf("gpiofake: %s: edge at %v to %v does not change the level", p.name, e.At, e.Level))
		}
		p.queue = append(p.queue, e)
		last, lastAt = e.Level, e.At
	}
	p.cond.Broadcast()
}

// RunUntil lets virtual time run up to t and returns when the reader has
// consumed every edge up to t and waits at t. The reader must be running.
func (p *Pin) RunUntil(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.horizon = t
	p.cond.Broadcast()
	for !(p.atHorizon && !p.clock.Now().Before(t) && (len(p.queue) == 0 || p.queue[0].At.After(t))) {
		p.cond.Wait()
	}
}

// History returns the writes to the line as an output, oldest first.
func (p *Pin) History() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.history...)
}

// Err reports the first broken rule of the real hardware path, if any.
func (p *Pin) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Pin) misuseLocked(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("gpiofake: %s: %s", p.name, fmt.Sprintf(format, args...))
	}
}

// String implements conn.Resource.
func (p *Pin) String() string { return p.name }

// Halt implements conn.Resource: it stops a WaitForEdge in progress, which
// then returns false. Like gpioioctl, it cannot stop a wait that has not
// started yet; the real reader then waits until its timeout, so the fake lets
// virtual time run freely from then on for the same effect.
func (p *Pin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting {
		p.haltWake = true
	} else {
		p.unbounded = true
	}
	p.cond.Broadcast()
	return nil
}

// Name implements pin.Pin.
func (p *Pin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *Pin) Number() int { return p.number }

// Function implements pin.Pin.
func (p *Pin) Function() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.dir {
	case dirIn:
		return "In/" + p.level.String()
	case dirOut:
		return "Out/" + p.level.String()
	}
	return ""
}

// In implements gpio.PinIn. Without an outside driver the pull decides the
// level, as the resistor would.
func (p *Pin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir, p.pull, p.edge = dirIn, pull, edge
	if !p.driven {
		switch pull {
		case gpio.PullUp:
			p.level = gpio.High
		case gpio.PullDown:
			p.level = gpio.Low
		}
	}
	p.cond.Broadcast()
	return nil
}

// Read implements gpio.PinIn: the level at the current virtual time.
func (p *Pin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge implements gpio.PinIn in virtual time; see Pin.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.dir != dirIn || p.edge == gpio.NoEdge:
		p.misuseLocked("WaitForEdge on a line not configured as an input with edges")
		return false
	case timeout <= 0:
		p.misuseLocked("WaitForEdge(%v): gpioioctl waits forever on 0 and returns at once below, unlike gpio.PinIn's -1; pass a positive timeout", timeout)
		return false
	case p.waiting:
		p.misuseLocked("WaitForEdge called while another WaitForEdge waits")
		return false
	}
	p.waiting = true
	p.cond.Broadcast()
	defer func() {
		p.waiting, p.atHorizon = false, false
		p.cond.Broadcast()
	}()
	deadline := p.clock.Now().Add(timeout)
	for {
		if p.haltWake {
			p.haltWake = false
			return false
		}
		limit := deadline
		if !p.unbounded && p.horizon.Before(limit) {
			limit = p.horizon
		}
		if len(p.queue) > 0 && !p.queue[0].At.After(limit) {
			e := p.queue[0]
			p.queue = p.queue[1:]
			p.advanceLocked(e.At)
			p.level, p.driven = e.Level, true
			if p.edge == gpio.BothEdges ||
				(p.edge == gpio.RisingEdge && e.Level == gpio.High) ||
				(p.edge == gpio.FallingEdge && e.Level == gpio.Low) {
				return true
			}
			continue // the line changed, but not in a direction the kernel was asked to report
		}
		if limit.Equal(deadline) {
			p.advanceLocked(deadline)
			return false
		}
		if p.clock.Now().Before(limit) {
			// The lock is let go while the clock moves, and the test may
			// change the script or the horizon meanwhile: look again.
			p.advanceLocked(limit)
			continue
		}
		// Time stands at the horizon until the test moves it, pushes edges or halts.
		p.atHorizon = true
		p.cond.Broadcast()
		p.cond.Wait()
		p.atHorizon = false
	}
}

// advanceLocked moves the clock without holding the pin's lock, because
// timers on a shared clock may run code that uses other fake pins.
func (p *Pin) advanceLocked(t time.Time) {
	p.mu.Unlock()
	p.clock.AdvanceTo(t)
	p.mu.Lock()
}

// Pull implements gpio.PinIn.
func (p *Pin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn. Like gpioioctl, the fake cannot tell.
func (p *Pin) DefaultPull() gpio.Pull { return gpio.PullNoChange }

// Out implements gpio.PinOut and records the write.
func (p *Pin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir, p.edge, p.level, p.driven = dirOut, gpio.NoEdge, l, false
	p.history = append(p.history, Sample{At: p.clock.Now(), Level: l})
	p.cond.Broadcast()
	return nil
}

// PWM implements gpio.PinOut. GPIO lines on the character device have no
// PWM, so neither has the fake.
func (p *Pin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("gpiofake: PWM not supported")
}

var _ gpio.PinIO = (*Pin)(nil)
