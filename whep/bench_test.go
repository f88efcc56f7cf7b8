package whep

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkViewers measures what each WHEP viewer costs: the CPU (% of one
// core) and Go memory of this process while it serves N viewers on the
// shared UDP port, over and above serving none. The media is the fake
// encoder's (2.9 Mbit/s of video in 12 kB pictures at 30 fps, 30 kB
// keyframes every 2 s, 50 audio packets a second), so that an encoder's own
// CPU does not blur the figure; the viewers are bench/whepload (pion,
// browser-like) in a process of their own, so their CPU is not counted.
//
//	go test -run X -bench Viewers -benchtime 1x ./whep/
func BenchmarkViewers(b *testing.B) {
	whepload := filepath.Join(b.TempDir(), "whepload")
	if out, err := exec.Command("go", "build", "-o", whepload, "../bench/whepload").CombinedOutput(); err != nil {
		b.Fatalf("build whepload: %v\n%s", err, out)
	}
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			for b.Loop() {
				measureViewers(b, whepload, n)
			}
		})
	}
}

func measureViewers(b *testing.B, whepload string, n int) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	box := startBox(b, Options{UDPPort: port, MaxViewers: n})
	defer box.stop()
	box.goLive(b)
	time.Sleep(time.Second)
	const window = 8 * time.Second
	idleCPU := cpuOver(window)
	idleMem := memNow()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, whepload, "-url", box.url, "-n", strconv.Itoa(n), "-stagger", "20ms", "-duration", "12s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// whepload measures 2 s after its last join for 12 s: the same window.
	time.Sleep(time.Duration(n)*20*time.Millisecond + 3*time.Second)
	viewersCPU := cpuOver(window)
	viewersMem := memNow()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("whepload: %v\n%s", err, out.String())
	}
	b.ReportMetric((viewersCPU-idleCPU)/float64(n), "cpu%/viewer")
	b.ReportMetric(float64(viewersMem.heap-idleMem.heap)/float64(n)/1024, "heap-kB/viewer")
	b.ReportMetric(float64(viewersMem.stack-idleMem.stack)/float64(n)/1024, "stack-kB/viewer")
	b.ReportMetric(float64(viewersMem.goroutines-idleMem.goroutines)/float64(n), "goroutines/viewer")
	for _, f := range strings.Fields(out.String()) {
		if k, v, ok := strings.Cut(f, "="); ok && (k == "fps_per_viewer" || k == "packets_lost" || k == "failed") {
			x, _ := strconv.ParseFloat(v, 64)
			b.ReportMetric(x, k)
		}
	}
}

// cpuOver is the CPU this process used over d, in % of one core.
func cpuOver(d time.Duration) float64 {
	before, at := cpuTime(), time.Now()
	time.Sleep(d)
	return float64(cpuTime()-before) / float64(time.Since(at)) * 100
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type mem struct {
	heap, stack uint64 // live heap after a collection; goroutine stacks
	goroutines  int
}

func memNow() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}
