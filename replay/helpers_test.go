package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	if mediaDir != "" {
		os.RemoveAll(mediaDir)
	}
	os.Exit(code)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeClock is the monotonic and the wall clock of a test, moved by hand.
type fakeClock struct {
	mono atomic.Int64 // time.Duration
	wall atomic.Int64 // unix nanoseconds
}

func newFakeClock(wall time.Time) *fakeClock {
	c := &fakeClock{}
	c.wall.Store(wall.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Duration { return time.Duration(c.mono.Load()) }
func (c *fakeClock) WallNow() time.Time { return time.Unix(0, c.wall.Load()) }
func (c *fakeClock) Advance(d time.Duration) {
	c.mono.Add(int64(d))
	c.wall.Add(int64(d))
}
func (c *fakeClock) SetWall(t time.Time) { c.wall.Store(t.UnixNano()) }

var errEnd = errors.New("test source ended")

// sliceSource plays samples one after the other, then ends.
type sliceSource struct {
	samples []media.Sample
	i       int
	// before, if set, runs before sample i is returned.
	before func(i int)
}

func (s *sliceSource) Next(ctx context.Context) (media.Sample, error) {
	if err := ctx.Err(); err != nil {
		return media.Sample{}, err
	}
	if s.i >= len(s.samples) {
		return media.Sample{}, errEnd
	}
	if s.before != nil {
		s.before(s.i)
	}
	s.i++
	return s.samples[s.i-1], nil
}

// chanSource is fed by a test goroutine, like the hub feeds a sink.
type chanSource struct {
	ch     chan media.Sample
	closed chan struct{}
	once   sync.Once
}

func newChanSource() *chanSource {
	return &chanSource{ch: make(chan media.Sample), closed: make(chan struct{})}
}

func (s *chanSource) Next(ctx context.Context) (media.Sample, error) {
	select {
	case x := <-s.ch:
		return x, nil
	case <-s.closed:
		return media.Sample{}, errEnd
	case <-ctx.Done():
		return media.Sample{}, ctx.Err()
	}
}

// feed hands one sample over and fails the test if the recorder does not
// take it promptly: the feeder must never be held up.
func (s *chanSource) feed(t testing.TB, x media.Sample) {
	t.Helper()
	select {
	case s.ch <- x:
	case <-time.After(5 * time.Second):
		t.Fatalf("the recorder stopped draining its source (sample at %v)", x.Capture)
	}
}

func (s *chanSource) close() { s.once.Do(func() { close(s.closed) }) }

// openLib opens a library in dir with a fake clock and plenty of space
// unless opt says otherwise.
func openLib(t testing.TB, dir string, clk *fakeClock, opt Options) *Library {
	t.Helper()
	opt.Dir = dir
	if opt.Now == nil {
		opt.Now = clk.Now
	}
	if opt.WallNow == nil {
		opt.WallNow = clk.WallNow
	}
	if opt.FreeBytes == nil {
		opt.FreeBytes = func(string) (int64, error) { return 1 << 40, nil }
	}
	if opt.Log == nil {
		opt.Log = quietLog()
	}
	l, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	// Test sources deliver as fast as they are read, far faster than real
	// time: a queue that holds all of it keeps them from losing media.
	l.queueLen = 1 << 16
	return l
}

// record records samples as broadcast id and fails the test on error.
func record(t testing.TB, l *Library, id string, samples []media.Sample) Info {
	t.Helper()
	if err := l.Record(context.Background(), Meta{BroadcastID: id, Title: "Title " + id}, &sliceSource{samples: samples}); err != nil {
		t.Fatalf("record %s: %v", id, err)
	}
	in, ok := l.Get(id)
	if !ok {
		t.Fatalf("replay %s not listed after recording", id)
	}
	return in
}

// firstSeconds returns the samples of the first d of media.
func firstSeconds(samples []media.Sample, d time.Duration) []media.Sample {
	end := samples[0].Capture + d
	for i, s := range samples {
		if s.Capture >= end {
			return samples[:i]
		}
	}
	return samples
}

// waitFor waits until cond holds, woken by the library's changes.
func waitFor(t testing.TB, l *Library, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := l.StatusChanged()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; status %+v", what, l.Status())
		}
	}
}
