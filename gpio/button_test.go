package gpio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio/gpiofake"
)

// buttonRig is a button on a fake pin in virtual time. Every check happens
// after pin.RunUntil, when the button's goroutine waits at the horizon and
// every press it found is in the Presses buffer.
type buttonRig struct {
	t      *testing.T
	pin    *gpiofake.Pin
	edges  *gpiofake.EdgePin // the same line, on the edge path
	btn    *Button
	t0     time.Time
	up     gpio.Level // released level
	closed bool
}

// startLine is the button line before the button opens it.
type startLine int

const (
	floating startLine = iota // the pull resistor decides
	heldUp                    // driven at the released level (an external resistor)
	heldDown                  // the button is down
)

// pinPath is which debouncing a test runs: on levels read (a plain
// gpio.PinIn, gpiofake.Pin) or on the kernel's edge records (an EdgeSource,
// gpiofake.EdgePin).
type pinPath int

const (
	levelPath pinPath = iota
	edgePath
)

func (p pinPath) String() string {
	if p == edgePath {
		return "edges"
	}
	return "levels"
}

// bothPaths runs f on both paths: a reader on time must see the same presses
// either way.
func bothPaths(t *testing.T, f func(t *testing.T, path pinPath)) {
	for _, path := range []pinPath{levelPath, edgePath} {
		t.Run(path.String(), func(t *testing.T) { f(t, path) })
	}
}

func newButtonRig(t *testing.T, path pinPath, opts ButtonOptions, start startLine) *buttonRig {
	t.Helper()
	clk := gpiofake.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	r := &buttonRig{t: t, t0: clk.Now(), up: gpio.Low}
	var pin gpio.PinIn
	if path == edgePath {
		r.edges = gpiofake.NewEdgePin("GPIO17", 17, clk)
		r.pin, pin = r.edges.Pin, r.edges
	} else {
		r.pin = gpiofake.NewPin("GPIO17", 17, clk)
		pin = r.pin
	}
	if opts.ActiveLow {
		r.up = gpio.High
	}
	switch start {
	case heldUp:
		r.pin.Set(r.up)
	case heldDown:
		r.pin.Set(!r.up)
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	opts.Clock = clk
	btn, err := NewButton(context.Background(), pin, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.btn = btn
	t.Cleanup(r.close)
	return r
}

func (r *buttonRig) at(d time.Duration) time.Time { return r.t0.Add(d) }

// runUntil lets virtual time run to t0+d and returns the presses found.
func (r *buttonRig) runUntil(d time.Duration) []Press {
	r.pin.RunUntil(r.at(d))
	var got []Press
	for {
		select {
		case p := <-r.btn.Presses():
			got = append(got, p)
		default:
			return got
		}
	}
}

func (r *buttonRig) close() {
	if r.closed {
		return
	}
	r.closed = true
	if err := r.btn.Close(); err != nil {
		r.t.Errorf("Close: %v", err)
	}
	if err := r.pin.Err(); err != nil {
		r.t.Errorf("button broke a rule of the real pin: %v", err)
	}
}

// transition is the edges of the contact moving to level at time at,
// followed by bounces edges 0.5 ms apart (an even number, so it settles at
// level).
func transition(at time.Time, level gpio.Level, bounces int) []gpiofake.Edge {
	if bounces%2 != 0 {
		panic("transition: odd bounce count would not settle at the target level")
	}
	edges := []gpiofake.Edge{{At: at, Level: level}}
	for i := 1; i <= bounces; i++ {
		edges = append(edges, gpiofake.Edge{At: at.Add(time.Duration(i) * 500 * time.Microsecond), Level: level == (i%2 == 0)})
	}
	return edges
}

// press is a press starting at start, released after held, with bounces on
// both transitions.
func (r *buttonRig) press(start, held time.Duration, bounces int) {
	r.pin.Push(transition(r.at(start), !r.up, bounces)...)
	r.pin.Push(transition(r.at(start+held), r.up, bounces)...)
}

func TestButtonBounceStormGivesOnePress(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
		// 1 edge + 20 bounce edges within 10 ms on the way down and on the way up.
		r.press(100*time.Millisecond, 500*time.Millisecond, 20)
		got := r.runUntil(2 * time.Second)
		want := []Press{{Kind: Short, Start: r.at(100 * time.Millisecond), Held: 500 * time.Millisecond}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("presses = %v, want %v", got, want)
		}
	})
}

func TestButtonIgnoresGlitches(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		tests := []struct {
			name  string
			edges func(r *buttonRig) []gpiofake.Edge
		}{
			{"storm that settles released", func(r *buttonRig) []gpiofake.Edge {
				// 20 edges in 10 ms starting and ending at the released level.
				return transition(r.at(time.Second), !r.up, 18)[:19:19]
			}},
			{"pulse shorter than debounce", func(r *buttonRig) []gpiofake.Edge {
				return []gpiofake.Edge{{At: r.at(time.Second), Level: !r.up}, {At: r.at(time.Second + 29*time.Millisecond), Level: r.up}}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
				edges := tt.edges(r)
				if edges[len(edges)-1].Level != r.up {
					edges = append(edges, gpiofake.Edge{At: edges[len(edges)-1].At.Add(500 * time.Microsecond), Level: r.up})
				}
				r.pin.Push(edges...)
				if got := r.runUntil(5 * time.Second); len(got) != 0 {
					t.Fatalf("presses = %v, want none", got)
				}
			})
		}
	})
}

func TestButtonThousandPresses(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
		const presses, period, held = 1000, 300 * time.Millisecond, 120 * time.Millisecond
		var got []Press
		// Ten presses per run keep the Presses buffer from filling.
		for batch := 0; batch < presses/10; batch++ {
			for i := batch * 10; i < batch*10+10; i++ {
				r.press(time.Duration(i)*period, held, 6)
			}
			got = append(got, r.runUntil(time.Duration(batch*10+10)*period)...)
		}
		if len(got) != presses {
			t.Fatalf("got %d presses, want %d", len(got), presses)
		}
		for i, p := range got {
			if want := (Press{Kind: Short, Start: r.at(time.Duration(i) * period), Held: held}); p != want {
				t.Fatalf("press %d = %v, want %v", i, p, want)
			}
		}
	})
}

func TestButtonShortLongBoundary(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		tests := []struct {
			longPress time.Duration // 0: default
			held      time.Duration
			want      PressKind
		}{
			{0, 35 * time.Millisecond, Short}, // 4 bounces end 2 ms in: the line is quiet for 30 ms at 32 ms
			{0, 2999 * time.Millisecond, Short},
			{0, 3*time.Second - time.Nanosecond, Short},
			{0, 3 * time.Second, Long},
			{0, 3001 * time.Millisecond, Long},
			{0, 20 * time.Second, Long},
			{500 * time.Millisecond, 499 * time.Millisecond, Short},
			{500 * time.Millisecond, 500 * time.Millisecond, Long},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("long=%v/held=%v", tt.longPress, tt.held), func(t *testing.T) {
				r := newButtonRig(t, path, ButtonOptions{ActiveLow: true, LongPress: tt.longPress}, floating)
				long := orDefault(tt.longPress, DefaultLongPress)
				start := time.Second
				r.press(start, tt.held, 4)
				got := r.runUntil(start + tt.held + time.Minute)
				wantHeld := tt.held
				if tt.want == Long {
					wantHeld = long // delivered when reached, not at release
				}
				want := []Press{{Kind: tt.want, Start: r.at(start), Held: wantHeld}}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("presses = %v, want %v", got, want)
				}
			})
		}
	})
}

func TestButtonLongPressDeliveredWhileHeld(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
		r.pin.Push(transition(r.at(time.Second), gpio.Low, 10)...)
		if got := r.runUntil(time.Second + DefaultLongPress - time.Nanosecond); len(got) != 0 {
			t.Fatalf("presses before the long-press time = %v, want none", got)
		}
		got := r.runUntil(time.Second + DefaultLongPress)
		want := []Press{{Kind: Long, Start: r.at(time.Second), Held: DefaultLongPress}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("presses at the long-press time = %v, want %v", got, want)
		}
		r.pin.Push(transition(r.at(10*time.Second), gpio.High, 10)...)
		if got := r.runUntil(20 * time.Second); len(got) != 0 {
			t.Fatalf("presses after releasing a long press = %v, want none", got)
		}
	})
}

func TestButtonBounceAcrossLongPressTime(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		long := DefaultLongPress
		t.Run("release starts just before", func(t *testing.T) {
			r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
			// The release burst starts 5 ms before the long-press time and is
			// still bouncing when it passes: the press was short.
			r.press(0, long-5*time.Millisecond, 20)
			got := r.runUntil(10 * time.Second)
			want := []Press{{Kind: Short, Start: r.at(0), Held: long - 5*time.Millisecond}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("presses = %v, want %v", got, want)
			}
		})
		t.Run("glitch while held", func(t *testing.T) {
			r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
			r.pin.Push(transition(r.at(0), gpio.Low, 0)...)
			// A glitch across the long-press time that settles down again: the
			// long press comes when the line is quiet.
			r.pin.Push(transition(r.at(long-time.Millisecond), gpio.High, 8)[:8]...)
			got := r.runUntil(10 * time.Second)
			quiet := long - time.Millisecond + 7*500*time.Microsecond + DefaultDebounce
			want := []Press{{Kind: Long, Start: r.at(0), Held: quiet}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("presses = %v, want %v", got, want)
			}
		})
	})
}

func TestButtonPolarity(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		tests := []struct {
			activeLow bool
			pull      Pull
			wantPull  gpio.Pull
		}{
			{true, PullAuto, gpio.PullUp},
			{false, PullAuto, gpio.PullDown},
			{true, PullNone, gpio.Float},
			{false, PullUp, gpio.PullUp},
			{true, PullDown, gpio.PullDown},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("active_low=%v/pull=%v", tt.activeLow, tt.pull), func(t *testing.T) {
				start := floating
				if tt.pull != PullAuto {
					start = heldUp // the pull may fight the button's idle level; an outside resistor wins
				}
				r := newButtonRig(t, path, ButtonOptions{ActiveLow: tt.activeLow, Pull: tt.pull}, start)
				if got := r.pin.Pull(); got != tt.wantPull {
					t.Errorf("pull = %v, want %v", got, tt.wantPull)
				}
				if tt.pull == PullAuto && r.pin.Read() != r.up {
					t.Errorf("idle level = %v, want released level %v", r.pin.Read(), r.up)
				}
				r.press(time.Second, time.Second, 4)
				got := r.runUntil(5 * time.Second)
				want := []Press{{Kind: Short, Start: r.at(time.Second), Held: time.Second}}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("presses = %v, want %v", got, want)
				}
			})
		}
	})
}

func TestButtonHeldAtStart(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		tests := []struct {
			name      string
			down      bool
			releaseAt time.Duration // 0: never
			want      bool
		}{
			{"not held", false, 0, false},
			{"held 10 s", true, 0, true},
			{"held 10 s then released", true, 12 * time.Second, true},
			{"released after 9.9 s", true, 9900 * time.Millisecond, false},
			{"released after 5 s, past the long-press time", true, 5 * time.Second, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := floating
				if tt.down {
					start = heldDown
				}
				r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, start)
				if tt.releaseAt > 0 {
					r.pin.Push(transition(r.at(tt.releaseAt), gpio.High, 10)...)
				}
				if got := r.runUntil(30 * time.Second); len(got) != 0 {
					t.Errorf("presses = %v, want none: the start hold is not a press", got)
				}
				held, err := r.btn.HeldAtStart(context.Background())
				if err != nil || held != tt.want {
					t.Fatalf("HeldAtStart = %v, %v; want %v", held, err, tt.want)
				}
				// Presses after the start hold are ordinary presses.
				if tt.down && tt.releaseAt == 0 {
					r.pin.Push(transition(r.at(31*time.Second), gpio.High, 4)...)
				}
				r.press(40*time.Second, 100*time.Millisecond, 4)
				got := r.runUntil(50 * time.Second)
				want := []Press{{Kind: Short, Start: r.at(40 * time.Second), Held: 100 * time.Millisecond}}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("presses after start = %v, want %v", got, want)
				}
			})
		}
	})
}

func TestButtonHeldAtStartUndecided(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, heldDown)
		r.runUntil(5 * time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := r.btn.HeldAtStart(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("HeldAtStart with a cancelled context: err = %v, want context.Canceled", err)
		}
		r.close()
		if _, err := r.btn.HeldAtStart(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("HeldAtStart after Close: err = %v, want ErrClosed", err)
		}
	})
}

// The button stops when its context ends, on both kinds of line: one read
// by its levels and one that gives the kernel's edge records.
func TestButtonStopsWithContext(t *testing.T) {
	for _, kind := range []string{"levels", "edges"} {
		t.Run(kind, func(t *testing.T) {
			clk := gpiofake.NewClock(time.Time{})
			var pin gpio.PinIn
			fake := gpiofake.NewPin("GPIO27", 27, clk)
			pin = fake
			if kind == "edges" {
				edges := gpiofake.NewEdgePin("GPIO27", 27, clk)
				fake, pin = edges.Pin, edges
			}
			ctx, cancel := context.WithCancel(context.Background())
			btn, err := NewButton(ctx, pin, ButtonOptions{Clock: clk, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			fake.RunUntil(clk.Now().Add(time.Minute))
			cancel()
			for range btn.Presses() {
				t.Error("press from an idle line")
			}
			// Presses is closed: the goroutine has ended. Close still waits
			// for the halting one and is safe to call after the context ended.
			if err := btn.Close(); err != nil {
				t.Fatal(err)
			}
			if err := btn.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := fake.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewButtonRejectsBadTimes(t *testing.T) {
	tests := []ButtonOptions{
		{Debounce: -time.Millisecond},
		{Debounce: 3 * time.Second},
		{LongPress: 10 * time.Millisecond},
		{StartHold: 20 * time.Millisecond},
	}
	for _, opts := range tests {
		clk := gpiofake.NewClock(time.Time{})
		opts.Clock, opts.Logger = clk, quietLogger()
		if btn, err := NewButton(context.Background(), gpiofake.NewPin("GPIO17", 17, clk), opts); err == nil {
			btn.Close()
			t.Errorf("NewButton(%+v) succeeded, want an error", opts)
		}
	}
}

func TestPressKindText(t *testing.T) {
	var body struct {
		Press PressKind `json:"press"`
	}
	for _, s := range []string{"short", "long"} {
		if err := json.Unmarshal([]byte(`{"press":"`+s+`"}`), &body); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(body)
		if err != nil || string(out) != `{"press":"`+s+`"}` {
			t.Fatalf("round trip of %q = %s, %v", s, out, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"press":"double"}`), &body); err == nil {
		t.Fatal(`"double" decoded without an error`)
	}
	if _, err := json.Marshal(struct{ P PressKind }{}); err == nil {
		t.Fatal("zero PressKind encoded without an error")
	}
}

// TestButtonOnRealTime runs the button on the real clock with a live fake
// line, the way the daemon runs it: an edge wakes the goroutine and a held
// button becomes a long press. Nothing waits on the wall clock for a
// verdict: the test blocks on the press itself (go test's timeout is the
// only limit).
func TestButtonOnRealTime(t *testing.T) {
	pin := gpiofake.NewLivePin("GPIO17", 17)
	btn, err := NewButton(context.Background(), pin, ButtonOptions{
		ActiveLow: true, Debounce: time.Millisecond, LongPress: 2 * time.Millisecond, StartHold: 3 * time.Millisecond,
		Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if held, err := btn.HeldAtStart(context.Background()); held || err != nil {
		t.Fatalf("HeldAtStart = %v, %v with the button up", held, err)
	}
	pin.Drive(gpio.Low)
	if p := <-btn.Presses(); p.Kind != Long {
		t.Fatalf("press = %v, want a long press", p)
	}
	pin.Drive(gpio.High)
	if err := btn.Close(); err != nil {
		t.Fatal(err)
	}
	for p := range btn.Presses() {
		t.Errorf("press %v after a long press was released", p)
	}
	if err := pin.Err(); err != nil {
		t.Fatal(err)
	}
}

// inFailsPin refuses to become an input, as a line held by another process
// does (EBUSY from the line request).
type inFailsPin struct{ *gpiofake.Pin }

func (inFailsPin) In(gpio.Pull, gpio.Edge) error { return syscall.EBUSY }

func TestNewButtonKeepsTheLineError(t *testing.T) {
	clk := gpiofake.NewClock(time.Time{})
	_, err := NewButton(context.Background(), inFailsPin{gpiofake.NewPin("GPIO17", 17, clk)}, ButtonOptions{Clock: clk, Logger: quietLogger()})
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "button GPIO17") {
		t.Fatalf("err = %v, want EBUSY wrapped with the pin's name", err)
	}
}
