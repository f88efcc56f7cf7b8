package uplink

import (
	"testing"
	"time"
)

func TestControllerSteps(t *testing.T) {
	t0 := time.Unix(0, 0)
	steps := []struct {
		name    string
		at      time.Duration
		sig     signals
		want    int
		changed bool
	}{
		{"no feedback yet: stays at the start", 0, signals{loss: -1}, 1000, false},
		{"TWCC says 600: down at once to its video share", 200 * time.Millisecond, signals{twccKbps: 600, loss: -1}, 510, true},
		{"TWCC recovers: up at most 12 % after a second", 400 * time.Millisecond, signals{twccKbps: 3000, loss: -1}, 510, false},
		{"a second later: one step", 1200 * time.Millisecond, signals{twccKbps: 3000, loss: -1}, 572, true},
		{"REMB lower than TWCC wins", 1400 * time.Millisecond, signals{twccKbps: 3000, rembKbps: 400, loss: -1}, 340, true},
		{"heavy loss in receiver reports cuts", 1600 * time.Millisecond, signals{loss: 0.3}, 289, true},
		{"moderate loss holds", 3 * time.Second, signals{loss: 0.05}, 289, false},
		{"never under the minimum", 4 * time.Second, signals{twccKbps: 50, loss: -1}, 200, true},
		{"never over the maximum", 60 * time.Second, signals{twccKbps: 100000, loss: 0}, 225, true},
	}
	c := newController(200, 2000, 1000)
	for _, s := range steps {
		got, changed := c.update(t0.Add(s.at), s.sig)
		if got != s.want || changed != s.changed {
			t.Errorf("%s: got %d (changed %v), want %d (changed %v)", s.name, got, changed, s.want, s.changed)
		}
	}
	// Climbing from the minimum to the maximum takes many steps: up slowly.
	now := t0.Add(time.Minute)
	steps2 := 0
	for c.chosenKbps < 2000 && steps2 < 100 {
		now = now.Add(upInterval)
		c.update(now, signals{twccKbps: 100000, loss: 0})
		steps2++
	}
	if c.chosenKbps != 2000 || steps2 < 15 {
		t.Errorf("from 225 to %d kbps in %d steps of %s, want the maximum after at least 15", c.chosenKbps, steps2, upInterval)
	}
}

func TestControllerStartClamped(t *testing.T) {
	for _, tc := range []struct{ start, want int }{{5000, 4000}, {100, 300}, {2500, 2500}} {
		if got := newController(300, 4000, tc.start).chosenKbps; got != tc.want {
			t.Errorf("start %d: %d, want %d", tc.start, got, tc.want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 30 * time.Second, Jitter: 0.2}
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0.5, time.Second},
		{1, 0.5, 2 * time.Second},
		{4, 0.5, 16 * time.Second},
		{5, 0.5, 30 * time.Second},
		{1000, 0.5, 30 * time.Second},
		{0, 0, 800 * time.Millisecond},
		{5, 0.9999999, 36 * time.Second},
	} {
		if got := b.Delay(tc.attempt, tc.r); (got - tc.want).Abs() > time.Millisecond {
			t.Errorf("Delay(%d, %v) = %s, want %s", tc.attempt, tc.r, got, tc.want)
		}
	}
}
