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
// Like the kernel, the pin queues the edges it was asked to report, keeps at
// most 16 (a line request's default) and then drops the oldest. Stall makes
// the reader late, as a busy machine does: it then finds edges queued that
// happened while it was not running, and Read gives the level at the time it
// runs, not the one of those edges.
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

	script    []Edge   // edges still to happen
	queue     []queued // edges that happened and were reported, not yet read
	queueSize int
	seq       uint32 // sequence number of the last reported edge (the kernel's line_seqno)
	readSeq   uint32 // sequence number of the last edge read
	dropped   int
	stalls    []stall

	horizon    time.Time
	unbounded  bool // a Halt found no wait to stop: from now on timeouts run out in virtual time
	stickyHalt bool // Halt stops every wait until the next In (cdev.Line), not only one in progress (gpioioctl)
	halted     bool
	waiting    bool
	atHorizon  bool
	haltWake   bool

	history []Sample
	err     error
}

// queued is an edge in the kernel's queue.
type queued struct {
	at     time.Time
	rising bool
	seq    uint32
}

// stall is a time when the reader does not run.
type stall struct{ from, until time.Time }

// NewPin returns an unconfigured line named name (as gpioreg would, e.g.
// "GPIO17") whose virtual time is clock. The horizon starts at clock's
// current time: nothing happens until Push and RunUntil.
func NewPin(name string, number int, clock *Clock) *Pin {
	p := &Pin{name: name, number: number, clock: clock, horizon: clock.Now(), queueSize: kernelEventQueue}
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
	if n := len(p.script); n > 0 {
		last, lastAt = p.script[n-1].Level, p.script[n-1].At
	}
	for _, e := range edges {
		if e.At.Before(lastAt) {
			panic(fmt.Sprintf("gpiofake: %s: edge at %v is before %v", p.name, e.At, lastAt))
		}
		if e.Level == last {
			panic(fmt.Sprintf("gpiofake: %s: edge at %v to %v does not change the level", p.name, e.At, e.Level))
		}
		p.script = append(p.script, e)
		last, lastAt = e.Level, e.At
	}
	p.cond.Broadcast()
}

// Stall keeps the reader from running from from until until, as a busy
// machine does: a wait that would end in between ends at until instead, and
// finds the edges of the stall queued, each with the time it happened. Read
// at until gives the level then, not the one of those edges. Stalls must not
// start in the past nor overlap.
func (p *Pin) Stall(from, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if from.Before(p.clock.Now()) || !until.After(from) {
		panic(fmt.Sprintf("gpiofake: %s: stall %v to %v is empty or starts before now (%v)", p.name, from, until, p.clock.Now()))
	}
	for _, s := range p.stalls {
		if from.Before(s.until) && s.from.Before(until) {
			panic(fmt.Sprintf("gpiofake: %s: stall %v to %v overlaps %v to %v", p.name, from, until, s.from, s.until))
		}
	}
	p.stalls = append(p.stalls, stall{from, until})
	p.cond.Broadcast()
}

// SetQueueSize sets how many edges the kernel keeps for a reader that is
// late (16 unless a line request asks for more); it drops the oldest beyond.
func (p *Pin) SetQueueSize(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queueSize = max(n, 1)
}

// Dropped reports how many edges the full queue dropped.
func (p *Pin) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// RunUntil lets virtual time run up to t and returns when the reader has
// consumed every edge it could see by t and waits at t. The reader must be
// running.
func (p *Pin) RunUntil(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.horizon = t
	p.cond.Broadcast()
	for !p.idleAtLocked(t) {
		p.cond.Wait()
	}
}

// idleAtLocked reports whether the reader waits at t with nothing it could
// read by then: edges of a stall that ends after t do not count.
func (p *Pin) idleAtLocked(t time.Time) bool {
	if !p.atHorizon || p.clock.Now().Before(t) {
		return false
	}
	if len(p.queue) > 0 && !p.wakeLocked(p.clock.Now()).After(t) {
		return false
	}
	return len(p.script) == 0 || p.wakeLocked(p.script[0].At).After(t)
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
	switch {
	case p.stickyHalt:
		p.halted = true
	case p.waiting:
		p.haltWake = true
	default:
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
// level, as the resistor would. As a new line request does, it drops the
// queued edges and starts their sequence numbers again.
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
	p.queue, p.seq, p.readSeq, p.halted = nil, 0, 0, false
	p.cond.Broadcast()
	return nil
}

// Read implements gpio.PinIn: the level at the current virtual time. Edges
// take effect when a wait reaches their time, so an edge pushed for the
// present changes nothing until the reader waits.
func (p *Pin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge implements gpio.PinIn in virtual time; see Pin.
func (p *Pin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if timeout <= 0 {
		p.misuseLocked("WaitForEdge(%v): gpioioctl waits forever on 0 and returns at once below, unlike gpio.PinIn's -1; pass a positive timeout", timeout)
		return false
	}
	_, ok, _ := p.nextLocked("WaitForEdge", timeout)
	return ok
}

// nextLocked waits up to timeout (zero: only looks) for the oldest queued
// edge; see Pin. A broken rule is recorded for Err and returned.
func (p *Pin) nextLocked(op string, timeout time.Duration) (queued, bool, error) {
	var misuse error
	switch {
	case p.dir != dirIn || p.edge == gpio.NoEdge:
		misuse = fmt.Errorf("gpiofake: %s: %s on a line not configured as an input with edges", p.name, op)
	case p.waiting:
		misuse = fmt.Errorf("gpiofake: %s: %s called while another wait waits", p.name, op)
	}
	if misuse != nil {
		if p.err == nil {
			p.err = misuse
		}
		return queued{}, false, misuse
	}
	p.waiting = true
	p.cond.Broadcast()
	defer func() {
		p.waiting, p.atHorizon = false, false
		p.cond.Broadcast()
	}()
	deadline := p.clock.Now().Add(timeout)
	for {
		if p.haltWake || p.halted {
			p.haltWake = false
			return queued{}, false, nil
		}
		now := p.clock.Now()
		p.happenLocked(now)
		stalled := p.stalledLocked(now)
		if !stalled {
			if len(p.queue) > 0 {
				q := p.queue[0]
				p.queue = p.queue[1:]
				p.readSeq = q.seq
				return q, true, nil
			}
			if !now.Before(deadline) {
				return queued{}, false, nil
			}
		}
		// The reader runs again at its deadline or the next edge, or at the
		// end of a stall that holds it then.
		wake := deadline
		if stalled {
			wake = now
		}
		if len(p.script) > 0 && p.script[0].At.Before(wake) {
			wake = p.script[0].At
		}
		wake = p.wakeLocked(wake)
		limit := wake
		if !p.unbounded && p.horizon.Before(limit) {
			limit = p.horizon
		}
		if now.Before(limit) {
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

// happenLocked plays the script up to now: each edge changes the level, and
// those the line reports join the kernel's queue, which drops its oldest
// when full.
func (p *Pin) happenLocked(now time.Time) {
	for len(p.script) > 0 && !p.script[0].At.After(now) {
		e := p.script[0]
		p.script = p.script[1:]
		p.level, p.driven = e.Level, true
		if p.dir != dirIn || !p.reports(e.Level) {
			continue
		}
		p.seq++
		p.queue = append(p.queue, queued{at: e.At, rising: e.Level == gpio.High, seq: p.seq})
		if len(p.queue) > p.queueSize {
			p.queue = p.queue[1:]
			p.dropped++
		}
	}
}

func (p *Pin) reports(level gpio.Level) bool {
	return p.edge == gpio.BothEdges ||
		(p.edge == gpio.RisingEdge && level == gpio.High) ||
		(p.edge == gpio.FallingEdge && level == gpio.Low)
}

// stalledLocked reports whether the reader cannot run at t.
func (p *Pin) stalledLocked(t time.Time) bool {
	for _, s := range p.stalls {
		if !t.Before(s.from) && t.Before(s.until) {
			return true
		}
	}
	return false
}

// wakeLocked is when a reader due to run at t runs: t, or the end of the
// stall around t.
func (p *Pin) wakeLocked(t time.Time) time.Time {
	for _, s := range p.stalls {
		if !t.Before(s.from) && t.Before(s.until) {
			return s.until
		}
	}
	return t
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
