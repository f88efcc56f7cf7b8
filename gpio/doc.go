// Package gpio provides the crew's interface at the venue: one button and
// one or two LEDs on GPIO lines, through periph.io.
//
// # Opening lines
//
// OpenHost initialises periph's host drivers and opens lines by their config
// names (gpio.button, gpio.led): a Pi header name ("GPIO17") or a chip and
// line offset ("gpiochip0:17", for boards and VMs whose lines have no names).
// It logs the driver behind each line. The button's line, wherever a GPIO
// character device is behind it (Pi 5's RP1, Pi 4, 3 and Zero 2 W, VMs, any
// Linux board), goes through cdev, which keeps the kernel's record of each
// edge; LEDs stay on periph: gpioioctl (the character device) or bcm283x
// (registers, Pi 4, 3 and Zero 2 W). On a machine without GPIO it returns an
// error wrapping ErrNoGPIO, and the daemon runs without a button. ParsePin
// and ParsePull check config values at load time.
//
// # Button
//
// NewButton watches a gpio.PinIn (nothing more is needed) with one goroutine
// that sleeps until the line moves: no polling. The line must be quiet for
// the debounce time (default 30 ms) before its level counts, so a bouncing
// contact gives one press and a glitch gives none. When the pin is also an
// EdgeSource (cdev.Line, gpiofake.EdgePin), all of that is judged on the
// kernel's edge records, direction and time, so a button read late by a busy
// daemon still gets each press, timed as it happened; on a plain gpio.PinIn
// the button reads the level when the line has gone quiet. Presses arrive
// on Presses(): Short when released before the long-press time (default
// 3 s), Long the moment the button has been held that long (its release is
// silent). HandlePresses hands them to the daemon one at a time and drops
// those that come while the previous one is still being handled (going live
// or stopping), so presses never queue up as commands. PressKind's text form
// is that of POST /api/button, so the HTTP handler can feed the same code
// path.
//
// HeldAtStart answers the factory-reset question once at start: was the
// button already down when it was opened, and did it stay down for 10 s?
// That hold never becomes a Press.
//
// # LED
//
// NewLED drives a gpio.PinOut, active high or low. SetPattern switches at
// once to one of the on/off patterns (PatternOff, PatternIdleBlink,
// PatternGoingLive, PatternLive, PatternStopping, PatternError, PatternOTA,
// PatternFactoryReset); setting the pattern already shown keeps its rhythm.
// An LED owns no goroutine: each change is a clock callback. A second LED is
// a second LED value.
//
// # Lifetimes and time
//
// Close stops a Button or LED and waits for everything it started; a Button
// also stops when its context ends. Both take a Clock in their options: nil
// is real time, and tests use gpiofake.Clock and gpiofake.Pin (or EdgePin) to
// run debounce, long presses and patterns in virtual time, checked at exact
// instants without sleeping; gpiofake's Stall makes the button read late.
//
// # Use
//
//	host, err := gpio.OpenHost(log)
//	if errors.Is(err, gpio.ErrNoGPIO) {
//		log.Info("running without a button", "reason", err)
//	}
//	pin, err := host.Input(cfg.GPIO.Button)
//	btn, err := gpio.NewButton(ctx, pin, gpio.ButtonOptions{ActiveLow: cfg.GPIO.ActiveLow,
//		Debounce: cfg.GPIO.Debounce.D(), LongPress: cfg.GPIO.LongPress.D(), Logger: log})
//	defer btn.Close()
//	if held, _ := btn.HeldAtStart(ctx); held {
//		factoryReset() // then led.SetPattern(gpio.PatternFactoryReset)
//	}
//	gpio.HandlePresses(ctx, btn.Presses(), func(ctx context.Context, p gpio.Press) {
//		onButton(ctx, p.Kind) // hub.Toggle for Short, the long-press action for Long; as POST /api/button
//	}, log)
package gpio
