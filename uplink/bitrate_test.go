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
		got, changed, _ := c.update(t0.Add(s.at), s.sig)
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

// A link that loses most of its capacity at once (an estimate under half
// the bitrate in force) gets an encoder under the estimate's share, and the
// session is told (it pauses video and restarts with a keyframe); a fall
// within the usual range is followed as it is.
func TestControllerSteepFall(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newController(300, 4000, 3700)
	kbps, changed, steep := c.update(t0, signals{twccKbps: 3000, loss: -1})
	if kbps != 2550 || !changed || steep {
		t.Errorf("3700 -> estimate 3000: %d kbps (changed %v, steep %v), want 2550, not steep", kbps, changed, steep)
	}
	c = newController(300, 4000, 3700)
	kbps, changed, steep = c.update(t0, signals{twccKbps: 1570, loss: -1})
	if kbps != 800 || !changed || !steep {
		t.Errorf("3700 -> estimate 1570 (its video share 1334): %d kbps (changed %v, steep %v), want 800, steep", kbps, changed, steep)
	}
	kbps, changed, steep = c.update(t0.Add(200*time.Millisecond), signals{twccKbps: 1570, loss: -1})
	if changed || steep {
		t.Errorf("the same estimate again: %d kbps (changed %v, steep %v), want no change", kbps, changed, steep)
	}
	if kbps, _, _ = c.update(t0.Add(time.Second), signals{twccKbps: 1570, loss: -1}); kbps != 897 {
		t.Errorf("a second later with room: %d kbps, want the usual step up to 897", kbps)
	}
	// GCC's steps at a 1000 kbit/s cap, one per feedback.
	c = newController(300, 4000, 3751)
	for i, step := range []struct {
		estimateKbps, want int
		steep              bool
	}{{2212, 1880, false}, {1737, 885, true}, {1463, 885, false}, {987, 838, false}, {739, 628, false}} {
		kbps, _, steep := c.update(t0.Add(time.Duration(i)*100*time.Millisecond), signals{twccKbps: step.estimateKbps, loss: -1})
		if kbps != step.want || steep != step.steep {
			t.Errorf("fall in steps, estimate %d: %d kbps (steep %v), want %d (steep %v)", step.estimateKbps, kbps, steep, step.want, step.steep)
		}
	}
	c = newController(300, 4000, 1000)
	if kbps, _, steep := c.update(t0, signals{twccKbps: 100, loss: -1}); kbps != 300 || !steep {
		t.Errorf("steep fall to under the minimum: %d kbps (steep %v), want 300, steep", kbps, steep)
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

// When even the minimum bitrate does not fit, the frame rate goes down (a
// smaller share of pictures at the same bits each) instead of the picture
// freezing; it comes back one step per second once there is room.
func TestControllerFrameRateBelowTheMinimum(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newController(300, 3000, 1000)
	steps := []struct {
		name    string
		at      time.Duration
		sig     signals
		want    int
		changed bool
	}{
		{"room above the minimum: every picture", 0, signals{twccKbps: 1000, loss: -1}, 1, false},
		{"room for half the minimum: every 2nd picture", 200 * time.Millisecond, signals{twccKbps: 180, loss: -1}, 2, true},
		{"room for a fifth: every 4th, no further", 400 * time.Millisecond, signals{twccKbps: 70, loss: -1}, 4, true},
		{"no feedback: hold", 600 * time.Millisecond, signals{loss: -1}, 4, false},
		{"moderate loss: hold", 800 * time.Millisecond, signals{loss: 0.05}, 4, false},
		{"room again, but too soon after the last change", 1000 * time.Millisecond, signals{twccKbps: 5000, loss: -1}, 4, false},
		{"a second later: one step up", 1500 * time.Millisecond, signals{twccKbps: 5000, loss: -1}, 3, true},
		{"and the next", 2600 * time.Millisecond, signals{twccKbps: 5000, loss: -1}, 2, true},
		{"and back to all pictures", 3700 * time.Millisecond, signals{twccKbps: 5000, loss: -1}, 1, true},
	}
	for _, s := range steps {
		c.update(t0.Add(s.at), s.sig)
		got, changed := c.frames(t0.Add(s.at), s.sig)
		if got != s.want || changed != s.changed {
			t.Errorf("%s: divisor %d (changed %v), want %d (changed %v)", s.name, got, changed, s.want, s.changed)
		}
	}
	if c.chosenKbps < 300 {
		t.Fatalf("bitrate %d under the minimum", c.chosenKbps)
	}
}
