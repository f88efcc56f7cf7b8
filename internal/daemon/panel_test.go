//go:build cgo

package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	periphgpio "periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/gpio"
	"github.com/onair/onair/gpio/gpiofake"
)

// waitState waits for the hub to reach want, on its change channel.
func waitState(t *testing.T, hub *broadcast.Hub, want broadcast.State) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		st, changed := hub.Status()
		if st.State == want {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("state %s, waited for %s", st.State, want)
		}
	}
}

// press holds the (active-low) button as a person would, well past the
// debounce (edges are stamped when the button's goroutine reads them, which
// on a loaded machine can be late), and lets go.
func press(pin *gpiofake.LivePin) {
	pin.Drive(periphgpio.Low)
	time.Sleep(300 * time.Millisecond)
	pin.Drive(periphgpio.High)
}

func TestButtonAndLEDDriveTheBroadcast(t *testing.T) {
	button := gpiofake.NewLivePin("GPIO17", 17)
	button.Drive(periphgpio.High) // released (active low)
	led := gpiofake.NewPin("GPIO27", 27, gpiofake.NewClock(time.Now()))
	var r *running
	r = startWith(t, func(c *config.Config) { c.Video.Width, c.Video.Height = 320, 240 },
		Options{Pins: &Pins{Button: button, LED: led}})
	hub := r.d.Hub()
	// Idle: LED off (active low: the line is high).
	waitLevel(t, led, periphgpio.High)

	press(button)
	waitState(t, hub, broadcast.Live)
	waitLevel(t, led, periphgpio.Low) // live: solid on

	// The simulated button goes through the same path.
	if code, body := r.admin(t, http.MethodPost, "/api/button", `{"press":"short"}`); code != 200 {
		t.Fatalf("simulated press: %d %s", code, body)
	}
	waitState(t, hub, broadcast.Idle)
	waitLevel(t, led, periphgpio.High)

	press(button)
	waitState(t, hub, broadcast.Live)
	press(button)
	waitState(t, hub, broadcast.Idle)
	if err := button.Err(); err != nil {
		t.Fatalf("the button code misused the pin: %v", err)
	}
}

func waitLevel(t *testing.T, pin *gpiofake.Pin, want periphgpio.Level) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pin.Read() != want {
		if time.Now().After(deadline) {
			t.Fatalf("LED line is %v, want %v", pin.Read(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFactoryResetWhenHeldAtStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admin-token"), []byte("forgotten\n"), 0o600)
	button := gpiofake.NewLivePin("GPIO17", 17)
	button.Drive(periphgpio.Low) // held down while the box starts
	go func() {
		time.Sleep(11 * time.Second)
		button.Drive(periphgpio.High)
	}()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Video.Source, cfg.Audio.Source = "test", "test"
	cfg.Video.Width, cfg.Video.Height = 320, 240
	cfg.WebRTC.UDPPort = 0
	d, err := New(cfg, Options{Pins: &Pins{Button: button}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if d.AdminToken() == "forgotten" {
		t.Fatal("the admin token survived a factory reset")
	}
	b, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil || string(b) != d.AdminToken()+"\n" {
		t.Fatalf("new token not kept: %q %v", b, err)
	}
}

// TestLEDAlertsWhenTheUplinkStaysDown: live with a media server that
// refuses, the LED turns from live to the error pattern once the uplink has
// been down for uplink.led_alert_after, and back when the uplink is off.
func TestLEDAlertsWhenTheUplinkStaysDown(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	led := gpiofake.NewPin("GPIO27", 27, gpiofake.NewClock(time.Now()))
	r := startWith(t, func(c *config.Config) {
		c.Video.Width, c.Video.Height = 320, 240
		c.Uplink.WHIPURL = refusing.URL + "/whip"
		c.Uplink.LEDAlertAfter = config.Duration(time.Second)
	}, Options{Pins: &Pins{LED: led}})
	defer r.stop()
	r.goLive(t)
	waitPattern := func(want gpio.Pattern) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for r.d.panel.led.Pattern() != want {
			if time.Now().After(deadline) {
				t.Fatalf("LED shows %v, want %v (uplink %+v)", r.d.panel.led.Pattern(), want, r.d.Status().Uplink)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitPattern(gpio.PatternError)
	if st := r.d.Status(); st.State != "live" || st.Uplink.State != "retrying" || !strings.Contains(st.Uplink.Error, "503") {
		t.Fatalf("status %s, uplink %+v", st.State, st.Uplink)
	}
	off := false
	if err := r.d.setUplink(nil, nil, &off); err != nil {
		t.Fatal(err)
	}
	waitPattern(gpio.PatternLive)
}

// A problem the broadcast goes on with (the slate instead of the camera, an
// encoder restarting) shows as the error pattern while live, and goes away
// with the problem.
func TestLEDShowsAProblemWhileLive(t *testing.T) {
	led := gpiofake.NewPin("GPIO27", 27, gpiofake.NewClock(time.Now()))
	tally := gpiofake.NewPin("GPIO22", 22, gpiofake.NewClock(time.Now()))
	r := startWith(t, func(c *config.Config) { c.Video.Width, c.Video.Height = 320, 240 }, Options{Pins: &Pins{LED: led, Tally: tally}})
	defer r.stop()
	waitLevel(t, tally, periphgpio.High) // idle: the tally is dark (active low)
	r.goLive(t)
	wait := func(want gpio.Pattern) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for r.d.panel.led.Pattern() != want {
			if time.Now().After(deadline) {
				t.Fatalf("LED %v, want %v", r.d.panel.led.Pattern(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(gpio.PatternLive)
	r.d.Hub().SetProblem("camera /dev/video0 failed: unplugged")
	wait(gpio.PatternError)
	waitLevel(t, tally, periphgpio.Low) // the tally only says "on air"
	r.d.Hub().SetProblem("")
	wait(gpio.PatternLive)
	r.admin(t, http.MethodDelete, "/api/live", "")
	waitLevel(t, tally, periphgpio.High)
}
