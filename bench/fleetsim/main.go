// Command fleetsim simulates a fleet of OnAir boxes against one MQTT broker
// and measures what an operator of a big fleet depends on: how long a
// connect storm takes (every box coming online at once, as after a broker
// restart or a power cut at a venue), how fast a command is answered, for
// one box and for the whole fleet at once, and what each box's client costs
// in CPU and memory.
//
// Every simulated box is the real fleet.Client of the daemon (paho, the
// Last Will, the retained status, the ordered outbox on disk, the command
// decoder and its reply memory) over a stub box without media. An observer
// (its own paho client) plays the operator: it watches availability and
// replies and sends the commands.
//
//	go run ./bench/fleetsim -n 100,1000                      # mochi-mqtt in this process
//	go run ./bench/fleetsim -n 100,1000 -broker mosquitto    # Debian's mosquitto, started here
//	go run ./bench/fleetsim -n 100 -broker tcp://10.0.0.5:1883
//
// See bench/README.md for what each figure means.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onair/onair/config"
	"github.com/onair/onair/fleet"
)

// settings are the command-line flags.
type settings struct {
	sizes       []int
	broker      string
	baseTopic   string
	boxCommands int
	fleetRounds int
	idle        time.Duration
	telemetry   time.Duration
	diskOutbox  bool
	noDelay     bool
	timeout     time.Duration
	log         *slog.Logger
}

func main() {
	sizes := flag.String("n", "100,1000", "fleet sizes, comma-separated; each runs against a fresh broker")
	brokerKind := flag.String("broker", "mochi", "mochi (mochi-mqtt in this process), mosquitto (Debian's, started on a free loopback port) or the URL of a running broker (tcp://host:1883)")
	baseTopic := flag.String("base-topic", "onair", "mqtt.base_topic of every box")
	boxCommands := flag.Int("cmds", 500, "commands to single boxes (set, round robin over the boxes), one at a time")
	fleetRounds := flag.Int("fleet-rounds", 4, "fleet-wide commands (live and stop in turn), each answered by every box")
	idle := flag.Duration("idle", 30*time.Second, "window with every box connected and nothing asked, for the idle CPU (30 s holds one keepalive ping per box)")
	telemetry := flag.Duration("telemetry", 10*time.Second, "mqtt.telemetry_interval of every box")
	outbox := flag.String("outbox", "disk", "disk: each box's outbox in its own directory, synced as on a box; memory: no files")
	timeout := flag.Duration("timeout", 3*time.Minute, "longest wait for one phase (the storm, one command, the stop)")
	noDelay := flag.Bool("mosquitto-nodelay", false, "with -broker mosquitto: set_tcp_nodelay true (Nagle off; mosquitto's default is on)")
	verbose := flag.Bool("v", false, "log the fleet clients (debug) to stderr")
	flag.Parse()

	s := settings{
		broker: *brokerKind, baseTopic: *baseTopic, boxCommands: *boxCommands, fleetRounds: *fleetRounds,
		idle: *idle, telemetry: *telemetry, diskOutbox: *outbox == "disk", noDelay: *noDelay, timeout: *timeout,
		log: slog.New(slog.DiscardHandler),
	}
	if *outbox != "disk" && *outbox != "memory" {
		fail(fmt.Errorf("-outbox %q: want disk or memory", *outbox))
	}
	if *verbose {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-n %q: want positive numbers separated by commas", *sizes))
		}
		s.sizes = append(s.sizes, n)
	}

	var results []result
	for _, n := range s.sizes {
		fmt.Fprintf(os.Stderr, "fleetsim: %d boxes against %s...\n", n, s.broker)
		r, err := run(s, n)
		if err != nil {
			fail(fmt.Errorf("%d boxes: %w", n, err))
		}
		results = append(results, r)
	}
	printTable(os.Stdout, s, results)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetsim:", err)
	os.Exit(1)
}

// result is what one run measured.
type result struct {
	n int

	storm            time.Duration // start of all clients -> every online seen
	onlineP50        time.Duration // per box: start -> its online seen
	onlineP99        time.Duration
	connects         uint64 // successful connections over the run (n when nobody reconnected)
	connectFailures  uint64
	stormCPU         time.Duration // this process, during the storm
	brokerStormCPU   time.Duration
	rssPerBox        float64 // bytes, this process, after the storm
	heapPerBox       float64 // bytes, Go heap in use
	goroutinesPerBox float64
	brokerRSS        uint64

	idleCPUPercent       float64 // this process, % of one core, whole fleet
	brokerIdleCPUPercent float64

	boxCmd   []time.Duration // one box: send -> its reply
	fleetCmd []time.Duration // fleet-wide: send -> each box's reply
	fleetAll []time.Duration // fleet-wide: send -> the last box's reply, per round
	// CPU of this process and of the broker over each command phase, and
	// how long the phase took (the idle fleet's share is taken out).
	boxCmdCPU, brokerBoxCmdCPU     time.Duration
	fleetCmdCPU, brokerFleetCmdCPU time.Duration
	boxCmdWall, fleetCmdWall       time.Duration
	failed                         int // replies with ok=false
	unmatched                      int // replies nobody waited for (duplicates)
	dropped                        uint64

	stop time.Duration // Close of every box -> every offline seen
}

func run(s settings, n int) (result, error) {
	r := result{n: n}
	dir, err := os.MkdirTemp("", "fleetsim-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	b, err := startBroker(s.broker, dir, s.noDelay)
	if err != nil {
		return r, err
	}
	defer func() {
		if err := b.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "fleetsim: stop broker:", err)
		}
	}()
	obs, err := newObserver(b.url, s.baseTopic)
	if err != nil {
		return r, err
	}
	defer obs.close()

	// Memory is counted from before the clients exist.
	goroutines0, heap0, rss0 := runtime.NumGoroutine(), heapInUse(), mustSample(0).rss
	boxes := make([]*simBox, n)
	clients := make([]*fleet.Client, n)
	for i := range boxes {
		box := newSimBox(fmt.Sprintf("sim-%05d", i))
		opt := fleet.Options{
			Config: config.MQTT{
				Broker: b.url, BaseTopic: s.baseTopic, Groups: []string{fmt.Sprintf("venue-%d", i%10)},
				TelemetryInterval: config.Duration(s.telemetry),
			},
			DeviceID: box.id, Status: box.status, Changes: box.changes, Telemetry: box.telemetry,
			Commands: box, Logger: s.log.With("box", box.id),
		}
		if s.diskOutbox {
			opt.OutboxDir = filepath.Join(dir, box.id, "mqtt-outbox")
		}
		c, err := fleet.New(opt)
		if err != nil {
			return r, err
		}
		box.client, boxes[i], clients[i] = c, box, c
	}

	self0, broker0 := mustSample(0), brokerSample(b)

	// The storm: every box at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running sync.WaitGroup
	start := time.Now()
	for _, c := range clients {
		running.Add(1)
		go func() {
			defer running.Done()
			_ = c.Run(ctx) // nil after a clean stop
		}()
	}
	defer func() { cancel(); running.Wait() }()
	wctx, wcancel := context.WithTimeout(ctx, s.timeout)
	err = obs.waitOnline(wctx, n)
	wcancel()
	if err != nil {
		return r, fmt.Errorf("connect storm: %w", err)
	}
	r.storm = time.Since(start)
	self1, broker1 := mustSample(0), brokerSample(b)
	r.stormCPU, r.brokerStormCPU = self1.cpu-self0.cpu, broker1.cpu-broker0.cpu
	var online []time.Duration
	for _, t := range obs.onlineTimes() {
		online = append(online, t.Sub(start))
	}
	r.onlineP50, r.onlineP99 = percentile(online, 50), percentile(online, 99)

	// Memory once every box has published its first status (retained).
	if err := waitAll(ctx, s.timeout, clients, func(st fleet.Stats) bool { return st.StatusPublished > 0 }); err != nil {
		return r, fmt.Errorf("first status: %w", err)
	}
	r.goroutinesPerBox = float64(runtime.NumGoroutine()-goroutines0) / float64(n)
	r.heapPerBox = (float64(heapInUse()) - float64(heap0)) / float64(n)
	self2, broker2 := mustSample(0), brokerSample(b)
	r.rssPerBox = (float64(self2.rss) - float64(rss0)) / float64(n)
	r.brokerRSS = broker2.rss

	// Idle: connected, nothing asked; status checks, telemetry, pings.
	if s.idle > 0 {
		time.Sleep(s.idle)
		self3, broker3 := mustSample(0), brokerSample(b)
		r.idleCPUPercent = 100 * (self3.cpu - self2.cpu).Seconds() / s.idle.Seconds()
		r.brokerIdleCPUPercent = 100 * (broker3.cpu - broker2.cpu).Seconds() / s.idle.Seconds()
	}

	// Commands to one box at a time, then to the whole fleet.
	self4, broker4, at4 := mustSample(0), brokerSample(b), time.Now()
	for k := range s.boxCommands {
		box := boxes[k%n].id
		id := fmt.Sprintf("c-%d", k)
		payload, _ := json.Marshal(map[string]any{"id": id, "title": fmt.Sprintf("title %d", k)})
		got := obs.expect(box, id)
		sent, err := obs.send(ctx, s.baseTopic+"/"+box+"/cmd/set", payload)
		if err != nil {
			return r, fmt.Errorf("send %s to %s: %w", id, box, err)
		}
		select {
		case at := <-got:
			r.boxCmd = append(r.boxCmd, at.Sub(sent))
		case <-time.After(s.timeout):
			return r, fmt.Errorf("no reply to %s from %s within %v", id, box, s.timeout)
		}
	}
	self5, broker5, at5 := mustSample(0), brokerSample(b), time.Now()
	r.boxCmdCPU, r.brokerBoxCmdCPU, r.boxCmdWall = self5.cpu-self4.cpu, broker5.cpu-broker4.cpu, at5.Sub(at4)
	for round := range s.fleetRounds {
		name, payload := "live", fmt.Sprintf(`{"id":"f-%d","title":"round %d"}`, round, round)
		if round%2 == 1 {
			name, payload = "stop", fmt.Sprintf(`{"id":"f-%d"}`, round)
		}
		id := fmt.Sprintf("f-%d", round)
		waits := make([]<-chan time.Time, n)
		for i, box := range boxes {
			waits[i] = obs.expect(box.id, id)
		}
		sent, err := obs.send(ctx, s.baseTopic+"/fleet/cmd/"+name, []byte(payload))
		if err != nil {
			return r, fmt.Errorf("send fleet %s: %w", name, err)
		}
		deadline := time.After(s.timeout)
		var last time.Duration
		for i, got := range waits {
			select {
			case at := <-got:
				d := at.Sub(sent)
				r.fleetCmd = append(r.fleetCmd, d)
				last = max(last, d)
			case <-deadline:
				return r, fmt.Errorf("fleet %s %s: %s did not answer within %v", name, id, boxes[i].id, s.timeout)
			}
		}
		r.fleetAll = append(r.fleetAll, last)
	}
	self6, broker6 := mustSample(0), brokerSample(b)
	r.fleetCmdCPU, r.brokerFleetCmdCPU, r.fleetCmdWall = self6.cpu-self5.cpu, broker6.cpu-broker5.cpu, time.Since(at5)
	r.failed, r.unmatched = obs.replyCounts()

	// A clean stop: every box says offline itself.
	for _, c := range clients {
		st := c.Stats()
		r.connects += st.Connects
		r.connectFailures += st.ConnectFailures
		r.dropped += st.OutboxDropped
	}
	stopped := time.Now()
	var closing sync.WaitGroup
	for _, c := range clients {
		closing.Add(1)
		go func() {
			defer closing.Done()
			_ = c.Close()
		}()
	}
	closing.Wait()
	wctx, wcancel = context.WithTimeout(context.Background(), s.timeout)
	err = obs.waitOnline(wctx, 0)
	wcancel()
	if err != nil {
		return r, fmt.Errorf("clean stop: %w", err)
	}
	r.stop = time.Since(stopped)
	return r, nil
}

// brokerSample measures the broker's own process, when it has one.
func brokerSample(b *broker) usage {
	if b.pid == 0 {
		return usage{}
	}
	return mustSample(b.pid)
}

// waitAll polls the clients' counters until ok holds for every one.
func waitAll(ctx context.Context, timeout time.Duration, clients []*fleet.Client, ok func(fleet.Stats) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, c := range clients {
			if !ok(c.Stats()) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d boxes still waiting after %v", missing, len(clients), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// percentile is the nearest-rank percentile p (0-100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}

// printTable prints one column per fleet size, as a Markdown table.
func printTable(w io.Writer, s settings, rs []result) {
	outbox := "memory"
	if s.diskOutbox {
		outbox = "disk (synced)"
	}
	brokerName := s.broker
	if s.broker == "mosquitto" && s.noDelay {
		brokerName += " (set_tcp_nodelay true)"
	}
	fmt.Fprintf(w, "\nbroker: %s · outbox: %s · %d single-box commands, %d fleet-wide rounds · idle window %v · GOMAXPROCS %d\n\n",
		brokerName, outbox, s.boxCommands, s.fleetRounds, s.idle, runtime.GOMAXPROCS(0))
	row := func(name string, cell func(r result) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, r := range rs {
			fmt.Fprintf(w, " %s |", cell(r))
		}
		fmt.Fprintln(w)
	}
	row("boxes", func(r result) string { return strconv.Itoa(r.n) })
	fmt.Fprint(w, "|---|")
	for range rs {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	pct := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		return fmt.Sprintf("%s / %s / %s", ms(percentile(ds, 50)), ms(percentile(ds, 95)), ms(percentile(ds, 99)))
	}
	// CPU is read in 10 ms ticks: a phase's total, less what the idle
	// fleet burns in as long a time, over its replies.
	perReply := func(cpu, wall time.Duration, idlePercent float64, replies int) string {
		if replies == 0 {
			return "-"
		}
		above := cpu.Seconds() - idlePercent/100*wall.Seconds()
		return strconv.FormatFloat(above*1000/float64(replies), 'f', 2, 64) + " ms"
	}
	kib := func(b float64) string { return strconv.FormatFloat(b/1024, 'f', 1, 64) + " KiB" }
	brokerOwn := s.broker != "mochi" && !strings.Contains(s.broker, "://")
	row("connect storm: all online", func(r result) string { return ms(r.storm) })
	row("online per box p50 / p99", func(r result) string { return ms(r.onlineP50) + " / " + ms(r.onlineP99) })
	row("connections / failed attempts", func(r result) string { return fmt.Sprintf("%d / %d", r.connects, r.connectFailures) })
	row("one box: set -> reply p50 / p95 / p99", func(r result) string { return pct(r.boxCmd) })
	row("fleet-wide: -> each reply p50 / p95 / p99", func(r result) string { return pct(r.fleetCmd) })
	row("fleet-wide: -> last reply (median of rounds)", func(r result) string {
		if len(r.fleetAll) == 0 {
			return "-"
		}
		return ms(percentile(r.fleetAll, 50))
	})
	row("replies ok=false / unmatched / outbox dropped", func(r result) string {
		return fmt.Sprintf("%d / %d / %d", r.failed, r.unmatched, r.dropped)
	})
	row("clean stop: all offline", func(r result) string { return ms(r.stop) })
	simulator := "simulator"
	if s.broker == "mochi" {
		simulator = "simulator incl. broker"
	}
	row(simulator+" CPU per box, storm", func(r result) string { return ms(r.stormCPU / time.Duration(r.n)) })
	idlePercent := func(p float64) string {
		if s.idle <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f %% of a core", p)
	}
	row(simulator+" CPU idle, whole fleet", func(r result) string { return idlePercent(r.idleCPUPercent) })
	row(simulator+" CPU per one-box command, above idle", func(r result) string {
		return perReply(r.boxCmdCPU, r.boxCmdWall, r.idleCPUPercent, len(r.boxCmd))
	})
	row(simulator+" CPU per fleet-wide reply, above idle", func(r result) string {
		return perReply(r.fleetCmdCPU, r.fleetCmdWall, r.idleCPUPercent, len(r.fleetCmd))
	})
	row(simulator+" RSS per box", func(r result) string { return kib(r.rssPerBox) })
	row(simulator+" Go heap per box", func(r result) string { return kib(r.heapPerBox) })
	row(simulator+" goroutines per box", func(r result) string { return fmt.Sprintf("%.1f", r.goroutinesPerBox) })
	if brokerOwn {
		row("broker CPU storm", func(r result) string { return ms(r.brokerStormCPU) })
		row("broker CPU idle", func(r result) string { return idlePercent(r.brokerIdleCPUPercent) })
		row("broker CPU per one-box command, above idle", func(r result) string {
			return perReply(r.brokerBoxCmdCPU, r.boxCmdWall, r.brokerIdleCPUPercent, len(r.boxCmd))
		})
		row("broker CPU per fleet-wide reply, above idle", func(r result) string {
			return perReply(r.brokerFleetCmdCPU, r.fleetCmdWall, r.brokerIdleCPUPercent, len(r.fleetCmd))
		})
		row("broker RSS", func(r result) string { return kib(float64(r.brokerRSS)) })
	}
}
