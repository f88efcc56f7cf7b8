// Command whepload connects N WHEP viewers to an onaird (browser-like: NACK,
// receiver reports, TWCC, one PLI on the first packet), keeps them for a
// while, and reports join latencies, frame rate, loss, and the daemon's CPU
// and memory read from /proc. The CPU of the daemon's encoder threads
// (x264's, named x264.ThreadName) is also given alone: it does not depend on
// the viewers, and its run-to-run swings hide what a viewer costs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onair/onair/internal/whepclient"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/api/whep", "WHEP endpoint")
	viewers := flag.Int("n", 10, "viewers")
	stagger := flag.Duration("stagger", 20*time.Millisecond, "time between joins")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure after the last join")
	pid := flag.Int("pid", 0, "onaird's pid, for CPU and RSS")
	encoderThreads := flag.String("encoder-threads", defaultEncoderThreads, "name of the daemon's encoder threads, whose CPU is also given alone")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*url, *viewers, *stagger, *duration, daemon{pid: *pid, encoderThreads: *encoderThreads}); err != nil {
		log.Error("whepload", "err", err)
		os.Exit(1)
	}
}

// defaultEncoderThreads is x264.ThreadName (not imported: that would link
// libx264 into the load client; a test holds the two together).
const defaultEncoderThreads = "onair-x264"

// daemon is the onaird process measured.
type daemon struct {
	pid            int
	encoderThreads string
}

type result struct {
	firstRTP, firstKeyframe time.Duration
	frames, lost            int
	ok                      bool
	gaps                    [1001]int
}

func run(url string, n int, stagger, duration time.Duration, d daemon) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+time.Duration(n)*stagger+time.Minute)
	defer cancel()
	clients := make([]*whepclient.Client, n)
	joined := make([]time.Time, n)
	for i := range clients {
		joined[i] = time.Now()
		c, err := whepclient.Dial(ctx, url, whepclient.Options{PLIOnFirstPacket: true})
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return fmt.Errorf("viewer %d: %w", i, err)
		}
		clients[i] = c
		time.Sleep(stagger)
	}
	// Let every viewer settle, then measure frames and the daemon over the window.
	time.Sleep(2 * time.Second)
	startFrames := make([]int, n)
	startGaps := make([][1001]int, n)
	for i, c := range clients {
		st := c.Stats()
		startFrames[i], startGaps[i] = st.VideoFrames, st.FrameGapsMS
	}
	user0, sys0 := cpuTicks(fmt.Sprintf("/proc/%d/stat", d.pid))
	enc0 := threadTicks(d.pid, d.encoderThreads)
	switches0 := contextSwitches(d.pid, d.encoderThreads)
	t0 := time.Now()
	time.Sleep(duration)
	user1, sys1 := cpuTicks(fmt.Sprintf("/proc/%d/stat", d.pid))
	enc1 := threadTicks(d.pid, d.encoderThreads)
	switches1 := contextSwitches(d.pid, d.encoderThreads)
	t1 := time.Now()
	rss := rssBytes(d.pid)
	metrics := strings.TrimSuffix(url, "/api/whep") + "/metrics"
	heap := metric(metrics, "go_memstats_heap_inuse_bytes")
	goroutines := metric(metrics, "go_goroutines")

	results := make([]result, n)
	for i, c := range clients {
		st := c.Stats()
		results[i] = result{frames: st.VideoFrames - startFrames[i], lost: st.VideoPacketsLost, ok: !st.FirstKeyframe.IsZero()}
		for ms := range st.FrameGapsMS {
			results[i].gaps[ms] = st.FrameGapsMS[ms] - startGaps[i][ms]
		}
		if !st.FirstRTP.IsZero() {
			results[i].firstRTP = st.FirstRTP.Sub(joined[i])
		}
		if results[i].ok {
			results[i].firstKeyframe = st.FirstKeyframe.Sub(joined[i])
		}
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.Close() }()
	}
	wg.Wait()

	var rtp, key []time.Duration
	var gaps [1001]int
	frames, lost, failed := 0, 0, 0
	for _, r := range results {
		if !r.ok {
			failed++
			continue
		}
		rtp = append(rtp, r.firstRTP)
		key = append(key, r.firstKeyframe)
		frames += r.frames
		lost += r.lost
		for ms, k := range r.gaps {
			gaps[ms] += k
		}
	}
	secs := t1.Sub(t0).Seconds()
	fmt.Printf("viewers=%d failed=%d first_rtp_p50=%s first_rtp_p95=%s first_keyframe_p50=%s first_keyframe_p95=%s fps_per_viewer=%.1f packets_lost=%d",
		n, failed, pct(rtp, 0.5), pct(rtp, 0.95), pct(key, 0.5), pct(key, 0.95), float64(frames)/float64(max(1, n-failed))/secs, lost)
	fmt.Printf(" frame_gap_p50_ms=%d frame_gap_p99_ms=%d frame_gap_max_ms=%d", gapPct(gaps, 0.5), gapPct(gaps, 0.99), gapPct(gaps, 1))
	if d.pid > 0 {
		pct := func(ticks int64) float64 { return float64(ticks) / 100 / secs * 100 }
		fmt.Printf(" daemon_cpu_pct=%.1f daemon_user_pct=%.1f daemon_sys_pct=%.1f daemon_encoder_pct=%.1f daemon_switches_per_s=%.0f daemon_rss_mb=%.1f",
			pct(user1-user0+sys1-sys0), pct(user1-user0), pct(sys1-sys0), pct(enc1-enc0),
			float64(switches1-switches0)/secs, float64(rss)/(1<<20))
	}
	if heap > 0 {
		fmt.Printf(" daemon_heap_inuse_mb=%.1f daemon_goroutines=%.0f", heap/(1<<20), goroutines)
	}
	fmt.Println()
	return nil
}

// metric reads one unlabelled value from a Prometheus text endpoint; 0 if
// it cannot.
func metric(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func pct(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))].Round(time.Millisecond).String()
}

// cpuTicks is utime and stime in clock ticks (100 per second on Linux) from
// a process's or thread's stat file: its own work, and the kernel's on its
// behalf (over loopback that includes delivering each packet to the
// receiving socket).
func cpuTicks(statPath string) (user, sys int64) {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which may contain spaces.
	end := strings.LastIndexByte(string(b), ')')
	if end < 0 || end+2 > len(b) {
		return 0, 0
	}
	f := strings.Fields(string(b[end+2:]))
	if len(f) < 13 {
		return 0, 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime, stime
}

// thread is one of a process's threads: its /proc directory and name.
type thread struct{ dir, name string }

// threads lists pid's threads (one that ends meanwhile is left out).
func threads(pid int) []thread {
	if pid <= 0 {
		return nil
	}
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return nil
	}
	var list []thread
	for _, dir := range dirs {
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue
		}
		list = append(list, thread{dir: dir, name: strings.TrimSpace(string(comm))})
	}
	return list
}

// contextSwitches is how often pid's threads other than those named
// encoderThreads have given up their core so far, voluntarily (to wait) or
// not: thread wake-ups, which are dear on the development VM (BENCHMARKS.md,
// session 5). Threads that have ended no longer count.
func contextSwitches(pid int, encoderThreads string) int64 {
	var total int64
	for _, t := range threads(pid) {
		if t.name == encoderThreads {
			continue
		}
		b, err := os.ReadFile(filepath.Join(t.dir, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			key, value, _ := strings.Cut(line, ":")
			if key == "voluntary_ctxt_switches" || key == "nonvoluntary_ctxt_switches" {
				n, _ := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
				total += n
			}
		}
	}
	return total
}

// threadTicks is the CPU, in clock ticks, of pid's threads named name (a
// thread that has ended no longer counts).
func threadTicks(pid int, name string) int64 {
	var total int64
	for _, t := range threads(pid) {
		if name == "" || t.name != name {
			continue
		}
		user, sys := cpuTicks(filepath.Join(t.dir, "stat"))
		total += user + sys
	}
	return total
}

func rssBytes(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// gapPct is the p-th quantile of a histogram of frame gaps in ms.
func gapPct(h [1001]int, p float64) int {
	total := 0
	for _, k := range h {
		total += k
	}
	if total == 0 {
		return 0
	}
	want := int(p * float64(total))
	seen := 0
	for ms, k := range h {
		seen += k
		if seen > want || (p == 1 && seen == total) {
			return ms
		}
	}
	return len(h) - 1
}
