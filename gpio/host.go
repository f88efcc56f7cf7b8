package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/bcm283x"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/onair/onair/gpio/cdev"
)

// ErrNoGPIO means the machine has no GPIO lines periph can drive (a PC, a
// container without /dev/gpiochip*). The daemon then runs without a button
// and LED and says so.
var ErrNoGPIO = errors.New("no GPIO on this machine")

// Host opens GPIO lines by their config names. It is the only part of the
// package that touches periph's host drivers and cdev; buttons and LEDs take
// plain periph pins, so tests hand them fakes instead.
//
// Which driver a line gets:
//   - An input (the button) on a line of a GPIO character device, which is
//     every line periph finds on Linux, goes through cdev.Line: the kernel's
//     record of each edge (direction, CLOCK_MONOTONIC time), so the button
//     debounces on when edges happened, not on when it read them (issue 6).
//     That covers gpioioctl's lines (Pi 5's RP1, VMs, any board) and bcm283x's
//     on Pi 4, 3 and Zero 2 W, whose edges come from the character device
//     too: cdev asks the kernel for the bias that bcm283x would set in its
//     registers. periph's own line object is left unrequested.
//   - Outputs (LEDs) stay on periph: gpioioctl's line, or bcm283x's register
//     writes on the older Pis.
//   - Anything else periph registers (no character device behind it) stays on
//     periph for both, and the button falls back to reading levels.
type Host struct {
	log        *slog.Logger
	byName     func(name string) gpio.PinIO
	byChipLine func(chip string, line int) (gpio.PinIO, error)
	// edgeInput opens p, found by periph, as a cdev input named name; nil
	// (no error) when no character-device line is behind p. Nil in tests
	// whose pins are fakes.
	edgeInput func(p gpio.PinIO, name string) (gpio.PinIn, error)
}

// OpenHost initialises periph's host drivers (the GPIO character device
// through gpioioctl on every Linux board, Pi 5's RP1 included, plus the
// bcm283x register driver on Pi 4, 3 and Zero 2 W) and logs which loaded.
// Inputs are then opened through cdev (see Host). It returns an error
// wrapping ErrNoGPIO when no GPIO lines exist.
func OpenHost(log *slog.Logger) (*Host, error) {
	if log == nil {
		log = slog.Default()
	}
	state, err := host.Init()
	if err != nil {
		return nil, fmt.Errorf("init periph host drivers: %w", err)
	}
	var loaded, skipped, gpioSkipped []string
	for _, d := range state.Loaded {
		loaded = append(loaded, d.String())
	}
	for _, f := range state.Skipped {
		skipped = append(skipped, f.String())
		// periph also probes I²C, SPI, 1-Wire and more; only GPIO reasons
		// explain a missing button.
		if strings.Contains(f.D.String(), "gpio") {
			gpioSkipped = append(gpioSkipped, f.String())
		}
	}
	for _, f := range state.Failed {
		log.Warn("periph driver failed", "driver", f.D.String(), "err", f.Err)
	}
	log.Debug("periph drivers", "loaded", loaded, "skipped", skipped)
	if len(gpioioctl.Chips) == 0 && len(gpioreg.All()) == 0 {
		return nil, fmt.Errorf("%w (%s)", ErrNoGPIO, strings.Join(gpioSkipped, "; "))
	}
	var chips []string
	for _, c := range gpioioctl.Chips {
		chips = append(chips, fmt.Sprintf("%s (%s, %d lines)", c.Name(), c.Label(), c.LineCount()))
	}
	log.Info("gpio ready", "drivers", loaded, "chips", chips)
	return &Host{log: log, byName: gpioreg.ByName, byChipLine: chipLine, edgeInput: newEdgeInputs().open}, nil
}

// edgeInputs opens cdev lines, one per chip line: a second Input of the same
// line (a button made again) gets the same Line, as periph hands out the
// same pin, because the kernel grants a line to one request at a time.
type edgeInputs struct {
	mu    sync.Mutex
	lines map[string]*cdev.Line
}

func newEdgeInputs() *edgeInputs { return &edgeInputs{lines: map[string]*cdev.Line{}} }

func (e *edgeInputs) open(p gpio.PinIO, name string) (gpio.PinIn, error) {
	chipPath, offset, ok := characterDeviceLine(p)
	if !ok {
		return nil, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key := fmt.Sprintf("%s:%d", chipPath, offset)
	if l, ok := e.lines[key]; ok {
		return l, nil
	}
	l, err := cdev.Open(chipPath, offset, name)
	if err != nil {
		return nil, err
	}
	e.lines[key] = l
	return l, nil
}

// characterDeviceLine finds the chip device and offset behind a pin periph
// found, if it has one.
func characterDeviceLine(p gpio.PinIO) (chipPath string, offset int, ok bool) {
	switch real := realPin(p).(type) {
	case *gpioioctl.GPIOLine:
		for _, c := range gpioioctl.Chips {
			for _, l := range c.Lines() {
				if l == real {
					return c.Path(), real.Number(), true
				}
			}
		}
	case *bcm283x.Pin:
		// bcm283x takes a line's edges from the line of the same number on
		// the first chip (the SoC's pinctrl chip, which gpioioctl sorts
		// first); the button takes them from there too.
		if len(gpioioctl.Chips) > 0 && real.Number() < gpioioctl.Chips[0].LineCount() {
			return gpioioctl.Chips[0].Path(), real.Number(), true
		}
	}
	return "", 0, false
}

// chipLine finds a line of a chip that gpioioctl opened, by the chip's kernel
// name or device file name ("gpiochip0").
func chipLine(chip string, line int) (gpio.PinIO, error) {
	var names []string
	for _, c := range gpioioctl.Chips {
		if c.Name() != chip && filepath.Base(c.Path()) != chip {
			names = append(names, c.Name())
			continue
		}
		if line >= c.LineCount() {
			return nil, fmt.Errorf("%s has lines 0 to %d", chip, c.LineCount()-1)
		}
		return c.ByNumber(line), nil
	}
	return nil, fmt.Errorf("no chip %s (chips: %s)", chip, strings.Join(names, ", "))
}

// Input opens the line named name (ParsePin's forms) for a button: through
// cdev where the line is on a GPIO character device, so that the pin is an
// EdgeSource, else through periph.
func (h *Host) Input(name string) (gpio.PinIn, error) {
	p, ref, err := h.find(name, "button")
	if err != nil {
		return nil, err
	}
	if h.edgeInput != nil {
		pinName := p.Name()
		if pinName == "" {
			pinName = ref.String() // QEMU's lines, for one, have no names
		}
		in, err := h.edgeInput(p, pinName)
		switch {
		case errors.Is(err, cdev.ErrUnsupported):
			h.log.Info("button pin: kernel edge records skipped; the button debounces on levels read", "reason", err)
		case err != nil:
			return nil, fmt.Errorf("open button pin %s: %w", ref, err)
		case in != nil:
			h.log.Info("pin opened", "role", "button", "config", ref.String(), "pin", in.Name(),
				"driver", driverOf(in), "instead_of", driverOf(p))
			return in, nil
		}
	}
	h.log.Info("pin opened", "role", "button", "config", ref.String(), "pin", p.Name(), "driver", driverOf(p))
	return p, nil
}

// Output opens the line named name (ParsePin's forms) for an LED.
func (h *Host) Output(name string) (gpio.PinOut, error) {
	p, ref, err := h.find(name, "led")
	if err != nil {
		return nil, err
	}
	h.log.Info("pin opened", "role", "led", "config", ref.String(), "pin", p.Name(), "driver", driverOf(p))
	return p, nil
}

func (h *Host) find(name, role string) (gpio.PinIO, PinRef, error) {
	ref, err := ParsePin(name)
	if err != nil {
		return nil, ref, err
	}
	if ref.IsZero() {
		return nil, ref, fmt.Errorf("open %s pin: no pin configured", role)
	}
	var p gpio.PinIO
	if ref.Chip != "" {
		if p, err = h.byChipLine(ref.Chip, ref.Line); err != nil {
			return nil, ref, fmt.Errorf("open %s pin %s: %w", role, ref, err)
		}
	} else if p = h.byName(ref.Name); p == nil {
		return nil, ref, fmt.Errorf("open %s pin %s: no such line on this board (try the chip:line form)", role, ref)
	}
	return p, ref, nil
}

// realPin unwraps periph's aliases (gpioreg's "17" for "GPIO17").
func realPin(p gpio.PinIn) gpio.PinIn {
	for {
		r, ok := p.(gpio.RealPin)
		if !ok {
			return p
		}
		p = r.Real()
	}
}

// driverOf names the driver behind p, so the log shows whether a Pi's lines
// go through registers or the character device (Pi 5's RP1 has only the
// latter), and whether the button gets the kernel's edge records.
func driverOf(p gpio.PinIn) string {
	switch realPin(p).(type) {
	case *cdev.Line:
		return "cdev (GPIO character device, kernel edge records)"
	case *gpioioctl.GPIOLine:
		return "gpioioctl (GPIO character device)"
	case *bcm283x.Pin:
		return "bcm283x (registers; edges through the GPIO character device)"
	}
	return fmt.Sprintf("%T", p)
}
