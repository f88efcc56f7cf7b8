package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// guestModules are the kernel modules the guest loads, with everything they
// depend on: the camera and the sound card.
var guestModules = []string{"vivid", "snd-aloop"}

// timing is how long each step of one architecture took.
type timing struct {
	arch                       string
	fetch, build, image, total time.Duration
	boot, modules, vm          time.Duration // boot: QEMU start to init; vm: QEMU start to exit
	verdict                    string
	tests                      string
}

func TestVM(t *testing.T) {
	if os.Getenv("ONAIR_VM") != "1" {
		t.Skip("boots qemu-system VMs: run test/vm/run.sh (or set ONAIR_VM=1)")
	}
	names := strings.Fields(strings.ReplaceAll(os.Getenv("ONAIR_VM_ARCHES"), ",", " "))
	if len(names) == 0 {
		for _, a := range arches {
			names = append(names, a.name)
		}
	}
	cache, err := cacheDir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	parallel := os.Getenv("ONAIR_VM_PARALLEL") == "1"
	packages := newResolver(cache)

	var mu sync.Mutex
	var timings []timing
	t.Cleanup(func() {
		var b strings.Builder
		fmt.Fprintf(&b, "VM summary (cache %s):\n", cache)
		fmt.Fprintf(&b, "  %-12s %7s %7s %7s %7s %8s %7s %8s  %s\n", "arch", "fetch", "build", "image", "boot", "modules", "vm", "total", "verdict")
		for _, tm := range timings {
			fmt.Fprintf(&b, "  %-12s %6.1fs %6.1fs %6.1fs %6.1fs %7.1fs %6.1fs %7.1fs  %s\n", tm.arch,
				tm.fetch.Seconds(), tm.build.Seconds(), tm.image.Seconds(), tm.boot.Seconds(), tm.modules.Seconds(),
				tm.vm.Seconds(), tm.total.Seconds(), tm.verdict)
		}
		for _, tm := range timings {
			fmt.Fprintf(&b, "  %s: %s\n", tm.arch, tm.tests)
		}
		t.Log(b.String())
		appendTimings(os.Getenv("TIMINGS"), timings)
	})
	for _, name := range names {
		a, ok := archByName(name)
		if !ok {
			t.Fatalf("unknown architecture %q (want amd64, arm64 or armv7)", name)
		}
		t.Run(a.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			tm := runArch(t, a, cache, root, packages)
			mu.Lock()
			timings = append(timings, tm)
			mu.Unlock()
		})
		if !a.daemon || !daemonWanted(os.Getenv("ONAIR_VM_RUN")) {
			continue
		}
		t.Run(a.name+"-daemon", func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			tm := runDaemon(t, a, cache, root, packages)
			mu.Lock()
			timings = append(timings, tm)
			mu.Unlock()
		})
	}
}

// daemonWanted says whether the daemon's VM runs: always, unless
// ONAIR_VM_RUN narrows the run to guest tests that do not match
// "TestDaemon".
func daemonWanted(run string) bool {
	if run == "" {
		return true
	}
	re, err := regexp.Compile(run)
	return err == nil && re.MatchString("TestDaemon")
}

// runArch fetches, builds, boots and judges one architecture.
func runArch(t *testing.T, a arch, cache, root string, packages *resolver) (tm timing) {
	tm.arch = a.name
	tm.verdict = "FAIL"
	start := time.Now()
	defer func() {
		tm.total = time.Since(start)
		if !t.Failed() {
			tm.verdict = "PASS"
		}
	}()
	out := t.Output()
	logf := func(format string, args ...any) { fmt.Fprintf(out, a.name+": "+format+"\n", args...) }

	// 1. Packages: fetched once into the cache, extracted once.
	f := &fetcher{dir: filepath.Join(cache, "debs"), resolver: packages, logf: logf}
	guest, err := fetchGuest(f, a, cache, map[string]string{"libatomic1": "libatomic1:" + a.deb}, guestModules)
	if err != nil {
		t.Fatal(err)
	}
	kernel, kernelDeb, dirs := guest.kernel, guest.kernelDeb, guest.dirs
	work := t.TempDir()
	tm.fetch = time.Since(start)
	logf("kernel %s (%s), %d modules for %s; packages ready in %v", kernel.release, filepath.Base(kernelDeb),
		kernel.modules, strings.Join(guestModules, ", "), tm.fetch.Round(100*time.Millisecond))

	// 2. The guest tests, static and with cgo.
	step := time.Now()
	buildDir := filepath.Join(cache, "build", a.name)
	staticTest := filepath.Join(buildDir, "onair-vmtest")
	cgoTest := filepath.Join(buildDir, "onair-vmtest-cgo")
	if err := buildGuest(root, a, staticTest, false); err != nil {
		t.Fatal(err)
	}
	if err := buildGuest(root, a, cgoTest, true); err != nil {
		t.Fatal(err)
	}
	libDirs := guest.libDirs(a.triplet, "libc6", "libasound2", "libatomic1")
	// miniaudio dlopens libasound at run time: no DT_NEEDED names it.
	libs, err := sharedLibs(cgoTest, a.triplet, libDirs, "libasound.so.2")
	if err != nil {
		t.Fatalf("libraries of the cgo test binary: %v", err)
	}
	tm.build = time.Since(step)
	logf("guest tests built in %v; the cgo build takes %d shared libraries along", tm.build.Round(100*time.Millisecond), len(libs))

	// 3. The initramfs.
	step = time.Now()
	initrd := filepath.Join(work, "initramfs.cpio")
	img := guestImage{
		arch:        a,
		busybox:     filepath.Join(dirs["busybox-static"], "bin", "busybox"),
		modulesRoot: kernel.modulesRoot,
		staticTest:  staticTest,
		cgoTest:     cgoTest,
		libs:        libs,
		alsaShare:   filepath.Join(dirs["libasound2-data"], "usr", "share", "alsa"),
		run:         os.Getenv("ONAIR_VM_RUN"),
	}
	if err := writeImage(initrd, img); err != nil {
		t.Fatalf("write initramfs: %v", err)
	}
	tm.image = time.Since(step)
	if info, err := os.Stat(initrd); err == nil {
		logf("initramfs %.1f MB written in %v", float64(info.Size())/(1<<20), tm.image.Round(10*time.Millisecond))
	}

	// 4. Boot, test, judge.
	step = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	boot := vmBoot{
		arch: a, kernel: kernel.image, initrd: initrd, dir: work, logf: logf,
		console: func(line string) { fmt.Fprintf(out, "%s| %s\n", a.name, line) },
	}
	result, runErr := boot.run(ctx)
	tm.vm = time.Since(step)
	if result != nil {
		tm.boot, tm.modules = result.bootedAt, result.modules
		tm.tests = result.summary()
	}
	if runErr != nil {
		t.Errorf("VM: %v", runErr)
	}
	if result == nil {
		return tm
	}
	if err := result.err(); err != nil {
		t.Errorf("guest: %v", err)
	}
	for _, check := range result.leds {
		changes, last := lineChanges(boot.readTrace(), check.line)
		logf("QEMU saw PL061 line %d change %d times, last level %d", check.line, changes, last)
		if changes < check.minChanges || last != 0 {
			t.Errorf("LED line %d: QEMU's trace shows %d changes ending at level %d; the guest's blink and off want at least %d ending at 0",
				check.line, changes, last, check.minChanges)
		}
	}
	if a.gpio && len(result.leds) == 0 && result.done && img.run == "" {
		t.Errorf("the guest's LED test did not run (no led-blinked request)")
	}
	logf("VM ran %v (boot to init %v, modules loaded at %v): %s", tm.vm.Round(100*time.Millisecond),
		tm.boot.Round(100*time.Millisecond), tm.modules.Round(100*time.Millisecond), result.summary())
	return tm
}

// appendTimings adds one line per architecture to the Makefile's timings
// file, in scripts/timed.sh's format.
func appendTimings(path string, timings []timing) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	for _, tm := range timings {
		status := "ok"
		if tm.verdict != "PASS" {
			status = "FAILED"
		}
		fmt.Fprintf(f, "%-22s %8.1fs  %s (VM %.1fs)\n", "  vm "+tm.arch, tm.total.Seconds(), status, tm.vm.Seconds())
	}
}

// buildGuest compiles the guest tests for a, statically or with cgo.
func buildGuest(root string, a arch, out string, cgo bool) error {
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.Command(goTool, "test", "-c", "-trimpath", "-ldflags=-s -w", "-o", out, "./test/vm/guest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm, "GOFLAGS=")
	if cgo {
		if _, err := exec.LookPath(a.cc); err != nil {
			return fmt.Errorf("the cgo build for %s needs %s (test/vm/run.sh installs it): %w", a.name, a.cc, err)
		}
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1", "CC="+a.cc)
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if output, err := cmd.CombinedOutput(); err != nil {
		kind := "static"
		if cgo {
			kind = "cgo"
		}
		return fmt.Errorf("build the %s guest tests for %s: %w\n%s", kind, a.name, err, output)
	}
	return nil
}

func writeImage(path string, img guestImage) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := img.write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
