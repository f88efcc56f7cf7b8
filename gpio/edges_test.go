package gpio

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/gpio/cdev"
	"github.com/onair/onair/gpio/gpiofake"
)

// These tests make the reader late, as a busy Pi does (gpiofake's Stall):
// the edges wait in the kernel's queue and are read long after they
// happened. The edge path must find the presses that happened, timed as
// they happened; the level path, which reads the line when it gets round to
// it, loses them (issue 6), and the tests say so to show the fake reproduces
// the problem.

func TestLateShortPressStillCounts(t *testing.T) {
	bothPaths(t, func(t *testing.T, path pinPath) {
		r := newButtonRig(t, path, ButtonOptions{ActiveLow: true}, floating)
		// A 100 ms press at 1 s, with bounces, read from 1.5 s on: 500 ms
		// after its first edge, 400 ms after its release.
		r.pin.Stall(r.at(time.Second), r.at(1500*time.Millisecond))
		r.press(time.Second, 100*time.Millisecond, 4)
		got := r.runUntil(5 * time.Second)
		want := []Press{{Kind: Short, Start: r.at(time.Second), Held: 100 * time.Millisecond}}
		if path == levelPath {
			want = nil // read after the release: a glitch to the level path
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("presses = %v, want %v", got, want)
		}
	})
}

func TestLateBounceStormIsOnePress(t *testing.T) {
	r := newButtonRig(t, edgePath, ButtonOptions{ActiveLow: true}, floating)
	// 21 edges in 10 ms down, 21 up, 200 ms apart, all read at 2 s.
	r.pin.Stall(r.at(time.Second), r.at(2*time.Second))
	r.press(time.Second, 200*time.Millisecond, 20)
	got := r.runUntil(5 * time.Second)
	want := []Press{{Kind: Short, Start: r.at(time.Second), Held: 200 * time.Millisecond}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("presses = %v, want %v", got, want)
	}
	if r.pin.Dropped() != 0 {
		t.Fatalf("%d edges dropped; the queue holds %d", r.pin.Dropped(), cdev.EventBuffer)
	}
}

func TestLateShortLongBoundaryByKernelTime(t *testing.T) {
	tests := []struct {
		held     time.Duration
		want     PressKind
		wantHeld time.Duration
	}{
		{2999 * time.Millisecond, Short, 2999 * time.Millisecond},
		{3*time.Second - time.Nanosecond, Short, 3*time.Second - time.Nanosecond},
		{3 * time.Second, Long, 3 * time.Second},
		{4 * time.Second, Long, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.held.String(), func(t *testing.T) {
			r := newButtonRig(t, edgePath, ButtonOptions{ActiveLow: true}, floating)
			// The reader sleeps through the whole press and the long-press
			// time: only the edges' own times can tell.
			r.pin.Stall(r.at(time.Second), r.at(8*time.Second))
			r.press(time.Second, tt.held, 4)
			got := r.runUntil(10 * time.Second)
			want := []Press{{Kind: tt.want, Start: r.at(time.Second), Held: tt.wantHeld}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("presses = %v, want %v", got, want)
			}
		})
	}
}

func TestLateLongPressStillHeld(t *testing.T) {
	r := newButtonRig(t, edgePath, ButtonOptions{ActiveLow: true}, floating)
	r.pin.Stall(r.at(time.Second), r.at(6*time.Second))
	r.pin.Push(transition(r.at(time.Second), !r.up, 4)...)
	if got := r.runUntil(5 * time.Second); len(got) != 0 {
		t.Fatalf("presses while the reader sleeps = %v", got)
	}
	got := r.runUntil(6 * time.Second)
	want := []Press{{Kind: Long, Start: r.at(time.Second), Held: DefaultLongPress}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("presses = %v, want %v", got, want)
	}
}

func TestLateStartHold(t *testing.T) {
	tests := []struct {
		releaseAt time.Duration
		want      bool
	}{
		{9900 * time.Millisecond, false},
		{10100 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.releaseAt.String(), func(t *testing.T) {
			r := newButtonRig(t, edgePath, ButtonOptions{ActiveLow: true}, heldDown)
			// Asleep from before the start-hold time until after the
			// release: the release edge's time decides.
			r.pin.Stall(r.at(5*time.Second), r.at(15*time.Second))
			r.pin.Push(transition(r.at(tt.releaseAt), r.up, 4)...)
			if got := r.runUntil(20 * time.Second); len(got) != 0 {
				t.Errorf("presses = %v, want none", got)
			}
			held, err := r.btn.HeldAtStart(context.Background())
			if err != nil || held != tt.want {
				t.Fatalf("HeldAtStart = %v, %v; want %v", held, err, tt.want)
			}
		})
	}
}

// logBuffer collects a button's logs for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLostEdgesAreLoggedAndTheLineRead(t *testing.T) {
	var logs logBuffer
	r := newButtonRig(t, edgePath, ButtonOptions{ActiveLow: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, floating)
	r.pin.SetQueueSize(4)
	// 21 edges of a bouncing press while the reader sleeps: the kernel
	// keeps the last 4 and the line stays down.
	r.pin.Stall(r.at(time.Second), r.at(2*time.Second))
	down := transition(r.at(time.Second), !r.up, 20)
	r.pin.Push(down...)
	r.pin.Push(transition(r.at(3*time.Second), r.up, 4)...)
	got := r.runUntil(5 * time.Second)
	// Timed from the first edge that survived: the best the records allow.
	firstKept := down[len(down)-4].At
	want := []Press{{Kind: Short, Start: firstKept, Held: r.at(3 * time.Second).Sub(firstKept)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("presses = %v, want %v", got, want)
	}
	if r.pin.Dropped() != 17 {
		t.Fatalf("Dropped = %d, want 17", r.pin.Dropped())
	}
	if text := logs.String(); !strings.Contains(text, "dropped edges") || !strings.Contains(text, "lost=17") ||
		!strings.Contains(text, "active_now=true") {
		t.Fatalf("log does not report the 17 lost edges and the line read:\n%s", text)
	}
}

// closedSource is a line whose edge reads fail because it was closed.
type closedSource struct{ *gpiofake.EdgePin }

func (closedSource) NextEdge(time.Duration) (cdev.Edge, bool, error) {
	return cdev.Edge{}, false, fmt.Errorf("line GPIO17: %w", cdev.ErrClosed)
}

func TestButtonEndsWhenItsLineCloses(t *testing.T) {
	clk := gpiofake.NewClock(time.Time{})
	btn, err := NewButton(context.Background(), closedSource{gpiofake.NewEdgePin("GPIO17", 17, clk)},
		ButtonOptions{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for range btn.Presses() {
		t.Error("press from a closed line")
	}
	if _, err := btn.HeldAtStart(context.Background()); err != nil {
		t.Fatalf("HeldAtStart = %v; the line was up at start", err)
	}
	if err := btn.Close(); err != nil {
		t.Fatal(err)
	}
}
