package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	periphgpio "periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/gpio"
)

// Pins lets tests hand the daemon fake pins instead of opening GPIO lines.
type Pins struct {
	Button periphgpio.PinIn
	LED    periphgpio.PinOut
	// Tally is the optional second LED: on while live, nothing else.
	Tally periphgpio.PinOut
	Clock gpio.Clock
}

// panel is the crew's whole interface on the box: one button, one LED.
type panel struct {
	button *gpio.Button
	led    *gpio.LED
	tally  *gpio.LED // optional: a tally light for the people on camera
}

// openPanel opens the configured button and LED. A machine without GPIO (a
// PC) runs without them and says so; a configured pin that fails is an error.
func openPanel(ctx context.Context, cfg config.GPIO, pins *Pins, log *slog.Logger) (*panel, error) {
	p := &panel{}
	if pins == nil && cfg.Button == "" && cfg.LED == "" && cfg.Tally == "" {
		log.Info("no button and no LED configured (gpio.button, gpio.led)")
		return p, nil
	}
	if pins == nil {
		host, err := gpio.OpenHost(log)
		if errors.Is(err, gpio.ErrNoGPIO) {
			log.Warn("running without a button and LED", "reason", err)
			return p, nil
		}
		if err != nil {
			return nil, err
		}
		pins = &Pins{}
		if cfg.Button != "" {
			if pins.Button, err = host.Input(cfg.Button); err != nil {
				return nil, fmt.Errorf("gpio.button: %w", err)
			}
		}
		if cfg.LED != "" {
			if pins.LED, err = host.Output(cfg.LED); err != nil {
				return nil, fmt.Errorf("gpio.led: %w", err)
			}
		}
		if cfg.Tally != "" {
			if pins.Tally, err = host.Output(cfg.Tally); err != nil {
				return nil, fmt.Errorf("gpio.tally: %w", err)
			}
		}
	}
	var err error
	if pins.Button != nil {
		p.button, err = gpio.NewButton(ctx, pins.Button, gpio.ButtonOptions{
			ActiveLow: cfg.ActiveLow, Debounce: cfg.Debounce.D(), LongPress: cfg.LongPress.D(),
			Clock: pins.Clock, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("gpio.button: %w", err)
		}
	}
	if pins.LED != nil {
		p.led, err = gpio.NewLED(pins.LED, gpio.LEDOptions{ActiveLow: cfg.ActiveLow, Clock: pins.Clock, Logger: log})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("gpio.led: %w", err)
		}
	}
	if pins.Tally != nil {
		p.tally, err = gpio.NewLED(pins.Tally, gpio.LEDOptions{ActiveLow: cfg.ActiveLow, Clock: pins.Clock, Logger: log})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("gpio.tally: %w", err)
		}
	}
	return p, nil
}

func (p *panel) close() {
	if p.button != nil {
		p.button.Close()
	}
	if p.led != nil {
		p.led.Close()
	}
	if p.tally != nil {
		p.tally.Close()
	}
}

// factoryResetIfHeld wipes the run-time settings and the admin token when
// the button is held through start, so a crew can recover a box nobody can
// log into. Replays and firmware stay.
func (p *panel) factoryResetIfHeld(ctx context.Context, dataDir string, log *slog.Logger) error {
	if p.button == nil {
		return nil
	}
	held, err := p.button.HeldAtStart(ctx)
	if err != nil || !held {
		return err
	}
	log.Warn("button held at start: factory reset of run-time settings and the admin token")
	if p.led != nil {
		p.led.SetPattern(gpio.PatternFactoryReset)
	}
	for _, name := range []string{"admin-token", "settings.json"} {
		if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("factory reset: %w", err)
		}
	}
	return nil
}

// run handles presses and keeps the LED on the broadcast's real state until
// ctx ends.
//
// refine, when set, adjusts the LED for what the state alone does not say
// (a problem while live, the uplink down, an update installing).
func (p *panel) run(ctx context.Context, hub *broadcast.Hub, press func(context.Context, gpio.PressKind) error,
	refine func(broadcast.Status, gpio.Pattern) gpio.Pattern, log *slog.Logger) {
	var wg sync.WaitGroup
	if p.button != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gpio.HandlePresses(ctx, p.button.Presses(), func(ctx context.Context, pr gpio.Press) {
				if err := press(ctx, pr.Kind); err != nil {
					log.Error("button", "press", pr.Kind, "err", err)
				}
			}, log)
		}()
	}
	if p.tally != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, changed := hub.Status()
				want := gpio.PatternOff
				if st.State == broadcast.Live {
					want = gpio.PatternLive
				}
				if err := p.tally.SetPattern(want); err != nil && !errors.Is(err, gpio.ErrClosed) {
					log.Error("tally LED", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
			}
		}()
	}
	if p.led != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The uplink and the updates have no change channel here: a look
			// every second is plenty for what they show.
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			shown := gpio.Pattern(-1)
			for {
				st, changed := hub.Status()
				want := ledPattern(st.State)
				if refine != nil {
					want = refine(st, want)
				}
				if want != shown {
					if err := p.led.SetPattern(want); err != nil && !errors.Is(err, gpio.ErrClosed) {
						log.Error("LED", "err", err)
					}
					shown = want
				}
				select {
				case <-ctx.Done():
					return
				case <-changed:
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
}

// ledPattern is what the LED shows for a state: it follows the real state,
// so a failed go-live ends in the error pattern, not "live".
func ledPattern(s broadcast.State) gpio.Pattern {
	switch s {
	case broadcast.GoingLive:
		return gpio.PatternGoingLive
	case broadcast.Live:
		return gpio.PatternLive
	case broadcast.Stopping:
		return gpio.PatternStopping
	case broadcast.Error:
		return gpio.PatternError
	default:
		return gpio.PatternOff
	}
}
