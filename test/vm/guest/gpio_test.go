package guest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	periphgpio "periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio"
)

// QEMU's arm virt machine has one PL061 GPIO controller (gpiochip0) and
// wires its line 3 to the power button: QMP system_powerdown raises the line
// for about 100 ms. The line is active high, and its other lines are free:
// line 4 is our LED, whose level the host also sees through QEMU's
// pl061_set_output trace. QEMU's lines have no names, hence chip:line.
const (
	buttonLine = "gpiochip0:3"
	ledLine    = "gpiochip0:4"
	ledOffset  = 4
	// pressPulse is QEMU's fixed pulse (hw/arm/virt.c).
	pressPulse = 100 * time.Millisecond
)

// openGPIO opens the GPIO host, skipping where QEMU has no GPIO controller
// for Debian's kernel to drive.
func openGPIO(t *testing.T) *gpio.Host {
	t.Helper()
	if runtime.GOARCH == "amd64" {
		t.Skip("QEMU's x86 machines have no GPIO controller that Debian's amd64 kernel drives, " +
			"and Debian's kernels build neither gpio-sim nor gpio-mockup: the button runs on arm64 and armv7")
	}
	host, err := gpio.OpenHost(testLogger(t))
	if err != nil {
		t.Fatalf("open GPIO: %v", err)
	}
	return host
}

// tracedPin records what the button does with its line: each wait for an
// edge and each level read, with the time, so that a lost press can be told
// apart from a lost edge. The record is printed when a press goes missing.
type tracedPin struct {
	periphgpio.PinIn
	start  time.Time
	mu     sync.Mutex
	events []string
	edges  []time.Duration // when WaitForEdge returned one, since start
	reads  []levelRead
	// requested is when each press was asked for.
	requested map[int]time.Duration
}

// levelRead is one Read of the line: when, and what it gave.
type levelRead struct {
	at    time.Duration
	level periphgpio.Level
}

func (p *tracedPin) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf("%8.1fms ", float64(time.Since(p.start).Microseconds())/1000)+fmt.Sprintf(format, args...))
}

// request notes that press n was asked for.
func (p *tracedPin) request(n int) {
	p.mu.Lock()
	if p.requested == nil {
		p.requested = map[int]time.Duration{}
	}
	p.requested[n] = time.Since(p.start)
	p.mu.Unlock()
	p.note("press %d requested", n)
}

// requestedAt is when press n was last asked for.
func (p *tracedPin) requestedAt(n int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requested[n]
}

// edgeCount is how many edges the button has seen so far.
func (p *tracedPin) edgeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.edges)
}

// edgesSince returns the times of the edges after the first n.
func (p *tracedPin) edgesSince(n int) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.edges[n:]...)
}

func (p *tracedPin) WaitForEdge(timeout time.Duration) bool {
	edge := p.PinIn.WaitForEdge(timeout)
	if edge {
		p.mu.Lock()
		p.edges = append(p.edges, time.Since(p.start))
		p.mu.Unlock()
		p.note("edge")
	}
	return edge
}

func (p *tracedPin) Read() periphgpio.Level {
	level := p.PinIn.Read()
	p.mu.Lock()
	p.reads = append(p.reads, levelRead{at: time.Since(p.start), level: level})
	p.mu.Unlock()
	p.note("read %v", level)
	return level
}

// firstReadAfter returns the button's first read of the line after at.
func (p *tracedPin) firstReadAfter(at time.Duration) (levelRead, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.reads {
		if r.at > at {
			return r, true
		}
	}
	return levelRead{}, false
}

// record returns the last n events.
func (p *tracedPin) record(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.events[max(0, len(p.events)-n):], "\n")
}

// pressRecorder counts what HandlePresses hands over: the daemon's toggles.
type pressRecorder struct {
	mu       sync.Mutex
	toggles  int
	presses  chan gpio.Press
	pin      *tracedPin
	debounce time.Duration
	// retries counts the requests asked again (see press).
	retries int
}

func (r *pressRecorder) handle(_ context.Context, p gpio.Press) {
	r.mu.Lock()
	r.toggles++
	r.mu.Unlock()
	r.presses <- p
}

func (r *pressRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.toggles
}

// runButton starts a Button on the power-button line with HandlePresses
// behind it, as the daemon wires them; the returned stop closes both.
func runButton(t *testing.T, host *gpio.Host, opts gpio.ButtonOptions) (*pressRecorder, func()) {
	t.Helper()
	line, err := host.Input(buttonLine)
	if err != nil {
		t.Fatalf("open button: %v", err)
	}
	pin := &tracedPin{PinIn: line, start: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	btn, err := gpio.NewButton(ctx, pin, opts)
	if err != nil {
		cancel()
		t.Fatalf("new button: %v", err)
	}
	// The button samples the line when its goroutine starts; a press before
	// that would be a button held at start (factory reset), not a press.
	// HeldAtStart returns as soon as that sample says "up".
	if held, err := btn.HeldAtStart(ctx); err != nil || held {
		cancel()
		btn.Close()
		t.Fatalf("button held at start (%v, %v): the line should rest low", held, err)
	}
	rec := &pressRecorder{presses: make(chan gpio.Press, 64), pin: pin, debounce: opts.Debounce}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gpio.HandlePresses(ctx, btn.Presses(), rec.handle, opts.Logger)
	}()
	return rec, func() {
		cancel()
		btn.Close()
		<-done
	}
}

// maxRetries bounds the requests press asks again in one test.
const maxRetries = 3

// press asks the host for a QMP press and waits for the button to report
// it. Two kinds of request go astray in emulation and are asked again, at
// most maxRetries times in a test, each logged with what the button saw:
// one the line never showed (no edge within 3 s: the console line or the
// QMP command was lost), and one whose pulse was over when the button read
// the line at the end of its debounce time. QEMU times the pulse on the
// host's clock, so a host that stalls QEMU shortens it as the guest sees
// it, and the button's goroutine can wake late under emulation; a pulse
// over before the line was read is a glitch to the button, which debounces
// on the level it reads, not on the kernel's edge times (periph's
// WaitForEdge drops them). Anything else without a press fails the test.
func press(t *testing.T, rec *pressRecorder, n int) gpio.Press {
	t.Helper()
	for {
		mark := rec.pin.edgeCount()
		rec.pin.request(n)
		hostRequest("system_powerdown")
		select {
		case p := <-rec.presses:
			return p
		case <-time.After(3 * time.Second):
		}
		edges := rec.pin.edgesSince(mark)
		lost := len(edges) == 0
		var read levelRead
		glitch := false
		if !lost {
			var ok bool
			read, ok = rec.pin.firstReadAfter(edges[0])
			glitch = ok && read.level == periphgpio.Low
		}
		if (lost || glitch) && rec.retries < maxRetries {
			rec.retries++
			if lost {
				t.Logf("press %d: the line showed no edge within 3 s of the request; asking again", n)
			} else {
				t.Logf("press %d: edge after %v, line read low %v after that edge (edges at %v): the pulse was over before the debounce ended; asking again\n%s",
					n, edges[0]-rec.pin.requestedAt(n), read.at-edges[0], edges, rec.pin.record(10))
			}
			continue
		}
		select {
		case p := <-rec.presses:
			return p
		case <-time.After(7 * time.Second):
			t.Fatalf("press %d: no press reported within 10 s of the QMP request; what the button saw (latest last):\n%s", n, rec.pin.record(40))
			return gpio.Press{}
		}
	}
}

func TestButton(t *testing.T) {
	inGuest(t)
	host := openGPIO(t)

	t.Run("ShortPresses", func(t *testing.T) {
		log := testLogger(t)
		rec, stop := runButton(t, host, gpio.ButtonOptions{
			ActiveLow: false, Debounce: 30 * time.Millisecond, LongPress: 3 * time.Second, Logger: log,
		})
		defer stop()
		const presses = 20
		var minHeld, maxHeld time.Duration
		for i := 1; i <= presses; i++ {
			p := press(t, rec, i)
			if p.Kind != gpio.Short {
				t.Fatalf("press %d: %s press (held %v), want short", i, p.Kind, p.Held)
			}
			// QEMU holds the line for 100 ms of the host's clock; the guest
			// sees it with emulation's jitter, and never shorter than the
			// debounce time, or it would not be a press.
			if p.Held < rec.debounce || p.Held > 10*pressPulse {
				t.Errorf("press %d held %v, QEMU's pulse is %v", i, p.Held, pressPulse)
			}
			if i == 1 || p.Held < minHeld {
				minHeld = p.Held
			}
			maxHeld = max(maxHeld, p.Held)
		}
		// A stray edge after the last press would show as an extra toggle.
		time.Sleep(300 * time.Millisecond)
		if got := rec.count(); got != presses {
			t.Errorf("%d presses gave %d toggles", presses, got)
		}
		t.Logf("%d presses -> %d toggles, held %v to %v; %d requests asked again", presses, rec.count(), minHeld, maxHeld, rec.retries)
	})

	t.Run("LongPress", func(t *testing.T) {
		// QEMU's pulse is fixed, so the long press is set below it.
		rec, stop := runButton(t, host, gpio.ButtonOptions{
			ActiveLow: false, Debounce: 20 * time.Millisecond, LongPress: 60 * time.Millisecond, Logger: testLogger(t),
		})
		defer stop()
		p := press(t, rec, 1)
		if p.Kind != gpio.Long || p.Held < 60*time.Millisecond {
			t.Fatalf("got a %s press held %v, want long (long_press 60ms)", p.Kind, p.Held)
		}
		time.Sleep(300 * time.Millisecond)
		if got := rec.count(); got != 1 {
			t.Errorf("one long press gave %d toggles (its release must be silent)", got)
		}
		t.Logf("long press after %v", p.Held)
	})
}

func TestLED(t *testing.T) {
	inGuest(t)
	host := openGPIO(t)
	pin, err := host.Output(ledLine)
	if err != nil {
		t.Fatalf("open LED: %v", err)
	}
	led, err := gpio.NewLED(pin, gpio.LEDOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new LED: %v", err)
	}
	defer led.Close()

	for _, step := range []struct {
		pattern gpio.Pattern
		level   string
	}{
		{gpio.PatternLive, "hi"},
		{gpio.PatternOff, "lo"},
		{gpio.PatternLive, "hi"},
	} {
		if err := led.SetPattern(step.pattern); err != nil {
			t.Fatalf("set %s: %v", step.pattern, err)
		}
		got, err := lineState(ledOffset)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pattern %s: the kernel reads the line as %q", step.pattern, got)
		if got != "out "+step.level {
			t.Errorf("pattern %s: line reads %q, want %q", step.pattern, got, "out "+step.level)
		}
	}
	// Blink for a while; the host counts the line's changes in QEMU's
	// trace of the PL061 (VMTEST-HOST led-blinked tells it what to expect).
	if err := led.SetPattern(gpio.PatternGoingLive); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if err := led.SetPattern(gpio.PatternOff); err != nil {
		t.Fatal(err)
	}
	got, err := lineState(ledOffset)
	if err != nil {
		t.Fatal(err)
	}
	if got != "out lo" {
		t.Errorf("after the blink and off: line reads %q, want \"out lo\"", got)
	}
	hostRequest(fmt.Sprintf("led-blinked line=%d min-changes=6", ledOffset))
}

var chipHeader = regexp.MustCompile(`^gpiochip0: GPIOs (\d+)-(\d+)`)

// lineState reads a line of gpiochip0 as the kernel sees it, from debugfs
// ("out hi", "in  lo"): the controller's own data register, read by gpiolib,
// not what periph remembers having written. It must not go through periph,
// whose Read turns an output line into an input.
func lineState(offset int) (string, error) {
	text, err := os.ReadFile("/sys/kernel/debug/gpio")
	if err != nil {
		return "", fmt.Errorf("read gpio debugfs: %w", err)
	}
	base := -1
	for _, line := range strings.Split(string(text), "\n") {
		if m := chipHeader.FindStringSubmatch(line); m != nil {
			base, _ = strconv.Atoi(m[1])
			continue
		}
		if base < 0 {
			continue
		}
		if strings.HasPrefix(line, "gpiochip") {
			break
		}
		if !strings.HasPrefix(strings.TrimSpace(line), fmt.Sprintf("gpio-%d ", base+offset)) {
			continue
		}
		_, state, ok := strings.Cut(line, ") ")
		if !ok {
			return "", fmt.Errorf("gpio debugfs line %q: no state", line)
		}
		fields := strings.Fields(state)
		if len(fields) < 2 {
			return "", fmt.Errorf("gpio debugfs line %q: no state", line)
		}
		return fields[0] + " " + fields[1], nil
	}
	return "", fmt.Errorf("line %d of gpiochip0 is not requested, per debugfs:\n%s", offset, text)
}
