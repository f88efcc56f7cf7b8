package watchdog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// device records writes as the kernel's watchdog would receive them.
type device struct {
	mu     sync.Mutex
	writes bytes.Buffer
	wrote  chan struct{}
	closed bool
}

func (d *device) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, errors.New("write after close")
	}
	d.writes.Write(p)
	select {
	case d.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (d *device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func TestFeedsWhileHealthyAndStopsWhenNot(t *testing.T) {
	dev := &device{wrote: make(chan struct{}, 1)}
	var mu sync.Mutex
	healthy := true
	checked := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Feed(ctx, dev, Options{Interval: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Healthy: func(context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				checked <- struct{}{}
				if !healthy {
					return errors.New("media loop stuck")
				}
				return nil
			}})
	}()
	<-dev.wrote // fed while healthy
	mu.Lock()
	healthy = false
	mu.Unlock()
	// Drain checks until one has certainly run unhealthy, then compare.
	for i := 0; i < 3; i++ {
		<-checked
	}
	dev.mu.Lock()
	before := dev.writes.Len()
	dev.mu.Unlock()
	for i := 0; i < 5; i++ {
		<-checked
	}
	dev.mu.Lock()
	after := dev.writes.Len()
	dev.mu.Unlock()
	if after != before {
		t.Fatalf("fed %d times while unhealthy", after-before)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	if !dev.closed || !bytes.HasSuffix(dev.writes.Bytes(), []byte("V")) {
		t.Fatalf("stop must write the magic V and close (closed %v, last %q)", dev.closed, dev.writes.Bytes()[dev.writes.Len()-1:])
	}
}

func TestOpenWithoutDevice(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "watchdog"))
	if !errors.Is(err, ErrNoWatchdog) {
		t.Fatalf("missing device: %v, want ErrNoWatchdog", err)
	}
}
