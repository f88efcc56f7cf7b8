package gpio_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	periphgpio "periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio"
	"github.com/onair/onair/gpio/gpiofake"
)

// A button on a fake line in virtual time: a bouncing 200 ms press and a
// 4 s hold.
func ExampleButton() {
	clock := gpiofake.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	line := gpiofake.NewPin("GPIO17", 17, clock)
	btn, err := gpio.NewButton(context.Background(), line, gpio.ButtonOptions{
		ActiveLow: true, Clock: clock, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer btn.Close()

	at := func(d time.Duration) time.Time { return clock.Now().Add(d) }
	line.Push(
		gpiofake.Edge{At: at(time.Second), Level: periphgpio.Low},
		gpiofake.Edge{At: at(time.Second + time.Millisecond), Level: periphgpio.High}, // bounce
		gpiofake.Edge{At: at(time.Second + 2*time.Millisecond), Level: periphgpio.Low},
		gpiofake.Edge{At: at(1200 * time.Millisecond), Level: periphgpio.High},
		gpiofake.Edge{At: at(2 * time.Second), Level: periphgpio.Low},
		gpiofake.Edge{At: at(6 * time.Second), Level: periphgpio.High},
	)
	line.RunUntil(at(10 * time.Second))
	for range 2 {
		p := <-btn.Presses()
		fmt.Println(p.Kind, p.Held)
	}
	// Output:
	// short 200ms
	// long 3s
}

// An LED showing the error pattern (a double blink) on a manual clock.
func ExampleLED() {
	clock := gpiofake.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	line := gpiofake.NewPin("GPIO22", 22, clock)
	led, err := gpio.NewLED(line, gpio.LEDOptions{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer led.Close()

	start := clock.Now()
	_ = led.SetPattern(gpio.PatternError)
	clock.Advance(1500 * time.Millisecond)
	for _, s := range line.History()[1:] {
		fmt.Println(s.At.Sub(start), s.Level)
	}
	// Output:
	// 0s High
	// 150ms Low
	// 300ms High
	// 450ms Low
	// 1.5s High
}
