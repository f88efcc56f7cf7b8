package gpiofake

import (
	"time"

	"github.com/onair/onair/gpio/cdev"
)

// kernelUptime is the fake kernel's CLOCK_MONOTONIC when the pin is made:
// a real box has been up a while, so edge times are never near zero.
const kernelUptime = time.Hour

// EdgePin is a Pin that also reports each edge as the kernel recorded it,
// like cdev.Line: NextEdge gives the edge's direction, its time on the
// kernel's clock (Now) and its sequence number, with the edges a full queue
// dropped counted in Edge.Lost. It keeps cdev.Line's rules: the queue holds
// cdev.EventBuffer edges, NextEdge with a timeout of zero or less only
// looks, and Halt stops every wait until the next In instead of only one in
// progress.
type EdgePin struct {
	*Pin
	boot time.Time // the kernel clock's zero on the virtual clock
}

// NewEdgePin returns an unconfigured line named name whose virtual time is
// clock.
func NewEdgePin(name string, number int, clock *Clock) *EdgePin {
	p := &EdgePin{Pin: NewPin(name, number, clock), boot: clock.Now().Add(-kernelUptime)}
	p.queueSize = cdev.EventBuffer
	p.stickyHalt = true
	return p
}

// Now is the kernel's CLOCK_MONOTONIC: the virtual clock, from a boot an
// hour before NewEdgePin.
func (p *EdgePin) Now() time.Duration { return p.Kernel(p.clock.Now()) }

// Kernel converts a time of the virtual clock to the kernel's clock.
func (p *EdgePin) Kernel(t time.Time) time.Duration { return t.Sub(p.boot) }

// NextEdge returns the oldest queued edge, waiting in virtual time at most
// timeout for one (zero or less: only looks). It returns false when the
// time ran out or the pin was halted, and an error when the line is not an
// input with edges or another wait is in progress (also kept for Err).
func (p *EdgePin) NextEdge(timeout time.Duration) (cdev.Edge, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.readSeq
	q, ok, err := p.nextLocked("NextEdge", max(timeout, 0))
	if !ok {
		return cdev.Edge{}, false, err
	}
	e := cdev.Edge{Rising: q.rising, At: p.Kernel(q.at), Seq: q.seq}
	if q.seq > last+1 {
		e.Lost = q.seq - last - 1
	}
	return e, true, nil
}
