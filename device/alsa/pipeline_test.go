package alsa

import (
	"encoding/binary"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestCaptureTimer(t *testing.T) {
	// Each step stamps one 960-frame (20 ms) buffer whose first frame the
	// clock places at measured.
	type step struct {
		measured time.Duration
		want     time.Duration
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		wantGaps uint64
	}{
		{"contiguous buffers ignore jitter", []step{
			{100 * ms, 100 * ms}, {127 * ms, 120 * ms}, {133 * ms, 140 * ms}, {199 * ms, 160 * ms},
		}, 0},
		{"early buffers never go back in time", []step{
			{100 * ms, 100 * ms}, {101 * ms, 120 * ms}, {102 * ms, 140 * ms},
		}, 0},
		{"lateness within the device ring is buffering", []step{
			{100 * ms, 100 * ms}, {200 * ms, 120 * ms},
		}, 0},
		{"lateness beyond the device ring is a gap", []step{
			{100 * ms, 100 * ms}, {201 * ms, 201 * ms}, {221 * ms, 221 * ms}, {250 * ms, 241 * ms},
		}, 1},
		{"a clock before zero anchors at zero", []step{
			{-5 * ms, 0}, {10 * ms, 20 * ms},
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timer := captureTimer{rate: 48000, slack: devicePeriods * 20 * ms}
			for i, s := range tc.steps {
				if got := timer.stamp(s.measured, 960); got != s.want {
					t.Fatalf("step %d: measured %v stamped %v, want %v", i, s.measured, got, s.want)
				}
			}
			if got := timer.gaps.Load(); got != tc.wantGaps {
				t.Fatalf("%d gaps, want %d", got, tc.wantGaps)
			}
		})
	}
}

// TestCaptureTimerHasNoRoundingDrift uses a rate whose buffer duration is
// not a whole number of nanoseconds per frame: an hour of buffers must still
// land exactly on the hour.
func TestCaptureTimerHasNoRoundingDrift(t *testing.T) {
	timer := captureTimer{rate: 44100, slack: time.Hour}
	var got time.Duration
	for range 3600 * 50 {
		got = timer.stamp(0, 882)
	}
	if want := time.Hour - 20*ms; got != want {
		t.Fatalf("last buffer stamped %v, want %v", got, want)
	}
}

// s16 encodes interleaved samples as miniaudio hands them to the callback.
func s16(samples []int16) []byte {
	b := make([]byte, 2*len(samples))
	for i, v := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func testPipeline(t testing.TB, channels, queue int) *pipeline {
	t.Helper()
	cfg, err := Config{Channels: channels, QueueBuffers: queue}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newPipeline(cfg)
}

// TestPipelineRegroupsCallbacks feeds callbacks of 441 stereo frames (what a
// 44.1 kHz device with 10 ms periods would give before conversion) and
// expects whole 960-frame buffers with every sample in order.
func TestPipelineRegroupsCallbacks(t *testing.T) {
	p := testPipeline(t, 2, 50)
	const perCallback = 441
	var next int16
	var now time.Duration
	for range 30 {
		in := make([]int16, perCallback*2)
		for i := range in {
			in[i] = next
			next++
		}
		now += time.Duration(perCallback) * time.Second / 48000
		p.feed(s16(in), now)
	}
	out := make([]int16, 960*2)
	var want int16
	var prev time.Duration
	buffers := 0
	for {
		capture, ok := p.read(out)
		if !ok {
			break
		}
		for i, v := range out {
			if v != want {
				t.Fatalf("buffer %d sample %d = %d, want %d", buffers, i, v, want)
			}
			want++
		}
		if buffers > 0 && capture-prev != 20*ms {
			t.Fatalf("buffer %d at %v, %v after the previous; want 20ms", buffers, capture, capture-prev)
		}
		prev = capture
		buffers++
	}
	if wantBuffers := 30 * perCallback / 960; buffers != wantBuffers {
		t.Fatalf("%d buffers, want %d", buffers, wantBuffers)
	}
	// The first buffer ended 960 frames into the audio, which ended at the
	// callback that completed it: its first frame is at time 0.
	if first := p.timer.anchor; first != 0 {
		t.Fatalf("first buffer anchored at %v, want 0", first)
	}
}

func TestPipelineDropsOldestWhenReaderIsBehind(t *testing.T) {
	p := testPipeline(t, 1, 3)
	for k := range 5 {
		in := make([]int16, 960)
		in[0] = int16(k)
		p.feed(s16(in), time.Duration(k+1)*20*ms)
	}
	if got := p.dropped.Load(); got != 2 {
		t.Fatalf("dropped %d, want 2", got)
	}
	out := make([]int16, 960)
	for _, want := range []int16{2, 3, 4} {
		if _, ok := p.read(out); !ok || out[0] != want {
			t.Fatalf("read buffer %d (ok %v), want %d", out[0], ok, want)
		}
	}
	if _, ok := p.read(out); ok {
		t.Fatal("read a fourth buffer from a queue of three")
	}
	select {
	case <-p.ready:
	default:
		t.Fatal("no ready token after buffers were queued")
	}
}

// BenchmarkFeedRead is the steady-state path per 20 ms buffer: one callback
// on the audio thread and one read by the encoder. Goal: 0 allocs/op.
func BenchmarkFeedRead(b *testing.B) {
	p := testPipeline(b, 1, DefaultQueueBuffers)
	in := s16(make([]int16, 960))
	out := make([]int16, 960)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var now time.Duration
	for b.Loop() {
		now += 20 * ms
		p.feed(in, now)
		if _, ok := p.read(out); !ok {
			b.Fatal("no buffer")
		}
	}
}

func TestFeedReadAllocatesNothing(t *testing.T) {
	p := testPipeline(t, 2, DefaultQueueBuffers)
	in := s16(make([]int16, 960*2))
	out := make([]int16, 960*2)
	var now time.Duration
	allocs := testing.AllocsPerRun(1000, func() {
		now += 20 * ms
		p.feed(in, now)
		p.read(out)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per buffer, want 0", allocs)
	}
}
