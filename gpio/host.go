package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/bcm283x"
	"periph.io/x/host/v3/gpioioctl"
)

// ErrNoGPIO means the machine has no GPIO lines periph can drive (a PC, a
// container without /dev/gpiochip*). The daemon then runs without a button
// and LED and says so.
var ErrNoGPIO = errors.New("no GPIO on this machine")

// Host opens GPIO lines by their config names. It is the only part of the
// package that touches periph's host drivers; buttons and LEDs take plain
// periph pins, so tests hand them fakes instead.
type Host struct {
	log        *slog.Logger
	byName     func(name string) gpio.PinIO
	byChipLine func(chip string, line int) (gpio.PinIO, error)
}

// OpenHost initialises periph's host drivers (the GPIO character device
// through gpioioctl on every Linux board, Pi 5's RP1 included, plus the
// bcm283x register driver on Pi 4, 3 and Zero 2 W) and logs which loaded.
// It returns an error wrapping ErrNoGPIO when no GPIO lines exist.
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
	return &Host{log: log, byName: gpioreg.ByName, byChipLine: chipLine}, nil
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

// Input opens the line named name (ParsePin's forms) for a button.
func (h *Host) Input(name string) (gpio.PinIn, error) {
	return h.open(name, "button")
}

// Output opens the line named name (ParsePin's forms) for an LED.
func (h *Host) Output(name string) (gpio.PinOut, error) {
	return h.open(name, "led")
}

func (h *Host) open(name, role string) (gpio.PinIO, error) {
	ref, err := ParsePin(name)
	if err != nil {
		return nil, err
	}
	if ref.IsZero() {
		return nil, fmt.Errorf("open %s pin: no pin configured", role)
	}
	var p gpio.PinIO
	if ref.Chip != "" {
		if p, err = h.byChipLine(ref.Chip, ref.Line); err != nil {
			return nil, fmt.Errorf("open %s pin %s: %w", role, ref, err)
		}
	} else if p = h.byName(ref.Name); p == nil {
		return nil, fmt.Errorf("open %s pin %s: no such line on this board (try the chip:line form)", role, ref)
	}
	h.log.Info("pin opened", "role", role, "config", ref.String(), "pin", p.Name(), "driver", driverOf(p))
	return p, nil
}

// driverOf names the periph driver behind p, so the log shows whether a
// Pi's lines go through registers or the character device (Pi 5's RP1 has
// only the latter).
func driverOf(p gpio.PinIO) string {
	for {
		r, ok := p.(gpio.RealPin)
		if !ok {
			break
		}
		p = r.Real()
	}
	switch p.(type) {
	case *gpioioctl.GPIOLine:
		return "gpioioctl (GPIO character device)"
	case *bcm283x.Pin:
		return "bcm283x (registers; edges through the GPIO character device)"
	}
	return fmt.Sprintf("%T", p)
}
