package pipeline

import (
	"time"

	"github.com/onair/onair/media"
)

// A USB microphone's clock is never exactly its nominal rate: one that runs
// 0.01 % fast delivers 48 005 samples a second. Its buffers are stamped by
// counting samples (smooth, no scheduling jitter), so the audio timestamps
// would run ahead of the video's by 6 ms a minute and a receiver would hear
// the speaker ever earlier than it sees him.
//
// driftFix keeps the audio on the shared capture clock by dropping or
// repeating one millisecond of samples now and then: it compares where the
// sample count puts each buffer with when the buffer arrived, smooths that
// over about a second (arrival times jitter by a few ms), and corrects when
// the two drift apart by more than driftLimit. At 0.01 % that is one 1-ms
// edit every 50 s, too short and too rare to hear; a microphone far off its
// rate (1 %) is corrected every 100 ms.
type driftFix struct {
	now func() time.Duration

	started bool
	srcNext time.Duration // the source's stamp expected for its next buffer
	next    time.Duration // capture time of the next output sample
	base    time.Duration // next - now at the start: the source's latency
	ema     time.Duration // smoothed drift from base
	edits   int           // corrections made (for logs and tests)
	out     []int16
}

const (
	// driftLimit is how far the smoothed drift may go before a correction.
	driftLimit = 5 * time.Millisecond
	// driftStep is one correction: 1 ms of audio.
	driftStep = time.Millisecond
	// driftGap is a jump of the source's stamps that means samples were lost
	// (the source re-anchored): the new stamp is taken as it is.
	driftGap = 50 * time.Millisecond
)

// fix returns f on the capture clock: its Capture continues the output's
// sample count, and it may be 1 ms shorter or longer than it came. The
// returned samples are valid until the next call.
func (d *driftFix) fix(f media.AudioFrame) media.AudioFrame {
	if f.SampleRate <= 0 || f.Channels <= 0 || len(f.Samples) == 0 {
		return f
	}
	now := d.now()
	switch jump := f.Capture - d.srcNext; {
	case !d.started:
		d.started = true
		d.next = f.Capture
		d.base = f.Capture - now
	case jump > driftGap || jump < -driftGap:
		// The source lost samples and re-anchored on the clock: the output
		// jumps with it (the stream has the same hole).
		d.next += jump
	}
	d.srcNext = f.Capture + time.Duration(len(f.Samples)/f.Channels)*time.Second/time.Duration(f.SampleRate)
	drift := d.next - now - d.base
	d.ema += (drift - d.ema) / 50 // about a second of 20 ms buffers
	// One driftStep of samples, in int64: on 32-bit ARM an int holds
	// neither nanoseconds times a sample rate nor much else.
	step := int(int64(driftStep)*int64(f.SampleRate)/int64(time.Second)) * f.Channels
	samples := f.Samples
	switch {
	case d.ema > driftLimit && len(samples) > 2*step:
		// Ahead of the clock (the microphone runs fast): leave out the last
		// millisecond.
		samples = samples[:len(samples)-step]
		d.ema -= driftStep
		d.edits++
	case d.ema < -driftLimit && len(samples) >= step:
		// Behind (it runs slow): play the last millisecond twice.
		d.out = append(append(d.out[:0], samples...), samples[len(samples)-step:]...)
		samples = d.out
		d.ema += driftStep
		d.edits++
	}
	out := media.AudioFrame{SampleRate: f.SampleRate, Channels: f.Channels, Samples: samples, Capture: d.next}
	d.next += time.Duration(len(samples)/f.Channels) * time.Second / time.Duration(f.SampleRate)
	return out
}
