package gpiofake

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"periph.io/x/conn/v3/gpio"

	"github.com/onair/onair/gpio/cdev"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestClockRunsTimersInOrderAtTheirTime(t *testing.T) {
	c := NewClock(t0)
	var got []string
	mark := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Now().Sub(t0).String()) }
	}
	c.AfterFunc(3*time.Second, mark("c"))
	c.AfterFunc(time.Second, mark("a"))
	c.AfterFunc(time.Second, mark("b")) // same deadline: after a
	stopD := c.AfterFunc(2*time.Second, mark("d"))
	c.AfterFunc(500*time.Millisecond, func() {
		mark("e")()
		c.AfterFunc(time.Second, mark("f")) // set by a timer, due within the same advance
	})
	if !stopD() {
		t.Fatal("stop of a pending timer reported false")
	}
	if stopD() {
		t.Fatal("second stop reported true")
	}
	c.Advance(2 * time.Second)
	if want := "e@500ms a@1s b@1s f@1.5s"; strings.Join(got, " ") != want {
		t.Fatalf("fired %q, want %q", strings.Join(got, " "), want)
	}
	if now := c.Now(); !now.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("Now = %v after Advance(2s)", now)
	}
	c.AdvanceTo(t0) // never backwards
	if now := c.Now(); !now.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("Now = %v after AdvanceTo the past", now)
	}
	if c.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1 (c)", c.Pending())
	}
}

func TestPinRefusesWhatTheRealLineRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *Pin)
		wait  time.Duration
		want  string
	}{
		{"wait before In", func(p *Pin) {}, time.Second, "not configured"},
		{"wait without edges", func(p *Pin) { _ = p.In(gpio.PullUp, gpio.NoEdge) }, time.Second, "not configured"},
		{"wait on an output", func(p *Pin) { _ = p.Out(gpio.High) }, time.Second, "not configured"},
		{"zero timeout", func(p *Pin) { _ = p.In(gpio.PullUp, gpio.BothEdges) }, 0, "positive timeout"},
		{"-1 timeout", func(p *Pin) { _ = p.In(gpio.PullUp, gpio.BothEdges) }, -1, "positive timeout"},
	}
	for _, tt := range tests {
		p := NewPin("GPIO17", 17, NewClock(t0))
		tt.setup(p)
		if p.WaitForEdge(tt.wait) {
			t.Errorf("%s: WaitForEdge reported an edge", tt.name)
		}
		if err := p.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPinPushRefusesImpossibleScripts(t *testing.T) {
	tests := []struct {
		name  string
		edges []Edge
	}{
		{"no change", []Edge{{At: t0, Level: gpio.High}}}, // pull-up: already high
		{"backwards", []Edge{{At: t0.Add(time.Second), Level: gpio.Low}, {At: t0, Level: gpio.High}}},
		{"in the past", []Edge{{At: t0.Add(-time.Second), Level: gpio.Low}}},
	}
	for _, tt := range tests {
		p := NewPin("GPIO17", 17, NewClock(t0))
		_ = p.In(gpio.PullUp, gpio.BothEdges)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Push did not panic", tt.name)
				}
			}()
			p.Push(tt.edges...)
		}()
	}
}

func TestPinDeliversEdgesInVirtualTime(t *testing.T) {
	c := NewClock(t0)
	p := NewPin("GPIO17", 17, c)
	_ = p.In(gpio.PullUp, gpio.FallingEdge)
	p.Push(
		Edge{At: t0.Add(10 * time.Millisecond), Level: gpio.Low},
		Edge{At: t0.Add(20 * time.Millisecond), Level: gpio.High}, // rising: not reported
		Edge{At: t0.Add(30 * time.Millisecond), Level: gpio.Low},
	)
	type result struct {
		edge  bool
		at    time.Duration
		level gpio.Level
	}
	results := make(chan result)
	go func() {
		defer close(results)
		for _, timeout := range []time.Duration{time.Second, 5 * time.Millisecond, time.Second, time.Second} {
			edge := p.WaitForEdge(timeout)
			results <- result{edge, c.Now().Sub(t0), p.Read()}
		}
	}()
	p.horizonForTest(t0.Add(time.Minute))
	want := []result{
		{true, 10 * time.Millisecond, gpio.Low},
		{false, 15 * time.Millisecond, gpio.Low},
		{true, 30 * time.Millisecond, gpio.Low},
		{false, 1030 * time.Millisecond, gpio.Low},
	}
	for i, w := range want {
		if got := <-results; got != w {
			t.Errorf("wait %d = %+v, want %+v", i, got, w)
		}
	}
	<-results
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

// horizonForTest moves the horizon without waiting for a reader to reach it.
func (p *Pin) horizonForTest(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.horizon = t
	p.cond.Broadcast()
}

func TestPinHaltStopsAWaitAtTheHorizon(t *testing.T) {
	c := NewClock(t0)
	p := NewPin("GPIO17", 17, c)
	_ = p.In(gpio.PullUp, gpio.BothEdges)
	done := make(chan bool)
	go func() { done <- p.WaitForEdge(time.Hour) }()
	p.RunUntil(t0.Add(time.Second)) // returns once the reader waits at +1s
	if err := p.Halt(); err != nil {
		t.Fatal(err)
	}
	if <-done {
		t.Fatal("halted wait reported an edge")
	}
	// A Halt with nobody waiting is lost, as on gpioioctl: the next wait
	// runs to its timeout, in virtual time.
	_ = p.Halt()
	if p.WaitForEdge(time.Minute) {
		t.Fatal("wait after a lost Halt reported an edge")
	}
	if got := c.Now().Sub(t0); got != time.Minute+time.Second {
		t.Fatalf("clock at +%v after the timed-out wait, want +1m1s", got)
	}
}

func TestPinRecordsOutputs(t *testing.T) {
	c := NewClock(t0)
	p := NewPin("GPIO22", 22, c)
	_ = p.Out(gpio.High)
	c.Advance(time.Second)
	_ = p.Out(gpio.Low)
	h := p.History()
	if len(h) != 2 || h[0] != (Sample{t0, gpio.High}) || h[1] != (Sample{t0.Add(time.Second), gpio.Low}) {
		t.Fatalf("History = %v", h)
	}
	if p.PWM(gpio.DutyHalf, 0) == nil {
		t.Fatal("PWM succeeded on a line without PWM")
	}
}

func TestLivePin(t *testing.T) {
	p := NewLivePin("GPIO17", 17)
	p.Drive(gpio.Low) // before In: no edge, but the level holds
	_ = p.In(gpio.PullUp, gpio.BothEdges)
	if p.Read() != gpio.Low {
		t.Fatal("a driven line followed the pull")
	}
	p.Drive(gpio.High)
	p.Drive(gpio.High) // no change, no edge
	if !p.WaitForEdge(time.Hour) {
		t.Fatal("queued edge not reported")
	}
	for i := 0; i < kernelEventQueue+4; i++ {
		p.Drive(!p.Read())
	}
	if p.Dropped() != 4 {
		t.Fatalf("Dropped = %d, want 4", p.Dropped())
	}
	_ = p.In(gpio.PullUp, gpio.BothEdges) // flushes the queue
	done := make(chan bool)
	go func() { done <- p.WaitForEdge(time.Hour) }()
	// Halt until the wait ends: a Halt before the wait starts is lost, as on
	// gpioioctl. No timing is asserted; the loop ends when the wait does.
	for {
		_ = p.Halt()
		select {
		case edge := <-done:
			if edge {
				t.Fatal("halted wait reported an edge")
			}
			if err := p.Err(); err != nil {
				t.Fatal(err)
			}
			return
		default:
			runtime.Gosched()
		}
	}
}

func TestEdgePinReportsKernelRecords(t *testing.T) {
	c := NewClock(t0)
	p := NewEdgePin("GPIO17", 17, c)
	_ = p.In(gpio.PullUp, gpio.BothEdges)
	p.SetQueueSize(2)
	// The reader sleeps from 0 to 1 s; three edges happen meanwhile and the
	// queue keeps the last two.
	p.Stall(t0, t0.Add(time.Second))
	p.Push(
		Edge{At: t0.Add(10 * time.Millisecond), Level: gpio.Low},
		Edge{At: t0.Add(20 * time.Millisecond), Level: gpio.High},
		Edge{At: t0.Add(30 * time.Millisecond), Level: gpio.Low},
		Edge{At: t0.Add(2 * time.Second), Level: gpio.High},
	)
	type result struct {
		edge  cdev.Edge
		ok    bool
		now   time.Duration
		level gpio.Level
	}
	results := make(chan result)
	go func() {
		defer close(results)
		for _, timeout := range []time.Duration{time.Minute, 0, 0, time.Minute} {
			e, ok, err := p.NextEdge(timeout)
			if err != nil {
				t.Error(err)
			}
			results <- result{e, ok, c.Now().Sub(t0), p.Read()}
		}
	}()
	p.horizonForTest(t0.Add(time.Minute))
	k := func(d time.Duration) time.Duration { return p.Kernel(t0.Add(d)) }
	want := []result{
		{cdev.Edge{Rising: true, At: k(20 * time.Millisecond), Seq: 2, Lost: 1}, true, time.Second, gpio.Low},
		{cdev.Edge{Rising: false, At: k(30 * time.Millisecond), Seq: 3}, true, time.Second, gpio.Low},
		{cdev.Edge{}, false, time.Second, gpio.Low},
		{cdev.Edge{Rising: true, At: k(2 * time.Second), Seq: 4}, true, 2 * time.Second, gpio.High},
	}
	for i, w := range want {
		if got := <-results; got != w {
			t.Errorf("read %d = %+v, want %+v", i, got, w)
		}
	}
	<-results
	if p.Now() != k(2*time.Second) || p.Dropped() != 1 {
		t.Errorf("Now = %v, Dropped = %d", p.Now(), p.Dropped())
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestEdgePinHaltIsSticky(t *testing.T) {
	c := NewClock(t0)
	p := NewEdgePin("GPIO17", 17, c)
	if _, _, err := p.NextEdge(time.Second); err == nil {
		t.Fatal("NextEdge before In succeeded")
	}
	_ = p.In(gpio.PullUp, gpio.BothEdges)
	_ = p.Halt() // nobody waits: not lost, unlike gpioioctl's
	for range 2 {
		if _, ok, err := p.NextEdge(time.Hour); ok || err != nil {
			t.Fatalf("halted NextEdge = %v, %v", ok, err)
		}
	}
	if c.Now() != t0 {
		t.Fatalf("halted waits moved the clock to %v", c.Now())
	}
	_ = p.In(gpio.PullUp, gpio.BothEdges) // a new request: not halted
	p.horizonForTest(t0.Add(time.Minute))
	if _, ok, _ := p.NextEdge(time.Second); ok || c.Now() != t0.Add(time.Second) {
		t.Fatalf("wait after In = %v at %v, want a timeout at +1s", ok, c.Now().Sub(t0))
	}
}
