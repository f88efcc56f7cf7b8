package gpiofake

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// kernelEventQueue is how many edges the kernel keeps for a line that
// nobody reads (16 per requested line by default); later edges are dropped.
const kernelEventQueue = 16

// LivePin is a fake input line on real time, for benchmarks and end-to-end
// runs where a person's press is simulated: Drive changes the level now and
// wakes a reader in WaitForEdge, as the kernel would. Unit tests that check
// timing use Pin and its virtual time instead. LivePin keeps Pin's rules and
// reports broken ones through Err.
type LivePin struct {
	name   string
	number int

	mu      sync.Mutex
	dir     direction
	pull    gpio.Pull
	edge    gpio.Edge
	level   gpio.Level
	driven  bool
	events  chan struct{}
	halt    chan struct{} // set while a wait is in progress
	dropped int
	err     error
}

// NewLivePin returns an unconfigured line named name.
func NewLivePin(name string, number int) *LivePin {
	return &LivePin{name: name, number: number, events: make(chan struct{}, kernelEventQueue)}
}

// Drive sets the line to level now. A change the reader asked to be told
// about is queued as an edge; like the kernel, the queue holds
// kernelEventQueue edges and drops the rest.
func (p *LivePin) Drive(level gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := level != p.level
	p.level, p.driven = level, true
	if !changed || p.dir != dirIn {
		return
	}
	if p.edge == gpio.BothEdges || (p.edge == gpio.RisingEdge && level == gpio.High) ||
		(p.edge == gpio.FallingEdge && level == gpio.Low) {
		select {
		case p.events <- struct{}{}:
		default:
			p.dropped++
		}
	}
}

// Dropped reports how many edges the full queue dropped.
func (p *LivePin) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// Err reports the first broken rule of the real hardware path, if any.
func (p *LivePin) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// String implements conn.Resource.
func (p *LivePin) String() string { return p.name }

// Halt implements conn.Resource: it stops a WaitForEdge in progress and, as
// with gpioioctl, has no effect on a wait that starts later.
func (p *LivePin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.halt != nil {
		close(p.halt)
		p.halt = nil
	}
	return nil
}

// Name implements pin.Pin.
func (p *LivePin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *LivePin) Number() int { return p.number }

// Function implements pin.Pin.
func (p *LivePin) Function() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dir == dirIn {
		return "In/" + p.level.String()
	}
	return ""
}

// In implements gpio.PinIn. Queued edges are dropped, as gpioioctl's new line
// configuration does.
func (p *LivePin) In(pull gpio.Pull, edge gpio.Edge) error {
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
	for len(p.events) > 0 {
		<-p.events
	}
	return nil
}

// Read implements gpio.PinIn.
func (p *LivePin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge implements gpio.PinIn on real time.
func (p *LivePin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	switch {
	case p.dir != dirIn || p.edge == gpio.NoEdge:
		p.misuseLocked("WaitForEdge on a line not configured as an input with edges")
	case timeout <= 0:
		p.misuseLocked("WaitForEdge(%v): gpioioctl waits forever on 0 and returns at once below; pass a positive timeout", timeout)
	case p.halt != nil:
		p.misuseLocked("WaitForEdge called while another WaitForEdge waits")
	default:
		halt := make(chan struct{})
		p.halt = halt
		p.mu.Unlock()
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		var got bool
		select {
		case <-p.events:
			got = true
		case <-halt:
		case <-timer.C:
		}
		p.mu.Lock()
		if p.halt == halt {
			p.halt = nil
		}
		p.mu.Unlock()
		return got
	}
	p.mu.Unlock()
	return false
}

func (p *LivePin) misuseLocked(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("gpiofake: %s: %s", p.name, fmt.Sprintf(format, args...))
	}
}

// Pull implements gpio.PinIn.
func (p *LivePin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *LivePin) DefaultPull() gpio.Pull { return gpio.PullNoChange }

// Out implements gpio.PinOut; a LivePin is an input only.
func (p *LivePin) Out(gpio.Level) error { return errors.New("gpiofake: LivePin is an input") }

// PWM implements gpio.PinOut.
func (p *LivePin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("gpiofake: PWM not supported")
}

var _ gpio.PinIO = (*LivePin)(nil)
