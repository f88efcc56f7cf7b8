package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio/gpiofake"
)

type ledRig struct {
	clk *gpiofake.Clock
	pin *gpiofake.Pin
	led *LED
	t0  time.Time
}

func newLEDRig(t *testing.T, activeLow bool) *ledRig {
	t.Helper()
	clk := gpiofake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	r := &ledRig{clk: clk, pin: gpiofake.NewPin("GPIO22", 22, clk), t0: clk.Now()}
	led, err := NewLED(r.pin, LEDOptions{ActiveLow: activeLow, Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	r.led = led
	t.Cleanup(func() {
		if err := led.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// trace renders the writes after the first n as "+<ms>:<on|off>" relative to
// t0, with on meaning lit for an LED of the given polarity.
func (r *ledRig) trace(from int, activeLow bool) string {
	var b strings.Builder
	for _, s := range r.pin.History()[from:] {
		lit := s.Level == gpio.High
		if activeLow {
			lit = !lit
		}
		state := "off"
		if lit {
			state = "on"
		}
		fmt.Fprintf(&b, "+%d:%s ", s.At.Sub(r.t0).Milliseconds(), state)
	}
	return strings.TrimSpace(b.String())
}

func TestLEDPatternTiming(t *testing.T) {
	// Levels and exact change times over a little more than two cycles,
	// starting when the pattern is set at +0.
	tests := []struct {
		pattern Pattern
		until   time.Duration
		want    string
	}{
		{PatternOff, 10 * time.Second, ""},
		{PatternLive, 10 * time.Second, "+0:on"},
		{PatternIdleBlink, 6100 * time.Millisecond, "+0:on +100:off +3000:on +3100:off +6000:on +6100:off"},
		{PatternGoingLive, 450 * time.Millisecond, "+0:on +100:off +200:on +300:off +400:on"},
		{PatternStopping, 1100 * time.Millisecond, "+0:on +250:off +500:on +750:off +1000:on"},
		{PatternError, 3000 * time.Millisecond, "+0:on +150:off +300:on +450:off +1500:on +1650:off +1800:on +1950:off +3000:on"},
		{PatternOTA, 4500 * time.Millisecond, "+0:on +1000:off +2000:on +3000:off +4000:on"},
		{PatternFactoryReset, 4000 * time.Millisecond,
			"+0:on +100:off +200:on +300:off +400:on +500:off +600:on +1600:off " +
				"+2000:on +2100:off +2200:on +2300:off +2400:on +2500:off +2600:on +3600:off +4000:on"},
	}
	for _, activeLow := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%v/active_low=%v", tt.pattern, activeLow), func(t *testing.T) {
				r := newLEDRig(t, activeLow)
				if got := r.trace(0, activeLow); got != "+0:off" {
					t.Fatalf("after NewLED: %q, want +0:off", got)
				}
				if err := r.led.SetPattern(tt.pattern); err != nil {
					t.Fatal(err)
				}
				r.clk.Advance(tt.until)
				if got := r.trace(1, activeLow); got != tt.want {
					t.Fatalf("writes:\n got %s\nwant %s", got, tt.want)
				}
			})
		}
	}
}

func TestLEDActiveLowInverts(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		r := newLEDRig(t, activeLow)
		if err := r.led.SetPattern(PatternLive); err != nil {
			t.Fatal(err)
		}
		want := gpio.Level(!activeLow)
		if got := r.pin.Read(); got != want {
			t.Errorf("active_low=%v: line is %v while lit, want %v", activeLow, got, want)
		}
		if err := r.led.Close(); err != nil {
			t.Fatal(err)
		}
		if got := r.pin.Read(); got != !want {
			t.Errorf("active_low=%v: line is %v after Close, want %v (dark)", activeLow, got, !want)
		}
	}
}

func TestLEDSetPatternSwitchesAtOnce(t *testing.T) {
	r := newLEDRig(t, false)
	if err := r.led.SetPattern(PatternGoingLive); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(150 * time.Millisecond) // in the middle of an off step
	if err := r.led.SetPattern(PatternError); err != nil {
		t.Fatal(err)
	}
	if got := r.led.Pattern(); got != PatternError {
		t.Fatalf("Pattern() = %v", got)
	}
	r.clk.Advance(500 * time.Millisecond)
	// The error pattern starts at +150, the moment it is set, and the going
	// live timer due at +200 never fires.
	want := "+0:on +100:off +150:on +300:off +450:on +600:off"
	if got := r.trace(1, false); got != want {
		t.Fatalf("writes:\n got %s\nwant %s", got, want)
	}
	if err := r.led.SetPattern(PatternLive); err != nil {
		t.Fatal(err)
	}
	if n := r.clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending for a steady pattern, want 0", n)
	}
}

func TestLEDSamePatternKeepsRhythm(t *testing.T) {
	r := newLEDRig(t, false)
	if err := r.led.SetPattern(PatternStopping); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r.clk.Advance(100 * time.Millisecond)
		if err := r.led.SetPattern(PatternStopping); err != nil {
			t.Fatal(err)
		}
	}
	want := "+0:on +250:off +500:on"
	if got := r.trace(1, false); got != want {
		t.Fatalf("writes:\n got %s\nwant %s", got, want)
	}
}

func TestLEDClose(t *testing.T) {
	r := newLEDRig(t, false)
	if err := r.led.SetPattern(PatternOTA); err != nil {
		t.Fatal(err)
	}
	if err := r.led.Close(); err != nil {
		t.Fatal(err)
	}
	if n := r.clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending after Close, want 0", n)
	}
	r.clk.Advance(time.Minute)
	if got, want := r.trace(1, false), "+0:on +0:off"; got != want {
		t.Fatalf("writes:\n got %s\nwant %s", got, want)
	}
	if err := r.led.SetPattern(PatternLive); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetPattern after Close: %v, want ErrClosed", err)
	}
}

// TestLEDRealClock runs a blinking pattern on real time and closes it at
// once: no timing is asserted, only that Close leaves no timer callback
// behind (TestMain checks for leaked goroutines).
func TestLEDRealClock(t *testing.T) {
	clk := gpiofake.NewClock(time.Time{}) // stamps the fake pin's writes only
	led, err := NewLED(gpiofake.NewPin("GPIO22", 22, clk), LEDOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := led.SetPattern(PatternGoingLive); err != nil {
		t.Fatal(err)
	}
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
}

// failingPin is an output whose writes fail, like a line another process
// has claimed.
type failingPin struct{ *gpiofake.Pin }

func (failingPin) Out(gpio.Level) error { return errors.New("line busy") }

func TestLEDWriteError(t *testing.T) {
	clk := gpiofake.NewClock(time.Time{})
	if _, err := NewLED(failingPin{gpiofake.NewPin("GPIO22", 22, clk)}, LEDOptions{Clock: clk, Logger: quietLogger()}); err == nil ||
		!strings.Contains(err.Error(), "line busy") {
		t.Fatalf("NewLED on a failing line: err = %v, want the write's error", err)
	}
}

// flakyPin fails every write after the first ok ones, like a line taken
// away while the daemon runs.
type flakyPin struct {
	*gpiofake.Pin
	ok int
}

func (p *flakyPin) Out(l gpio.Level) error {
	if p.ok == 0 {
		return errors.New("line busy")
	}
	p.ok--
	return p.Pin.Out(l)
}

func TestLEDLogsFailingWritesOnce(t *testing.T) {
	clk := gpiofake.NewClock(time.Time{})
	logged := make(messages, 100)
	pin := &flakyPin{Pin: gpiofake.NewPin("GPIO22", 22, clk), ok: 2}
	led, err := NewLED(pin, LEDOptions{Clock: clk, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	<-logged // "led ready"
	if err := led.SetPattern(PatternGoingLive); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // 9 more steps, all failing
	if n := len(logged); n != 1 {
		t.Fatalf("%d log records for 9 failed writes, want 1", n)
	}
	if msg := <-logged; msg != "led write failed" {
		t.Fatalf("logged %q", msg)
	}
	// The rhythm goes on despite the failures.
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers pending, want 1", n)
	}
	if err := led.Close(); err == nil {
		t.Fatal("Close hid the failed write")
	}
}
