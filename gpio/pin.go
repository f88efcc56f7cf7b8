package gpio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
)

// ErrClosed is returned by a Button or LED used after Close.
var ErrClosed = errors.New("gpio: closed")

// PinRef is a pin as named in the config: either a Pi header name (Name,
// e.g. "GPIO17") or a GPIO chip and line offset (Chip and Line, e.g.
// "gpiochip0:17", for boards and VMs whose lines have no names). The zero
// PinRef means no pin.
type PinRef struct {
	Name string
	Chip string
	Line int
}

// maxLine bounds line offsets; no GPIO chip has this many lines, and the bound
// keeps absurd config values from reaching the kernel.
const maxLine = 1 << 16

// ParsePin parses a config pin name: "GPIO17" (any case), "gpiochip0:17", or
// "" for no pin.
func ParsePin(s string) (PinRef, error) {
	if s == "" {
		return PinRef{}, nil
	}
	if chip, line, ok := strings.Cut(s, ":"); ok {
		n, okChip := strings.CutPrefix(chip, "gpiochip")
		if !okChip || !isDecimal(n) || !isDecimal(line) {
			return PinRef{}, fmt.Errorf("gpio pin %q: want a chip and line offset like gpiochip0:17", s)
		}
		offset, err := strconv.Atoi(line)
		if err != nil || offset >= maxLine {
			return PinRef{}, fmt.Errorf("gpio pin %q: line offset out of range", s)
		}
		return PinRef{Chip: chip, Line: offset}, nil
	}
	if n, ok := cutPrefixFold(s, "GPIO"); ok && isDecimal(n) {
		if number, err := strconv.Atoi(n); err == nil && number < maxLine {
			return PinRef{Name: "GPIO" + strconv.Itoa(number)}, nil
		}
	}
	return PinRef{}, fmt.Errorf("gpio pin %q: want a Pi header name like GPIO17 or a chip and line offset like gpiochip0:17", s)
}

// IsZero reports whether r names no pin.
func (r PinRef) IsZero() bool { return r == PinRef{} }

// String returns r in the config's form.
func (r PinRef) String() string {
	if r.Chip != "" {
		return r.Chip + ":" + strconv.Itoa(r.Line)
	}
	return r.Name
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// Pull is the button line's pull resistor as the config gives it.
type Pull int

const (
	// PullAuto pulls the line to its released level: up for an active-low
	// button (wired to ground), down for an active-high one.
	PullAuto Pull = iota
	// PullUp enables the internal pull-up.
	PullUp
	// PullDown enables the internal pull-down.
	PullDown
	// PullNone disables the internal resistors, for a board with its own.
	PullNone
)

// ParsePull parses the config value: "" or "auto", "up", "down", "none".
func ParsePull(s string) (Pull, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return PullAuto, nil
	case "up":
		return PullUp, nil
	case "down":
		return PullDown, nil
	case "none":
		return PullNone, nil
	}
	return PullAuto, fmt.Errorf("gpio pull %q: want auto, up, down or none", s)
}

// String returns the config value of p.
func (p Pull) String() string {
	switch p {
	case PullUp:
		return "up"
	case PullDown:
		return "down"
	case PullNone:
		return "none"
	}
	return "auto"
}

// periph maps p to periph's pull for a line that is active low or high.
func (p Pull) periph(activeLow bool) gpio.Pull {
	switch p {
	case PullUp:
		return gpio.PullUp
	case PullDown:
		return gpio.PullDown
	case PullNone:
		return gpio.Float
	}
	if activeLow {
		return gpio.PullUp
	}
	return gpio.PullDown
}
