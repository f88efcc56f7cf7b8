package gpio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio/cdev"
	"github.com/onair/onair/gpio/gpiofake"
)

func TestParsePin(t *testing.T) {
	tests := []struct {
		in      string
		want    PinRef
		wantErr bool
	}{
		{"", PinRef{}, false},
		{"GPIO17", PinRef{Name: "GPIO17"}, false},
		{"gpio17", PinRef{Name: "GPIO17"}, false},
		{"GPIO017", PinRef{Name: "GPIO17"}, false},
		{"GPIO0", PinRef{Name: "GPIO0"}, false},
		{"gpiochip0:17", PinRef{Chip: "gpiochip0", Line: 17}, false},
		{"gpiochip4:0", PinRef{Chip: "gpiochip4", Line: 0}, false},
		{"GPIO", PinRef{}, true},
		{"GPIO-1", PinRef{}, true},
		{"GPIO+1", PinRef{}, true},
		{"GPIO 17", PinRef{}, true},
		{"GPIO17 ", PinRef{}, true},
		{"17", PinRef{}, true},
		{"P1_11", PinRef{}, true},
		{"gpiochip0:", PinRef{}, true},
		{"gpiochip0:x", PinRef{}, true},
		{"gpiochip:17", PinRef{}, true},
		{"chip0:17", PinRef{}, true},
		{"gpiochip0:17:1", PinRef{}, true},
		{"gpiochip0:99999", PinRef{}, true},
		{"GPIO99999999999999999999", PinRef{}, true},
	}
	for _, tt := range tests {
		got, err := ParsePin(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePin(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "GPIO17") && !strings.Contains(err.Error(), "gpiochip0:17") &&
			!strings.Contains(err.Error(), "out of range") {
			t.Errorf("ParsePin(%q) error %q does not show the accepted forms", tt.in, err)
		}
	}
}

func FuzzParsePin(f *testing.F) {
	for _, s := range []string{"", "GPIO17", "gpio4", "gpiochip0:17", "gpiochip10:3", "GPIO", "gpiochip0:", ":", "GPIO１"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParsePin(s)
		if err != nil {
			if !ref.IsZero() {
				t.Fatalf("ParsePin(%q) returned %+v with error %v", s, ref, err)
			}
			return
		}
		// What parses prints in canonical form and parses back to itself.
		again, err := ParsePin(ref.String())
		if err != nil || again != ref {
			t.Fatalf("ParsePin(%q) = %+v, but ParsePin(%q) = %+v, %v", s, ref, ref.String(), again, err)
		}
		if ref.Line < 0 || ref.Line >= maxLine {
			t.Fatalf("ParsePin(%q): line %d out of range", s, ref.Line)
		}
	})
}

func TestParsePull(t *testing.T) {
	for in, want := range map[string]Pull{"": PullAuto, "auto": PullAuto, "up": PullUp, "UP": PullUp, "down": PullDown, "none": PullNone} {
		got, err := ParsePull(in)
		if err != nil || got != want {
			t.Errorf("ParsePull(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "" && in != "UP" && got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	if _, err := ParsePull("sideways"); err == nil {
		t.Error(`ParsePull("sideways") succeeded`)
	}
}

// fakeHost is a Host whose lines are fakes: GPIO17 by name, and chip
// gpiochip0 with 54 lines.
func fakeHost(t *testing.T) *Host {
	clk := gpiofake.NewClock(time.Time{})
	return &Host{
		log: quietLogger(),
		byName: func(name string) gpio.PinIO {
			if name == "GPIO17" {
				return gpiofake.NewPin(name, 17, clk)
			}
			return nil
		},
		byChipLine: func(chip string, line int) (gpio.PinIO, error) {
			if chip != "gpiochip0" {
				return nil, fmt.Errorf("no chip %s (chips: gpiochip0)", chip)
			}
			if line >= 54 {
				return nil, errors.New("gpiochip0 has lines 0 to 53")
			}
			return gpiofake.NewPin(fmt.Sprintf("%s-%d", chip, line), line, clk), nil
		},
	}
}

func TestHostOpensConfigNames(t *testing.T) {
	h := fakeHost(t)
	tests := []struct {
		name     string
		wantPin  string
		wantErr  string
		asOutput bool
	}{
		{name: "GPIO17", wantPin: "GPIO17"},
		{name: "gpio17", wantPin: "GPIO17", asOutput: true},
		{name: "gpiochip0:5", wantPin: "gpiochip0-5"},
		{name: "GPIO99", wantErr: "open button pin GPIO99: no such line"},
		{name: "gpiochip1:5", wantErr: "open button pin gpiochip1:5: no chip gpiochip1"},
		{name: "gpiochip0:60", wantErr: "lines 0 to 53", asOutput: true},
		{name: "", wantErr: "no pin configured"},
		{name: "pin 7", wantErr: "want a Pi header name"},
	}
	for _, tt := range tests {
		var (
			p   interface{ Name() string }
			err error
		)
		if tt.asOutput {
			p, err = h.Output(tt.name)
		} else {
			p, err = h.Input(tt.name)
		}
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("open %q: err = %v, want one containing %q", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("open %q: %v", tt.name, err)
		case p.Name() != tt.wantPin:
			t.Errorf("open %q: pin %s, want %s", tt.name, p.Name(), tt.wantPin)
		}
	}
}

func TestHostOpensInputsForEdges(t *testing.T) {
	tests := []struct {
		name      string
		edgeErr   error
		wantEdges bool
		wantErr   string
	}{
		{name: "character device", wantEdges: true},
		{name: "not on a character device"},
		{name: "not on Linux", edgeErr: cdev.ErrUnsupported},
		{name: "request fails", edgeErr: syscall.EACCES, wantErr: "open button pin gpiochip0:5: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t)
			var asked string
			h.edgeInput = func(p gpio.PinIO, name string) (gpio.PinIn, error) {
				asked = name
				if tt.edgeErr != nil || !tt.wantEdges {
					return nil, tt.edgeErr
				}
				return gpiofake.NewEdgePin(name, p.Number(), gpiofake.NewClock(time.Time{})), nil
			}
			in, err := h.Input("gpiochip0:5")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, tt.edgeErr) {
					t.Fatalf("Input = %v, want %q wrapping the errno", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, isEdges := in.(EdgeSource); isEdges != tt.wantEdges || asked != "gpiochip0-5" {
				t.Fatalf("Input gave %T (edges %v, want %v), edge input asked for %q", in, isEdges, tt.wantEdges, asked)
			}
			asked = ""
			if _, err := h.Output("gpiochip0:6"); err != nil || asked != "" {
				t.Fatalf("Output: %v; edge input asked for %q, want outputs left to periph", err, asked)
			}
		})
	}
}

// TestOpenHostWithoutGPIO runs periph's real host init: on a machine without
// GPIO chips (a PC, CI) the answer must be ErrNoGPIO, which the daemon turns
// into "running without a button".
func TestOpenHostWithoutGPIO(t *testing.T) {
	if testing.Short() {
		t.Skip("initialises periph's host drivers")
	}
	if chips, _ := filepath.Glob("/dev/gpiochip*"); len(chips) > 0 {
		t.Skipf("this machine has GPIO chips %v", chips)
	}
	if _, err := os.Stat("/sys/class/gpio"); err == nil {
		if entries, _ := os.ReadDir("/sys/class/gpio"); len(entries) > 2 {
			t.Skip("this machine has sysfs GPIO")
		}
	}
	h, err := OpenHost(quietLogger())
	if !errors.Is(err, ErrNoGPIO) {
		t.Fatalf("OpenHost = %v, %v; want ErrNoGPIO", h, err)
	}
	t.Logf("OpenHost: %v", err)
}
