package gpio

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Pattern is what an LED shows. GPIO lines have no PWM here, so every pattern
// is made of on and off only, and each is told apart from the others by
// rhythm alone.
type Pattern int

const (
	// PatternOff is dark: idle, or the daemon not running.
	PatternOff Pattern = iota
	// PatternIdleBlink is a short flash every 3 s: idle, for crews who want
	// to see that the box is alive (config).
	PatternIdleBlink
	// PatternGoingLive is a fast blink (5 Hz).
	PatternGoingLive
	// PatternLive is solidly on.
	PatternLive
	// PatternStopping is a blink (2 Hz).
	PatternStopping
	// PatternError is a double blink every 1.5 s: no camera, encoder failure,
	// uplink down.
	PatternError
	// PatternOTA is a slow blink (1 s on, 1 s off): an update is being
	// installed.
	PatternOTA
	// PatternFactoryReset is three quick flashes and a long glow: the
	// factory reset is confirmed.
	PatternFactoryReset
)

// step is one stretch of a pattern. A pattern is a cycle of steps; a single
// step with no duration is a steady level.
type step struct {
	on  bool
	dur time.Duration
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// steps returns the cycle of p; every pattern starts with its first step when
// set, so a change is visible at once.
func (p Pattern) steps() []step {
	switch p {
	case PatternIdleBlink:
		return []step{{true, ms(100)}, {false, ms(2900)}}
	case PatternGoingLive:
		return []step{{true, ms(100)}, {false, ms(100)}}
	case PatternLive:
		return []step{{true, 0}}
	case PatternStopping:
		return []step{{true, ms(250)}, {false, ms(250)}}
	case PatternError:
		return []step{{true, ms(150)}, {false, ms(150)}, {true, ms(150)}, {false, ms(1050)}}
	case PatternOTA:
		return []step{{true, ms(1000)}, {false, ms(1000)}}
	case PatternFactoryReset:
		return []step{
			{true, ms(100)}, {false, ms(100)}, {true, ms(100)}, {false, ms(100)}, {true, ms(100)}, {false, ms(100)},
			{true, ms(1000)}, {false, ms(400)},
		}
	}
	return []step{{false, 0}}
}

// String names the pattern for logs.
func (p Pattern) String() string {
	switch p {
	case PatternOff:
		return "off"
	case PatternIdleBlink:
		return "idle-blink"
	case PatternGoingLive:
		return "going-live"
	case PatternLive:
		return "live"
	case PatternStopping:
		return "stopping"
	case PatternError:
		return "error"
	case PatternOTA:
		return "ota"
	case PatternFactoryReset:
		return "factory-reset"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// LEDOptions configure an LED. The zero value is an active-high LED on real
// time.
type LEDOptions struct {
	// ActiveLow: the LED lights while the line is low.
	ActiveLow bool
	// Clock is the time source; nil means real time.
	Clock Clock
	// Logger receives the LED's logs; nil means slog.Default().
	Logger *slog.Logger
}

// LED shows patterns on an output line. It owns no goroutine: each change of
// level is a clock callback that sets the next one, and Close waits for a
// callback in progress. A second LED is a second LED value.
type LED struct {
	pin     gpio.PinOut
	onLevel gpio.Level
	clock   Clock
	log     *slog.Logger

	mu      sync.Mutex
	closed  bool
	pattern Pattern
	steps   []step
	index   int
	due     time.Time // when the current step ends; steps are timed from here so blinking does not drift
	gen     uint64    // bumped on every change, so a callback that lost a race with it does nothing
	stop    func() bool
	written bool
	level   gpio.Level
	failing bool // an error was logged; log again only after a write succeeds

	callbacks sync.WaitGroup
}

// NewLED configures pin as an output and turns the LED off.
func NewLED(pin gpio.PinOut, opts LEDOptions) (*LED, error) {
	l := &LED{pin: pin, onLevel: gpio.High, clock: clockOrReal(opts.Clock), log: opts.Logger}
	if opts.ActiveLow {
		l.onLevel = gpio.Low
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.steps = PatternOff.steps()
	if err := l.showLocked(); err != nil {
		return nil, fmt.Errorf("led %s: %w", pin.Name(), err)
	}
	l.log.Info("led ready", "pin", pin.Name(), "active_low", opts.ActiveLow)
	return l, nil
}

// SetPattern switches to p at once, starting with p's first step. Setting
// the pattern already shown changes nothing, so the daemon may set it on
// every status update without restarting the rhythm. The error is that of
// the first write; later writes that fail are logged.
func (l *LED) SetPattern(p Pattern) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if p == l.pattern {
		return nil
	}
	l.cancelLocked()
	l.pattern, l.steps, l.index = p, p.steps(), 0
	l.due = l.clock.Now()
	if err := l.showLocked(); err != nil {
		return fmt.Errorf("led %s: show %s: %w", l.pin.Name(), p, err)
	}
	return nil
}

// Pattern returns the pattern being shown.
func (l *LED) Pattern() Pattern {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pattern
}

// Close stops the pattern, turns the LED off and waits for a level change in
// progress.
func (l *LED) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.cancelLocked()
	err := l.writeLocked(false)
	l.mu.Unlock()
	l.callbacks.Wait()
	if err != nil {
		return fmt.Errorf("led %s: turn off: %w", l.pin.Name(), err)
	}
	return nil
}

// showLocked writes the current step and schedules the next one.
func (l *LED) showLocked() error {
	s := l.steps[l.index]
	err := l.writeLocked(s.on)
	if s.dur > 0 {
		l.due = l.due.Add(s.dur)
		gen := l.gen
		l.callbacks.Add(1)
		l.stop = l.clock.AfterFunc(l.due.Sub(l.clock.Now()), func() {
			defer l.callbacks.Done()
			l.next(gen)
		})
	}
	return err
}

func (l *LED) next(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || gen != l.gen {
		return
	}
	l.index = (l.index + 1) % len(l.steps)
	if err := l.showLocked(); err != nil && !l.failing {
		l.failing = true
		l.log.Error("led write failed", "pin", l.pin.Name(), "pattern", l.pattern.String(), "err", err)
	}
}

// cancelLocked stops the pending callback, or makes it a no-op if it is
// already running.
func (l *LED) cancelLocked() {
	l.gen++
	if l.stop != nil && l.stop() {
		l.callbacks.Done()
	}
	l.stop = nil
}

func (l *LED) writeLocked(on bool) error {
	level := !l.onLevel
	if on {
		level = l.onLevel
	}
	// Only changes are written: a steady pattern costs no syscalls.
	if l.written && level == l.level {
		return nil
	}
	if err := l.pin.Out(level); err != nil {
		return err
	}
	l.written, l.level, l.failing = true, level, false
	return nil
}
