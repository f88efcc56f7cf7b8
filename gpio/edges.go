package gpio

import (
	"context"
	"errors"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio/cdev"
)

// EdgeSource is an input line that reports each edge as the kernel recorded
// it. cdev.Line (the GPIO character device) is one, gpiofake.EdgePin is its
// fake. A Button on a pin that is also an EdgeSource debounces on these
// records instead of on levels it reads.
type EdgeSource interface {
	// NextEdge returns the oldest edge not yet returned, waiting at most
	// timeout for one; zero or less only looks. It reports false when the
	// time ran out or the line was halted, and an error when reading failed.
	NextEdge(timeout time.Duration) (cdev.Edge, bool, error)
	// Now is the time on the clock of cdev.Edge.At (the kernel's
	// CLOCK_MONOTONIC).
	Now() time.Duration
}

// edgeState is what runEdges knows about the line. All times are on the
// line's clock (EdgeSource.Now), never on the time the edges were read.
type edgeState struct {
	pressed    bool
	pressStart time.Duration
	longSent   bool
	bootHold   bool // the current press began before the button was opened

	active     bool // the line is active according to the last edge
	burst      bool // edges seen, line not yet quiet
	burstStart time.Duration
	lastEdge   time.Duration
	quietSince time.Duration // when the last burst ended
	resync     bool          // edges were lost in this burst: read the line when it ends
}

func (b *Button) edgeMode() string {
	if b.edges != nil {
		return "kernel edge records"
	}
	return "levels read after the debounce time"
}

// runEdges is run for an EdgeSource. Each edge record moves the state at
// its own time, and every deadline (debounce, long press, start hold) is
// judged on the line's clock: a deadline counts as passed only once the
// queue is known to hold no earlier edge, so a reader that is late reaches
// the same presses as one that is on time, only later.
func (b *Button) runEdges(ctx context.Context) {
	defer close(b.presses)
	defer b.decideStart(false, true)

	src := b.edges
	var s edgeState
	s.active = b.pin.Read() == b.active
	if s.active {
		// Held while the box starts: a factory reset, if it lasts.
		s.pressed, s.pressStart, s.bootHold = true, src.Now(), true
		b.log.Info("button down at start; hold for factory reset", "hold", b.startHold)
	} else {
		b.decideStart(false, false)
	}
	failing := false
	for ctx.Err() == nil {
		now := src.Now()
		wait := maxEdgeWait
		if deadline, ok := b.edgeDeadline(&s); ok {
			wait = min(wait, deadline-now) // zero or less: only look
		}
		e, ok, err := src.NextEdge(wait)
		switch {
		case errors.Is(err, cdev.ErrClosed):
			b.log.Error("button line closed", "pin", b.pin.Name(), "err", err)
			return
		case err != nil:
			if !failing {
				b.log.Error("button: reading edges failed; trying again every second", "pin", b.pin.Name(), "err", err)
				failing = true
			}
			b.sleep(ctx, maxEdgeWait)
			continue
		case failing:
			b.log.Info("button: reading edges works again", "pin", b.pin.Name())
			failing = false
		}
		switch {
		case ok:
			b.edge(ctx, &s, e)
		case wait <= 0:
			// Nothing is queued: no edge came before now, so what was
			// due by now has happened. (An edge stamped just before now
			// may still be on its way from the interrupt thread; that is
			// microseconds against a debounce time of milliseconds.)
			b.fireEdgeDeadlines(ctx, &s, now)
		}
	}
}

// edge moves the state by one edge record. Deadlines due before the edge
// are handled first, as they happened first.
func (b *Button) edge(ctx context.Context, s *edgeState, e cdev.Edge) {
	if e.Lost > 0 {
		// The kernel's queue overflowed and dropped the oldest edges: they
		// happened between the last edge seen and this one, at times not
		// known, so no deadline in between can be trusted. The gap is taken
		// as part of a burst that ends like any other, and the line is read
		// when it does.
		b.log.Warn("button: the kernel dropped edges the button read too late; the press may be timed from a later edge",
			"pin", b.pin.Name(), "lost", e.Lost, "next_edge", e.String(), "active_now", b.pin.Read() == b.active)
		s.resync = true
	} else {
		b.fireEdgeDeadlines(ctx, s, e.At-1)
	}
	if !s.burst {
		s.burst, s.burstStart = true, e.At
	}
	s.lastEdge = e.At
	s.active = e.Rising == (b.active == gpio.High)
}

// edgeDeadline is the next time at which the state changes without an edge.
func (b *Button) edgeDeadline(s *edgeState) (time.Duration, bool) {
	switch {
	case s.burst:
		return s.lastEdge + b.debounce, true
	case !s.pressed:
		return 0, false
	case s.bootHold:
		select {
		case <-b.startDecided:
			return 0, false
		default:
			return s.pressStart + b.startHold, true
		}
	case !s.longSent:
		return s.pressStart + b.longPress, true
	}
	return 0, false
}

// fireEdgeDeadlines handles, in order, the deadlines due by upTo.
func (b *Button) fireEdgeDeadlines(ctx context.Context, s *edgeState, upTo time.Duration) {
	for {
		deadline, ok := b.edgeDeadline(s)
		if !ok || deadline > upTo {
			return
		}
		if s.burst {
			s.burst, s.quietSince = false, deadline
			b.settleEdges(ctx, s)
			continue
		}
		// A long press or start hold reached while the line was bouncing
		// counts from when it went quiet, as on the level path.
		at := max(deadline, s.quietSince)
		if s.bootHold {
			b.decideStart(true, false)
			continue
		}
		s.longSent = true
		b.emit(ctx, Press{Kind: Long, Start: b.clockTime(s.pressStart), Held: at - s.pressStart})
	}
}

// settleEdges commits the level the line settled at after a burst.
func (b *Button) settleEdges(ctx context.Context, s *edgeState) {
	down := s.active
	if s.resync {
		// Nothing is queued (deadlines fire only then), so the line's level
		// now is the level the burst ended at.
		s.resync = false
		down = b.pin.Read() == b.active
		if down != s.active {
			b.log.Warn("button: after lost edges the line reads otherwise than its last edge says; going by the line",
				"pin", b.pin.Name(), "active", down)
			s.active = down
		}
	}
	if down == s.pressed {
		return // a glitch: the line came back to where it was
	}
	if down {
		s.pressed, s.pressStart, s.longSent = true, s.burstStart, false
		return
	}
	s.pressed = false
	b.release(ctx, s.bootHold, s.longSent, b.clockTime(s.pressStart), s.burstStart-s.pressStart)
	s.bootHold = false
}

// clockTime converts a time on the line's clock to the button's clock, for
// Press.Start.
func (b *Button) clockTime(at time.Duration) time.Time {
	return b.clock.Now().Add(at - b.edges.Now())
}

// sleep waits for d on the button's clock or until ctx ends.
func (b *Button) sleep(ctx context.Context, d time.Duration) {
	done := make(chan struct{})
	stop := b.clock.AfterFunc(d, func() { close(done) })
	defer stop()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
