package testsrc

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

func TestPatternFrames(t *testing.T) {
	clock := device.NewClock()
	wall := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p, err := NewPattern(320, 240, 100, clock, func() time.Time { wall = wall.Add(time.Second); return wall })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var prev []byte
	var prevCapture time.Duration
	for i := 0; i < 5; i++ {
		f, err := p.ReadVideo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Format != media.I420 || f.Width != 320 || f.Height != 240 || len(f.Data) != 320*240*3/2 {
			t.Fatalf("frame %d: %v %dx%d len %d", i, f.Format, f.Width, f.Height, len(f.Data))
		}
		if i > 0 {
			// 10 ms apart; a test process that the machine's load holds up
			// for over four intervals sees the pattern skip ahead by whole
			// intervals (by design), never a step off the frame grid.
			if got := f.Capture - prevCapture; got < 10*time.Millisecond || got%(10*time.Millisecond) != 0 {
				t.Fatalf("frame %d: capture step %v, want 10ms (or whole multiples after a stall)", i, got)
			}
			if bytes.Equal(prev, f.Data) {
				t.Fatalf("frame %d is identical to the one before: the pattern must move", i)
			}
		}
		prev = append(prev[:0], f.Data...)
		prevCapture = f.Capture
	}
	if p.Frames() != 5 {
		t.Fatalf("Frames() = %d", p.Frames())
	}
}

func TestPatternHonoursContext(t *testing.T) {
	p, err := NewPattern(64, 64, 1, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReadVideo(context.Background()); err != nil { // first frame is due at once
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.ReadVideo(ctx); err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestPatternRejectsBadSize(t *testing.T) {
	for _, c := range [][3]int{{15, 16, 30}, {17, 16, 30}, {64, 64, 0}} {
		if _, err := NewPattern(c[0], c[1], c[2], device.NewClock(), nil); err == nil {
			t.Errorf("NewPattern(%v) accepted", c)
		}
	}
}

func TestToneLevelAndPacing(t *testing.T) {
	tone := NewTone(device.NewClock())
	var prev time.Duration
	for i := 0; i < 3; i++ {
		a, err := tone.ReadAudio(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.SampleRate != 48000 || a.Channels != 1 || len(a.Samples) != 960 {
			t.Fatalf("buffer %d: %d Hz %d ch %d samples", i, a.SampleRate, a.Channels, len(a.Samples))
		}
		if a.Duration() != 20*time.Millisecond {
			t.Fatalf("duration %v", a.Duration())
		}
		if i > 0 && a.Capture-prev != 20*time.Millisecond {
			t.Fatalf("capture step %v", a.Capture-prev)
		}
		prev = a.Capture
		var sum float64
		for _, s := range a.Samples {
			sum += float64(s) * float64(s)
		}
		rms := 20 * math.Log10(math.Sqrt(sum/float64(len(a.Samples)))/32768)
		if rms < -22 || rms > -20 { // a sine's RMS is 3 dB under its peak of -18 dBFS
			t.Fatalf("buffer %d: rms %.1f dBFS, want about -21", i, rms)
		}
	}
}

func TestPatternNoiseChangesEveryFrame(t *testing.T) {
	p, err := NewPattern(320, 240, 1000, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.WithNoise()
	a, _ := p.ReadVideo(context.Background())
	first := append([]byte(nil), a.Data[320*200:320*240]...)
	b, _ := p.ReadVideo(context.Background())
	same := 0
	for i, v := range b.Data[320*200 : 320*240] {
		if v == first[i] {
			same++
		}
	}
	if same > len(first)/50 { // random bytes agree 1 time in 256
		t.Fatalf("%d of %d noise pixels unchanged between frames", same, len(first))
	}
}
