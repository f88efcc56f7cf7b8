package gpio

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Defaults of ButtonOptions, as in the config (gpio.debounce, gpio.long_press)
// and the factory reset hold of issue 6.
const (
	DefaultDebounce  = 30 * time.Millisecond
	DefaultLongPress = 3 * time.Second
	DefaultStartHold = 10 * time.Second
)

// maxEdgeWait bounds each wait for an edge. Close interrupts a wait with the
// pin's Halt, but gpioioctl loses a Halt that lands just before a wait starts;
// the bound is then the longest Close can take. One wake-up a second is not
// polling: edges still wake the button at once.
const maxEdgeWait = time.Second

// pressBuffer is the buffer of the Presses channel: enough that a daemon busy for a
// moment never holds up debouncing, small enough that nobody mistakes it for a
// queue of commands.
const pressBuffer = 16

// PressKind tells a short press from a long one. Its text form ("short",
// "long") is the one of POST /api/button, so the HTTP handler can decode into
// it and feed the same code path as the pin.
type PressKind int

const (
	// Short is a press released before the long-press time.
	Short PressKind = iota + 1
	// Long is a press held for the long-press time.
	Long
)

// ParsePressKind parses "short" or "long".
func ParsePressKind(s string) (PressKind, error) {
	switch strings.ToLower(s) {
	case "short":
		return Short, nil
	case "long":
		return Long, nil
	}
	return 0, fmt.Errorf("press %q: want short or long", s)
}

// String returns "short" or "long".
func (k PressKind) String() string {
	switch k {
	case Short:
		return "short"
	case Long:
		return "long"
	}
	return fmt.Sprintf("PressKind(%d)", int(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k PressKind) MarshalText() ([]byte, error) {
	if k != Short && k != Long {
		return nil, fmt.Errorf("marshal %v: not a press kind", k)
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PressKind) UnmarshalText(b []byte) error {
	parsed, err := ParsePressKind(string(b))
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// Press is one press of the button.
type Press struct {
	Kind PressKind
	// Start is when the button went down (the first edge of the press) on the
	// button's clock.
	Start time.Time
	// Held is how long the button was down: until its release for a short
	// press, until the long-press time was reached for a long one.
	Held time.Duration
}

// ButtonOptions configure a Button. The zero value is an active-high button
// with the defaults above and real time; the config's gpio.active_low
// defaults to true, so the daemon passes it on.
type ButtonOptions struct {
	// ActiveLow: the line reads low while the button is down (button to
	// ground, pull-up).
	ActiveLow bool
	// Pull is the line's pull resistor; PullAuto pulls towards released.
	Pull Pull
	// Debounce is how long the line must stay quiet before its level counts.
	Debounce time.Duration
	// LongPress is the hold time of a long press.
	LongPress time.Duration
	// StartHold is how long a button already down at start must stay down
	// for HeldAtStart to report true.
	StartHold time.Duration
	// Clock is the time source; nil means real time.
	Clock Clock
	// Logger receives the button's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Button turns edges of an input line into debounced presses. It owns one
// goroutine that waits for edges (no polling) and stops when the context
// given to NewButton ends or Close is called.
//
// A press begins when the line, after a burst of edges, stays active for
// Debounce, so a bouncing contact gives one press and a glitch shorter than
// Debounce gives none. A press is timed from its first edge. A short press is
// delivered when the button is released; a long press as soon as it has been
// held for LongPress, and its release is silent.
//
// On a pin that is an EdgeSource (the GPIO character device, cdev.Line) all
// of this runs on the kernel's record of the edges: their direction and
// their time on the kernel's clock, so a press read late (a busy Pi) is still
// seen and timed as it happened. On any other gpio.PinIn the button stamps
// each edge when it wakes up and reads the line's level once the line has
// been quiet for Debounce; a press over before that read is lost.
type Button struct {
	pin       gpio.PinIn
	edges     EdgeSource // nil: debounce on levels read
	active    gpio.Level
	debounce  time.Duration
	longPress time.Duration
	startHold time.Duration
	clock     Clock
	log       *slog.Logger

	presses chan Press

	startOnce    sync.Once
	startDecided chan struct{}
	startHeld    bool // these two are written once, before startDecided is closed
	startClosed  bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewButton configures pin as an input with edge detection and starts
// watching it.
func NewButton(ctx context.Context, pin gpio.PinIn, opts ButtonOptions) (*Button, error) {
	b := &Button{
		pin:          pin,
		active:       gpio.High,
		debounce:     orDefault(opts.Debounce, DefaultDebounce),
		longPress:    orDefault(opts.LongPress, DefaultLongPress),
		startHold:    orDefault(opts.StartHold, DefaultStartHold),
		clock:        clockOrReal(opts.Clock),
		log:          opts.Logger,
		presses:      make(chan Press, pressBuffer),
		startDecided: make(chan struct{}),
	}
	if opts.ActiveLow {
		b.active = gpio.Low
	}
	b.edges, _ = pin.(EdgeSource)
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.debounce < 0 || b.longPress <= b.debounce || b.startHold <= b.debounce {
		return nil, fmt.Errorf("button %s: debounce %v must be at least 0 and shorter than long press %v and start hold %v",
			pin.Name(), b.debounce, b.longPress, b.startHold)
	}
	pull := opts.Pull.periph(opts.ActiveLow)
	if err := pin.In(pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("button %s: set input with %s and edge detection: %w", pin.Name(), pull, err)
	}
	b.log.Info("button ready", "pin", pin.Name(), "active_low", opts.ActiveLow, "pull", opts.Pull.String(),
		"debounce", b.debounce, "long_press", b.longPress, "edges", b.edgeMode())

	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		if b.edges != nil {
			b.runEdges(ctx)
		} else {
			b.run(ctx)
		}
	}()
	go func() {
		// WaitForEdge cannot take a context; Halt is how a wait is cut short.
		defer b.wg.Done()
		<-ctx.Done()
		if err := pin.Halt(); err != nil {
			b.log.Debug("halt button pin", "pin", pin.Name(), "err", err)
		}
	}()
	return b, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Presses delivers the presses. It is closed when the button stops. The
// button waits for the reader when pressBuffer presses are unread, so a
// reader should always be receiving (and ignore presses it has no use for).
func (b *Button) Presses() <-chan Press { return b.presses }

// HeldAtStart reports whether the button was down when NewButton started
// watching and stayed down for StartHold: the factory reset gesture. It
// returns false as soon as that is known (at once when the button was up),
// and ErrClosed if the button stopped first. The hold produces no Press,
// neither at LongPress nor at its release.
func (b *Button) HeldAtStart(ctx context.Context) (bool, error) {
	select {
	case <-b.startDecided:
		if b.startClosed {
			return false, ErrClosed
		}
		return b.startHeld, nil
	case <-ctx.Done():
		return false, fmt.Errorf("wait for start hold: %w", ctx.Err())
	}
}

// Close stops the button and waits for its goroutines.
func (b *Button) Close() error {
	b.cancel()
	b.wg.Wait()
	return nil
}

func (b *Button) decideStart(held, closed bool) {
	b.startOnce.Do(func() {
		b.startHeld, b.startClosed = held, closed
		close(b.startDecided)
	})
}

// buttonState is what run knows about the line. The committed state changes
// only after the line has been quiet for the debounce time.
type buttonState struct {
	pressed    bool
	pressStart time.Time
	longSent   bool
	bootHold   bool // the current press began before the button was opened

	burst      bool // edges seen, line not yet quiet
	burstStart time.Time
	lastEdge   time.Time
}

func (b *Button) run(ctx context.Context) {
	defer close(b.presses)
	defer b.decideStart(false, true)

	var s buttonState
	if b.pin.Read() == b.active {
		// Held while the box starts: a factory reset, if it lasts.
		s.pressed, s.pressStart, s.bootHold = true, b.clock.Now(), true
		b.log.Info("button down at start; hold for factory reset", "hold", b.startHold)
	} else {
		b.decideStart(false, false)
	}
	for ctx.Err() == nil {
		now := b.clock.Now()
		if s.burst && !now.Before(s.lastEdge.Add(b.debounce)) {
			s.burst = false
			b.settle(ctx, &s, b.pin.Read() == b.active)
		}
		if s.pressed && !s.burst {
			switch {
			case s.bootHold && !now.Before(s.pressStart.Add(b.startHold)):
				b.decideStart(true, false)
			case !s.bootHold && !s.longSent && !now.Before(s.pressStart.Add(b.longPress)):
				s.longSent = true
				b.emit(ctx, Press{Kind: Long, Start: s.pressStart, Held: now.Sub(s.pressStart)})
			}
		}
		wait := maxEdgeWait
		if deadline, ok := b.nextDeadline(&s); ok {
			wait = min(wait, deadline.Sub(now))
		}
		// The deadlines above were just handled, so wait is positive; the
		// floor guards against a spin should that ever be wrong, and against
		// gpioioctl's reading of 0 as "forever".
		wait = max(wait, time.Millisecond)
		if b.pin.WaitForEdge(wait) {
			// gpioioctl drops the kernel's edge timestamp, so the edge is
			// stamped on arrival; the kernel queues edges, so a late reader
			// still sees each one.
			t := b.clock.Now()
			if !s.burst {
				s.burst, s.burstStart = true, t
			}
			s.lastEdge = t
		}
	}
}

func (b *Button) nextDeadline(s *buttonState) (time.Time, bool) {
	switch {
	case s.burst:
		return s.lastEdge.Add(b.debounce), true
	case !s.pressed:
		return time.Time{}, false
	case s.bootHold:
		select {
		case <-b.startDecided:
			return time.Time{}, false
		default:
			return s.pressStart.Add(b.startHold), true
		}
	case !s.longSent:
		return s.pressStart.Add(b.longPress), true
	}
	return time.Time{}, false
}

// settle commits the level the line settled at after a burst of edges.
func (b *Button) settle(ctx context.Context, s *buttonState, down bool) {
	if down == s.pressed {
		return // a glitch: the line came back to where it was
	}
	if down {
		s.pressed, s.pressStart, s.longSent = true, s.burstStart, false
		return
	}
	s.pressed = false
	b.release(ctx, s.bootHold, s.longSent, s.pressStart, s.burstStart.Sub(s.pressStart))
	s.bootHold = false
}

// release ends a press that began at start and was held for held: it
// decides the start hold, stays silent after a long press, and delivers
// anything else.
func (b *Button) release(ctx context.Context, bootHold, longSent bool, start time.Time, held time.Duration) {
	switch {
	case bootHold:
		b.decideStart(false, false)
	case longSent:
		// Delivered when the long-press time was reached.
	case held >= b.longPress:
		// Released while the line was still bouncing at the long-press time.
		b.emit(ctx, Press{Kind: Long, Start: start, Held: held})
	default:
		b.emit(ctx, Press{Kind: Short, Start: start, Held: held})
	}
}

func (b *Button) emit(ctx context.Context, p Press) {
	b.log.Debug("button press", "pin", b.pin.Name(), "kind", p.Kind.String(), "held", p.Held)
	select {
	case b.presses <- p:
	case <-ctx.Done():
	}
}
