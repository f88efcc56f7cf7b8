// Command commentload opens N event sockets to an onaird as viewer pages do,
// has some of them comment at a fixed total rate, and reports how long each
// comment took to reach every socket (p50/p99 over all deliveries), how many
// arrived, and the daemon's CPU and memory read from /proc.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/api/live/ws", "event socket")
	n := flag.Int("n", 500, "sockets")
	rate := flag.Float64("rate", 20, "comments per second, all senders together")
	interval := flag.Duration("interval", 2*time.Second, "the daemon's audience.comment_interval: each sender waits this long")
	duration := flag.Duration("duration", 20*time.Second, "how long to comment")
	pid := flag.Int("pid", 0, "onaird's pid, for CPU and RSS")
	flag.Parse()
	if err := run(*url, *n, *rate, *interval, *duration, *pid); err != nil {
		slog.Error("commentload", "err", err)
		os.Exit(1)
	}
}

type stamp struct {
	Sent int64 `json:"sent"`
}

func run(url string, n int, rate float64, interval, duration time.Duration, pid int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*websocket.Conn, n)
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	for i := range conns {
		c, _, err := dialer.DialContext(ctx, url, nil)
		if err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
		defer c.Close()
		conns[i] = c
		hello := map[string]string{"type": "hello", "name": fmt.Sprintf("load %d", i), "viewer": fmt.Sprintf("load-%d", i)}
		if err := c.WriteJSON(hello); err != nil {
			return fmt.Errorf("hello %d: %w", i, err)
		}
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var refused atomic.Int64
	var refusedMu sync.Mutex
	refusedBy := map[string]int{}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := c.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				var e struct {
					Type string `json:"type"`
					Text string `json:"text"`
					Code string `json:"code"`
				}
				if json.Unmarshal(data, &e) != nil {
					continue
				}
				switch e.Type {
				case "error":
					refused.Add(1)
					refusedMu.Lock()
					refusedBy[e.Code]++
					refusedMu.Unlock()
				case "comment":
					ts, ok := strings.CutPrefix(e.Text, "load ")
					if !ok {
						continue
					}
					ns, err := strconv.ParseInt(ts, 10, 64)
					if err != nil {
						continue
					}
					mu.Lock()
					latencies = append(latencies, now.Sub(time.Unix(0, ns)))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(time.Second) // history and snapshots are out of the way

	// Enough senders that none exceeds its own limit at the total rate.
	// With a margin: the ticker's jitter must not bring one sender's two
	// comments closer than the interval.
	senders := min(n, int(rate*interval.Seconds()*1.25)+1)
	cpu0, _ := cpuTicks(pid)
	start := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	sent := 0
	for time.Since(start) < duration {
		<-tick.C
		c := conns[sent%senders]
		msg := map[string]string{"type": "comment", "text": fmt.Sprintf("load %d", time.Now().UnixNano())}
		if err := c.WriteJSON(msg); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent++
	}
	tick.Stop()
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // stragglers
	cpu1, _ := cpuTicks(pid)
	rss, _ := rssMB(pid)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()

	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	expected := sent * n
	fmt.Printf("sockets=%d comments=%d rate=%.1f/s senders=%d deliveries=%d/%d refused=%d latency_p50_ms=%.1f latency_p99_ms=%.1f latency_max_ms=%.1f",
		n, sent, float64(sent)/elapsed.Seconds(), senders, len(latencies), expected, refused.Load(),
		ms(pct(0.50)), ms(pct(0.99)), ms(pct(1)))
	if pid != 0 {
		// USER_HZ is 100 on Linux.
		fmt.Printf(" daemon_cpu_pct=%.1f daemon_rss_mb=%.1f", float64(cpu1-cpu0)/(elapsed+2*time.Second).Seconds(), rss)
	}
	fmt.Println()
	if len(refusedBy) > 0 {
		fmt.Printf("refused by code: %v\n", refusedBy)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func cpuTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}
