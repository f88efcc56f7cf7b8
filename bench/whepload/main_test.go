//go:build cgo

package main

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/encoder/x264"
)

func TestEncoderThreadsAreX264s(t *testing.T) {
	if defaultEncoderThreads != x264.ThreadName {
		t.Fatalf("whepload looks for threads named %q, x264's are named %q", defaultEncoderThreads, x264.ThreadName)
	}
}

// An encoder in this very process: its threads' CPU is found by name, and
// is part of the process's.
func TestThreadTicksCountsTheEncoder(t *testing.T) {
	enc, err := x264.New(encoder.VideoParams{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, KeyframeInterval: time.Second}, x264.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pattern, err := testsrc.NewPattern(1280, 720, 100000, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pattern.WithNoise()
	pid := os.Getpid()
	if got := threadTicks(pid, "no-such-thread"); got != 0 {
		t.Errorf("%d ticks for threads of a name nobody has", got)
	}
	// Encode until the encoder's threads have used a clock tick (10 ms);
	// noise at 720p costs x264 milliseconds a picture.
	var ticks int64
	for i := 0; i < 600 && ticks == 0; i++ {
		f, err := pattern.ReadVideo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := enc.Encode(f, false); err != nil {
			t.Fatal(err)
		}
		ticks = threadTicks(pid, x264.ThreadName)
	}
	if ticks == 0 {
		t.Fatal("no CPU counted for the encoder's threads after 600 pictures")
	}
	user, sys := cpuTicks("/proc/self/stat")
	if ticks > user+sys {
		t.Errorf("encoder threads %d ticks, more than the whole process's %d", ticks, user+sys)
	}
}

// A thread that sleeps gives up its core each time: the count grows, and
// leaves out the threads named as the encoder's.
func TestContextSwitchesCountsWakeUps(t *testing.T) {
	pid := os.Getpid()
	before := contextSwitches(pid, x264.ThreadName)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for range 20 {
			time.Sleep(time.Millisecond)
		}
	}()
	<-done
	after := contextSwitches(pid, x264.ThreadName)
	if after-before < 20 {
		t.Errorf("%d context switches counted across 20 sleeps of one thread", after-before)
	}
	// Every thread of this process named as the encoder's: none counted.
	own, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if n := contextSwitches(pid, strings.TrimSpace(string(own))); n >= after {
		t.Errorf("%d switches without the threads named %q, %d with them", n, strings.TrimSpace(string(own)), after)
	}
}
