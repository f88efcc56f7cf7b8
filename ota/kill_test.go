package ota_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/internal/testexec"
	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/otatest"
	"github.com/onair/onair/ota/tryboot"
)

// The child process of TestKillInstall is this test binary started with
// these variables set; TestMain hands it to killChildMain.
const (
	childEnv     = "ONAIR_OTA_KILL_CHILD" // the box directory
	childKindEnv = "ONAIR_OTA_KILL_KIND"
	childSrcEnv  = "ONAIR_OTA_KILL_SOURCE"
)

// killChildMain installs the bundle streamed through a FIFO into the box
// the parent made, printing progress, until the parent kills it.
func killChildMain() int {
	dir, kind, src := os.Getenv(childEnv), os.Getenv(childKindEnv), os.Getenv(childSrcEnv)
	a, err := childAgent(dir, kind)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	_, err = a.Install(context.Background(), ota.Request{Source: src, Progress: func(p ota.Progress) {
		fmt.Fprintln(out, p.Stage, p.Percent)
		out.Flush()
	}})
	fmt.Fprintln(out, "done", err)
	out.Flush()
	return 0
}

// childAgent builds the agent as onaird would, from what is on disk.
func childAgent(dir, kind string) (*ota.Agent, error) {
	slots := [2]ota.FileSlot{
		{SlotName: "A", BootPath: filepath.Join(dir, "bootA"), RootfsPath: filepath.Join(dir, "rootfsA")},
		{SlotName: "B", BootPath: filepath.Join(dir, "bootB"), RootfsPath: filepath.Join(dir, "rootfsB")},
	}
	var bl ota.Bootloader
	var roots map[string]string
	boardName := "pi4"
	switch kind {
	case "pi":
		pi, err := otatest.NewPi(dir, tryboot.FATPartition{Device: filepath.Join(dir, "bootsel.img")})
		if err != nil {
			return nil, err
		}
		bl, roots = pi.Bootloader(), piRoots
	default:
		u, err := otatest.NewUBoot(dir, "A")
		if err != nil {
			return nil, err
		}
		bl, boardName = u.Bootloader(), "zero2w"
	}
	info, err := bl.Booted(context.Background())
	if err != nil {
		return nil, err
	}
	s := slots[0]
	if info.Slot == "B" {
		s = slots[1]
	}
	rootfs, err := os.ReadFile(s.RootfsPath)
	if err != nil {
		return nil, err
	}
	version, keys, err := parseRunning(rootfs)
	if err != nil {
		return nil, err
	}
	return ota.New(ota.Config{
		DataDir: filepath.Join(dir, "data"), Board: boardName, Version: version, Keys: keys,
		Slots: [2]ota.Slot{slots[0], slots[1]}, CmdlineRoots: roots, Bootloader: bl, Clock: otatest.NewClock(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// TestKillInstall kills the installing process with SIGKILL at random
// points: part-way through the bundle stream (a byte offset) or during the
// read-back and arming after it. Every time the box must then boot a good
// slot, settle and report; an install that finished must come up.
func TestKillInstall(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("ONAIR_OTA_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set ONAIR_OTA_KILL_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const runs = 20
	for _, kind := range boards {
		t.Run(kind, func(t *testing.T) {
			outcomes := map[string]int{}
			for run := range runs {
				outcomes[killOnce(t, kind, rng, run)]++
			}
			t.Logf("%d runs: %v", runs, outcomes)
		})
	}
}

func killOnce(t *testing.T, kind string, rng *rand.Rand, run int) string {
	b := newBox(t, kind, v1)
	path := b.makeBundle(v2, b.boardName(), keyOld)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(b.dir, "bundle.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR opens a FIFO without waiting for the reader, so a child that
	// fails early cannot hang the parent in open.
	pipe, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	cmd := testexec.Self("-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+b.dir, childKindEnv+"="+kind, childSrcEnv+"="+fifo)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Half the runs cut the stream at a byte offset, half let it through and
	// kill during the read-back and arming.
	point := rng.IntN(len(data))
	if run%2 == 1 {
		point = len(data) + rng.IntN(150) // above 100: after the child is done
	}
	finished := false
	if point < len(data) {
		if _, err := pipe.Write(data[:point]); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := pipe.Write(data); err != nil {
			t.Fatal(err)
		}
		pipe.Close()
		// Kill when the read-back reaches a random percentage, or after
		// the child is done.
		want := point - len(data)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if f[0] == "done" {
				finished = strings.Join(f[1:], " ") == "<nil>"
				if !finished {
					t.Fatalf("child install failed: %s", lines.Text())
				}
				break
			}
			if p, _ := strconv.Atoi(f[len(f)-1]); f[0] == "verify" && p >= want {
				break
			}
		}
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	cmd.Wait()

	b.attach() // a new "boot": the old process's memory is gone
	b.board.PowerCut()
	b.powerOn()
	rep := b.settle(healthy)
	if rep.Phase != ota.PhaseIdle || rep.Version != b.runningVersion() {
		t.Fatalf("run %d, killed at %d/%d: report %+v", run, point, len(data), rep)
	}
	if finished && rep.Version != "1.1.0" {
		t.Fatalf("run %d: finished install did not come up: %+v", run, rep)
	}
	outcome := "still " + rep.Version
	if rep.Outcome != nil {
		outcome = string(rep.Outcome.Result) + " " + rep.Outcome.Version
	}
	return outcome
}
