//go:build cgo

package x264

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/encoder"
)

// threadNames counts this process's threads by name.
func threadNames(t *testing.T) map[string]int {
	t.Helper()
	comms, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, p := range comms {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended meanwhile
		}
		names[strings.TrimSpace(string(b))]++
	}
	return names
}

func ownThreadName(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSliceThreadsCarryTheEncodersName(t *testing.T) {
	runtime.LockOSThread() // New renames this very thread for a moment
	defer runtime.UnlockOSThread()
	own := ownThreadName(t)
	if own == ThreadName {
		t.Fatalf("the test's thread is already named %q", own)
	}
	before := threadNames(t)[ThreadName]
	enc, err := New(encoder.VideoParams{Width: 320, Height: 240, FPS: 30, BitrateKbps: 500, KeyframeInterval: time.Second}, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := ownThreadName(t); got != own {
		t.Errorf("the caller's thread is named %q after New, want its own %q back", got, own)
	}
	if got := threadNames(t)[ThreadName]; got <= before {
		t.Errorf("%d threads named %q with a 2-thread encoder open, %d before: x264's threads do not carry the name", got, ThreadName, before)
	}
	t.Logf("tid %d; threads: %v", syscall.Gettid(), threadNames(t))
	enc.Close()
	// x264 joins its threads on close; the kernel lists a thread until it
	// has been reaped, so look again for a while.
	deadline := time.Now().Add(5 * time.Second)
	for threadNames(t)[ThreadName] > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := threadNames(t)[ThreadName]; got != before {
		t.Errorf("%d threads named %q after Close, want %d", got, ThreadName, before)
	}
}
