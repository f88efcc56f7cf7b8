package testsrc

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Tone is a test tone: 440 Hz, with the first 100 ms of every second at
// 880 Hz so that audio can be lined up with the pattern's clock by ear.
// It delivers 20 ms buffers of mono 48 kHz PCM, paced in real time.
type Tone struct {
	clock     *device.Clock
	rate      int
	chunk     int // samples per buffer
	amplitude float64
	buf       []int16
	phase     float64
	sent      int64 // samples produced so far
	start     time.Duration
}

// ToneSampleRate is the tone's sample rate, Opus's native one.
const ToneSampleRate = 48000

// NewTone makes a tone source on the given capture clock at about -18 dBFS.
func NewTone(clock *device.Clock) *Tone {
	chunk := ToneSampleRate / 50
	return &Tone{
		clock: clock, rate: ToneSampleRate, chunk: chunk,
		amplitude: 32767 * math.Pow(10, -18.0/20),
		buf:       make([]int16, chunk),
		start:     clock.Now(),
	}
}

// ReadAudio waits until the next 20 ms of tone is due and returns it.
func (t *Tone) ReadAudio(ctx context.Context) (media.AudioFrame, error) {
	capture := t.start + time.Duration(t.sent)*time.Second/time.Duration(t.rate)
	if wait := capture - t.clock.Now(); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return media.AudioFrame{}, ctx.Err()
		case <-timer.C:
		}
	}
	for i := range t.buf {
		n := t.sent + int64(i)
		freq := 440.0
		if n%int64(t.rate) < int64(t.rate/10) {
			freq = 880
		}
		t.phase += 2 * math.Pi * freq / float64(t.rate)
		if t.phase > 2*math.Pi {
			t.phase -= 2 * math.Pi
		}
		t.buf[i] = int16(t.amplitude * math.Sin(t.phase))
	}
	t.sent += int64(t.chunk)
	return media.AudioFrame{SampleRate: t.rate, Channels: 1, Samples: t.buf, Capture: capture}, nil
}

// Close releases nothing; it exists to satisfy device.AudioSource.
func (t *Tone) Close() error { return nil }

// String describes the source for logs and status.
func (t *Tone) String() string { return fmt.Sprintf("test tone %d Hz mono", t.rate) }

var _ device.AudioSource = (*Tone)(nil)
