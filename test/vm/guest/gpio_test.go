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
	"github.com/onair/onair/gpio/cdev"
)

// QEMU's arm virt machine has one PL061 GPIO controller (gpiochip0) and
// wires its line 3 to the power button: QMP system_powerdown raises the line
// for about 100 ms. The line is active high, and its other lines are free:
// line 4 is our LED, whose level the host also sees through QEMU's
// pl061_set_output trace. QEMU's lines have no names, hence chip:line.
const (
	buttonLine   = "gpiochip0:3"
	buttonOffset = 3
	ledLine      = "gpiochip0:4"
	ledOffset    = 4
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

// tracedPin records what the button does with its line: each edge record
// it reads (with the kernel's time and the time it was read) and each level
// read, so that a lost press can be told apart from a lost edge. The record
// is printed when a press goes missing. It passes the line's edge records
// on, so the button debounces on them as on the box.
type tracedPin struct {
	periphgpio.PinIn
	edgeSource gpio.EdgeSource
	start      time.Time
	mu         sync.Mutex
	events     []string
	edges      []tracedEdge
	// requested is when each press was asked for.
	requested map[int]time.Duration
	// gate, when set, holds the button's next read of edges until it is
	// closed; arrived is closed when the button waits there.
	gate, arrived chan struct{}
}

// tracedEdge is an edge record and when the button read it.
type tracedEdge struct {
	edge cdev.Edge
	read time.Duration // since start
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

// edgeCount is how many edges the button has read so far.
func (p *tracedPin) edgeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.edges)
}

// edgesSince returns the edges read after the first n.
func (p *tracedPin) edgesSince(n int) []tracedEdge {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]tracedEdge(nil), p.edges[n:]...)
}

// holdReads keeps the button from reading edges, as a busy machine would,
// and returns once the button waits to read: the kernel queues the edges
// meanwhile. release lets the button read again.
func (p *tracedPin) holdReads(t *testing.T) (release func()) {
	t.Helper()
	gate, arrived := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.gate, p.arrived = gate, arrived
	p.mu.Unlock()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		close(gate)
		t.Fatal("the button did not come back to read edges within 5 s")
	}
	p.note("button held before its next read")
	var once sync.Once
	return func() {
		once.Do(func() {
			p.note("button reads again")
			close(gate)
		})
	}
}

func (p *tracedPin) NextEdge(timeout time.Duration) (cdev.Edge, bool, error) {
	p.mu.Lock()
	gate, arrived := p.gate, p.arrived
	p.gate, p.arrived = nil, nil
	p.mu.Unlock()
	if gate != nil {
		close(arrived)
		<-gate
	}
	e, ok, err := p.edgeSource.NextEdge(timeout)
	if err != nil {
		p.note("reading edges: %v", err)
	}
	if ok {
		read := time.Since(p.start)
		p.mu.Lock()
		p.edges = append(p.edges, tracedEdge{edge: e, read: read})
		p.mu.Unlock()
		p.note("edge %v, read %v after it happened", e, p.edgeSource.Now()-e.At)
	}
	return e, ok, err
}

func (p *tracedPin) Now() time.Duration { return p.edgeSource.Now() }

func (p *tracedPin) Read() periphgpio.Level {
	level := p.PinIn.Read()
	p.note("read %v", level)
	return level
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
// behind it, as the daemon wires them; the returned stop closes both. The
// host must give the line with the kernel's edge records (cdev), as it does
// on the box.
func runButton(t *testing.T, host *gpio.Host, opts gpio.ButtonOptions) (*pressRecorder, func()) {
	t.Helper()
	line, err := host.Input(buttonLine)
	if err != nil {
		t.Fatalf("open button: %v", err)
	}
	source, ok := line.(gpio.EdgeSource)
	if !ok {
		t.Fatalf("host.Input(%s) gave %T, which has no kernel edge records", buttonLine, line)
	}
	pin := &tracedPin{PinIn: line, edgeSource: source, start: time.Now()}
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
// it. late, when set, is called before each request and the function it
// returns after it (to hold the button's reads across the pulse, say). Two
// kinds of request go astray in emulation and are asked again, at most
// maxRetries times in a test, each logged with what the button saw: one the
// line never showed (no edge within 3 s: the console line or the QMP
// command was lost), and one whose pulse, by the kernel's own edge times,
// was shorter than the debounce time or not there at all: QEMU times the
// pulse on the host's clock, so a host that stalls QEMU shortens it as the
// guest sees it (longestPulse).
// Anything else without a press fails the test: the button debounces on the
// kernel's edge times, so however late it reads, a pulse that was long
// enough is a press.
func press(t *testing.T, rec *pressRecorder, n int, late func() (after func())) gpio.Press {
	t.Helper()
	for {
		mark := rec.pin.edgeCount()
		after := func() {}
		if late != nil {
			after = late()
		}
		rec.pin.request(n)
		hostRequest("system_powerdown")
		after()
		select {
		case p := <-rec.presses:
			return p
		case <-time.After(3 * time.Second):
		}
		edges := rec.pin.edgesSince(mark)
		lost := len(edges) == 0
		pulse := longestPulse(edges)
		short := !lost && pulse < rec.debounce
		if (lost || short) && rec.retries < maxRetries {
			rec.retries++
			if lost {
				t.Logf("press %d: the line showed no edge within 3 s of the request; asking again", n)
			} else {
				t.Logf("press %d: by the kernel's edge times the line was high for %v at most, shorter than the debounce time (QEMU stalled by its host); asking again\n%s",
					n, pulse, rec.pin.record(10))
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

// longestPulse is the longest time the line was high by the kernel's edge
// records: from a rising edge to the next falling one. A stalled QEMU can
// deliver a whole pulse to the guest as one interrupt, which the kernel
// reports as a single edge to the level it then reads: no pulse at all. A
// line still high after the last edge counts as a long pulse.
func longestPulse(edges []tracedEdge) time.Duration {
	var longest time.Duration
	high, since := false, time.Duration(0)
	for _, e := range edges {
		switch {
		case e.edge.Rising && !high:
			high, since = true, e.edge.At
		case !e.edge.Rising && high:
			high = false
			longest = max(longest, e.edge.At-since)
		}
	}
	if high {
		return time.Hour
	}
	return longest
}

// waitPulseOver waits until the kernel shows the button line high and then
// low again (debugfs, not the button's line request), or 3 s; it reports
// whether it saw the whole pulse.
func waitPulseOver(t *testing.T) bool {
	t.Helper()
	sawHigh := false
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		state, err := lineState(buttonOffset)
		if err != nil {
			t.Fatal(err)
		}
		high := strings.HasSuffix(state, " hi")
		if high {
			sawHigh = true
		} else if sawHigh {
			return true
		}
	}
	return false
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
			p := press(t, rec, i, nil)
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

	t.Run("LatePress", func(t *testing.T) {
		// The button does not read the line from before the press until
		// 300 ms after its pulse is over, as on a Pi busy elsewhere: the
		// kernel's queue and its edge times still make it one short press
		// of about 100 ms, started when the line went high.
		const lateBy = 300 * time.Millisecond
		rec, stop := runButton(t, host, gpio.ButtonOptions{
			ActiveLow: false, Debounce: 30 * time.Millisecond, LongPress: 3 * time.Second, Logger: testLogger(t),
		})
		defer stop()
		const presses = 3
		for i := 1; i <= presses; i++ {
			var readsAgain time.Time
			p := press(t, rec, i, func() func() {
				release := rec.pin.holdReads(t)
				return func() {
					defer release()
					if !waitPulseOver(t) {
						t.Logf("press %d: debugfs did not show the whole pulse within 3 s", i)
					}
					time.Sleep(lateBy)
					readsAgain = time.Now()
				}
			})
			if p.Kind != gpio.Short || p.Held < rec.debounce || p.Held > 10*pressPulse {
				t.Fatalf("press %d read late: %s press held %v, want short, about %v\n%s", i, p.Kind, p.Held, pressPulse, rec.pin.record(20))
			}
			if late := readsAgain.Sub(p.Start); !readsAgain.IsZero() && late < lateBy+p.Held {
				t.Errorf("press %d started %v before the button read again, want at least %v (%v held + %v late): timed on reading, not on the kernel's edge times",
					i, late, lateBy+p.Held, p.Held, lateBy)
			}
			t.Logf("press %d read late: held %v, started %v before the button read again", i, p.Held, readsAgain.Sub(p.Start))
		}
		time.Sleep(300 * time.Millisecond)
		if got := rec.count(); got != presses {
			t.Errorf("%d late presses gave %d toggles", presses, got)
		}
	})

	t.Run("LongPress", func(t *testing.T) {
		// QEMU's pulse is fixed, so the long press is set below it.
		rec, stop := runButton(t, host, gpio.ButtonOptions{
			ActiveLow: false, Debounce: 20 * time.Millisecond, LongPress: 60 * time.Millisecond, Logger: testLogger(t),
		})
		defer stop()
		p := press(t, rec, 1, nil)
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
