package gpio

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

func TestHandlePressesDropsPressesWhileBusy(t *testing.T) {
	presses := make(chan Press) // unbuffered: a send returns once HandlePresses has taken it
	release := make(chan struct{})
	var (
		mu      sync.Mutex
		handled []Press
	)
	started := make(chan struct{}, 3)
	dropped := make(messages, 3)
	done := make(chan struct{})
	go func() {
		defer close(done)
		HandlePresses(context.Background(), presses, func(ctx context.Context, p Press) {
			mu.Lock()
			handled = append(handled, p)
			mu.Unlock()
			started <- struct{}{}
			<-release // a slow go-live
		}, slog.New(dropped))
	}()
	first := Press{Kind: Short, Held: 1 * time.Millisecond}
	presses <- first
	<-started
	// Both arrive while the first is being handled; the handler is let go
	// only once both have been dropped (each drop is logged).
	presses <- Press{Kind: Short, Held: 2 * time.Millisecond}
	presses <- Press{Kind: Long, Held: 3 * time.Millisecond}
	<-dropped
	<-dropped
	close(release)
	close(presses)
	<-done // returns only after the handler has returned
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 1 || handled[0] != first {
		t.Fatalf("handled %v, want only %v", handled, first)
	}
}

// messages is a slog handler that hands every message to a channel, so a
// test learns that a press was dropped without guessing when.
type messages chan string

func (m messages) Enabled(context.Context, slog.Level) bool      { return true }
func (m messages) Handle(_ context.Context, r slog.Record) error { m <- r.Message; return nil }
func (m messages) WithAttrs([]slog.Attr) slog.Handler            { return m }
func (m messages) WithGroup(string) slog.Handler                 { return m }

func TestHandlePressesHandlesInTurn(t *testing.T) {
	presses := make(chan Press)
	handled := make(chan Press)
	dropped := make(messages)
	done := make(chan struct{})
	go func() {
		defer close(done)
		HandlePresses(context.Background(), presses, func(ctx context.Context, p Press) { handled <- p }, slog.New(dropped))
	}()
	for i := range 5 {
		want := Press{Kind: Short, Held: time.Duration(i)}
		// A press offered just as the previous handler returns may still
		// find it busy and be dropped; each offer ends one way or the other,
		// so offer again until it is handled.
		for delivered := false; !delivered; {
			presses <- want
			select {
			case got := <-handled:
				if got != want {
					t.Fatalf("handled %v, want %v", got, want)
				}
				delivered = true
			case <-dropped:
			}
		}
	}
	close(presses)
	<-done
}

func TestHandlePressesStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		HandlePresses(ctx, make(chan Press), func(context.Context, Press) { t.Error("handled a press that never came") }, quietLogger())
	}()
	cancel()
	<-done
}
