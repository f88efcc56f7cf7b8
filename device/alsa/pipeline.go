package alsa

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// captureTimer gives each buffer its capture time. Reading the clock in every
// callback would carry the audio thread's scheduling jitter into RTP
// timestamps, so while buffers are contiguous the time advances by exactly the
// audio that was delivered, counted in frames from the last anchor (no
// rounding drift). It re-anchors on the clock only when a buffer arrives
// later than the device's own ring could have held it: then samples were
// lost (an overrun) and pretending otherwise would shift audio against video.
// An early buffer never moves time backwards, so times stay monotonic.
type captureTimer struct {
	rate  int
	slack time.Duration // lateness that buffering explains

	anchored bool
	anchor   time.Duration // capture time of the first frame after the anchor
	frames   int64         // frames stamped since the anchor
	gaps     atomic.Uint64 // re-anchors after the first; read by Source.Gaps
}

// stamp returns the capture time of a buffer of n frames whose first frame
// the clock places at measured.
func (t *captureTimer) stamp(measured time.Duration, n int) time.Duration {
	expected := t.anchor + time.Duration(t.frames)*time.Second/time.Duration(t.rate)
	if !t.anchored || measured > expected+t.slack {
		if t.anchored {
			t.gaps.Add(1)
		}
		if measured < 0 {
			measured = 0
		}
		t.anchored, t.anchor, t.frames = true, measured, 0
		expected = measured
	}
	t.frames += int64(n)
	return expected
}

// pipeline turns miniaudio's callbacks into whole 20 ms buffers and queues
// them for the reader. feed runs on the audio thread and never waits for
// the reader; read runs on the reader's goroutine. It has no cgo in it so
// that it can be tested and benchmarked on its own.
type pipeline struct {
	channels    int
	frameBytes  int
	bufFrames   int
	bufDuration time.Duration

	// Owned by the audio thread.
	staging []int16
	filled  int // samples in staging
	timer   captureTimer

	mu       sync.Mutex
	slots    [][]int16
	captures []time.Duration
	head     int
	count    int
	dropped  atomic.Uint64
	// ready holds one token when buffers may be waiting; a full channel
	// means the reader is already due to look, so feed never blocks on it.
	ready chan struct{}
	// lastDelivery is the clock time of the latest callback, for the stall
	// watchdog in ReadAudio.
	lastDelivery atomic.Int64
}

func newPipeline(cfg Config) *pipeline {
	frames := cfg.bufferFrames()
	p := &pipeline{
		channels:    cfg.Channels,
		frameBytes:  2 * cfg.Channels,
		bufFrames:   frames,
		bufDuration: time.Duration(frames) * time.Second / time.Duration(cfg.SampleRate),
		staging:     make([]int16, frames*cfg.Channels),
		slots:       make([][]int16, cfg.QueueBuffers),
		captures:    make([]time.Duration, cfg.QueueBuffers),
		ready:       make(chan struct{}, 1),
	}
	p.timer = captureTimer{rate: cfg.SampleRate, slack: devicePeriods * p.bufDuration}
	for i := range p.slots {
		p.slots[i] = make([]int16, frames*cfg.Channels)
	}
	return p
}

// feed takes one callback's worth of S16LE interleaved bytes that ended at
// now on the pipeline clock.
func (p *pipeline) feed(in []byte, now time.Duration) {
	p.lastDelivery.Store(int64(now))
	totalFrames := len(in) / p.frameBytes
	for frame := 0; frame < totalFrames; {
		take := min(totalFrames-frame, p.bufFrames-p.filled/p.channels)
		chunk := in[frame*p.frameBytes : (frame+take)*p.frameBytes]
		dst := p.staging[p.filled : p.filled+take*p.channels]
		for i := range dst {
			dst[i] = int16(binary.LittleEndian.Uint16(chunk[2*i:]))
		}
		p.filled += take * p.channels
		frame += take
		if p.filled < len(p.staging) {
			continue
		}
		// The buffer just completed ends where the frames still left in
		// this callback begin, so it started one buffer before that.
		left := time.Duration(totalFrames-frame) * p.bufDuration / time.Duration(p.bufFrames)
		capture := p.timer.stamp(now-left-p.bufDuration, p.bufFrames)
		p.push(capture)
		p.filled = 0
	}
}

// push queues the staging buffer, dropping the oldest queued buffer when
// the reader has fallen a whole queue behind.
func (p *pipeline) push(capture time.Duration) {
	p.mu.Lock()
	if p.count == len(p.slots) {
		p.head = (p.head + 1) % len(p.slots)
		p.count--
		p.dropped.Add(1)
	}
	tail := (p.head + p.count) % len(p.slots)
	copy(p.slots[tail], p.staging)
	p.captures[tail] = capture
	p.count++
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// read copies the oldest queued buffer into dst and returns its capture
// time; ok is false when nothing is queued. Copying under the lock keeps the
// audio thread from overwriting a slot while it is read, and dst belongs to
// the reader so the returned samples stay valid until its next call.
func (p *pipeline) read(dst []int16) (capture time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		return 0, false
	}
	copy(dst, p.slots[p.head])
	capture = p.captures[p.head]
	p.head = (p.head + 1) % len(p.slots)
	p.count--
	return capture, true
}
