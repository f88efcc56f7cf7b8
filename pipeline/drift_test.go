package pipeline

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onair/onair/media"
)

// micSim is a microphone whose crystal runs at trueRate while it claims
// 48 kHz: 20 ms buffers of 960 frames arrive every 960/trueRate seconds of
// real time, a few ms late at random, stamped by counting samples as the
// ALSA source does.
type micSim struct {
	trueRate float64
	n        int // buffers delivered
	rng      *rand.Rand
}

func (m *micSim) next() (f media.AudioFrame, arrival time.Duration, firstSample time.Duration) {
	const frames = 960
	firstSample = time.Duration(float64(m.n*frames) / m.trueRate * float64(time.Second))
	end := time.Duration(float64((m.n+1)*frames) / m.trueRate * float64(time.Second))
	arrival = end + time.Duration(m.rng.IntN(8000))*time.Microsecond // scheduling jitter up to 8 ms
	f = media.AudioFrame{SampleRate: 48000, Channels: 1, Samples: make([]int16, frames),
		Capture: time.Duration(m.n) * 20 * time.Millisecond} // counted: 20 ms per buffer
	m.n++
	return f, arrival, firstSample
}

// TestDriftStaysUnder40ms feeds ten simulated minutes of a microphone that
// runs 0.01 % fast (and, in a second case, 0.01 % slow and 0.5 % fast) through
// the correction and checks, for every buffer, how far the timestamp a
// receiver plays it at is from when its first sample was really captured.
// Video is stamped with the real capture time, so that is the A/V offset.
func TestDriftStaysUnder40ms(t *testing.T) {
	for _, c := range []struct {
		name string
		rate float64
	}{{"0.01% fast", 48004.8}, {"0.01% slow", 47995.2}, {"0.5% fast", 48240}} {
		t.Run(c.name, func(t *testing.T) {
			mic := &micSim{trueRate: c.rate, rng: rand.New(rand.NewPCG(1, 2))}
			var now time.Duration
			d := &driftFix{now: func() time.Duration { return now }}
			var worst, first time.Duration
			buffers := int(10 * time.Minute / (20 * time.Millisecond))
			for i := 0; i < buffers; i++ {
				f, arrival, real := mic.next()
				now = arrival
				out := d.fix(f)
				offset := out.Capture - real
				if i == 0 {
					first = offset
				}
				// The constant part (stamps count from the first buffer) is
				// the same for every buffer; what matters is how it moves.
				if dev := (offset - first).Abs(); dev > worst {
					worst = dev
				}
			}
			t.Logf("%s: worst A/V offset change %v over 10 min, %d corrections of 1 ms", c.name, worst, d.edits)
			if worst > 40*time.Millisecond {
				t.Fatalf("A/V offset moved by %v, want under 40 ms", worst)
			}
			if d.edits == 0 {
				t.Fatal("no correction: the drift was not seen")
			}
		})
	}
	// Without the correction the same microphone drifts well past the limit:
	// the test would notice if fix did nothing.
	mic := &micSim{trueRate: 48004.8, rng: rand.New(rand.NewPCG(1, 2))}
	var last time.Duration
	for i := 0; i < int(10*time.Minute/(20*time.Millisecond)); i++ {
		f, _, real := mic.next()
		last = f.Capture - real
	}
	if last < 50*time.Millisecond {
		t.Fatalf("uncorrected drift after 10 min is %v: the simulation is not drifting", last)
	}
}

func TestDriftFixFollowsGaps(t *testing.T) {
	var now time.Duration
	d := &driftFix{now: func() time.Duration { return now }}
	f := media.AudioFrame{SampleRate: 48000, Channels: 2, Samples: make([]int16, 1920)}
	for i := 0; i < 10; i++ {
		f.Capture, now = time.Duration(i)*20*time.Millisecond, time.Duration(i+1)*20*time.Millisecond
		if out := d.fix(f); out.Capture != f.Capture || len(out.Samples) != 1920 {
			t.Fatalf("buffer %d on time: %v, %d samples", i, out.Capture, len(out.Samples))
		}
	}
	// Samples were lost: the source re-anchored 300 ms later; so does fix.
	f.Capture, now = 500*time.Millisecond, 520*time.Millisecond
	if out := d.fix(f); out.Capture != 500*time.Millisecond {
		t.Fatalf("after a gap: %v, want the source's 500ms", out.Capture)
	}
}
