package vm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// guestTest is one test the guest reported with `go test -v`.
type guestTest struct {
	name    string // TestCameraCapture/YUYV_1280x720
	status  string // PASS, FAIL, SKIP
	seconds float64
	binary  string // static or cgo: which test binary ran it
}

// ledCheck is what the guest's LED test asks the host to verify in QEMU's
// trace of the PL061: the line changed at least minChanges times.
type ledCheck struct {
	line, minChanges int
}

// consoleResult judges a VM run from its console. A run passes when the
// init script reached "VMTEST DONE", every test binary exited 0 ("VMTEST
// EXIT <binary> 0"), no test failed ("--- FAIL"), nothing panicked and the
// init script reported no failure of its own ("VMTEST FAIL").
type consoleResult struct {
	booted   bool
	bootedAt time.Duration // since QEMU started, on the host's clock
	modules  time.Duration // when the modules were loaded
	done     bool
	exits    map[string]int
	failures []string
	tests    []guestTest
	leds     []ledCheck
	// binary is the test binary whose output is being read.
	binary string
	// binaries must each report their exit status ("VMTEST EXIT <binary>
	// ..."); nil means the guest tests' two, static and cgo.
	binaries []string
}

var (
	testLine = regexp.MustCompile(`^(\s*)--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)`)
	exitLine = regexp.MustCompile(`^VMTEST EXIT (\S+) (-?\d+)`)
	ledLine  = regexp.MustCompile(`VMTEST-HOST led-blinked line=(\d+) min-changes=(\d+)`)
)

// line takes one line of the console; at is when it arrived.
func (r *consoleResult) line(text string, at time.Duration) {
	if r.exits == nil {
		r.exits = map[string]int{}
		r.binary = "static"
	}
	text = strings.TrimRight(text, "\r")
	trimmed := strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(text, "VMTEST BOOTED"):
		r.booted, r.bootedAt = true, at
	case strings.HasPrefix(text, "VMTEST MODULES"):
		r.modules = at
	case strings.HasPrefix(text, "VMTEST DONE"):
		r.done = true
	case strings.HasPrefix(text, "VMTEST FAIL"):
		r.failures = append(r.failures, text)
	case exitLine.MatchString(text):
		m := exitLine.FindStringSubmatch(text)
		code, _ := strconv.Atoi(m[2])
		r.exits[m[1]] = code
		if code != 0 {
			r.failures = append(r.failures, fmt.Sprintf("test binary %s exited with status %d", m[1], code))
		}
		r.binary = "cgo" // the next binary the init script runs
	case ledLine.MatchString(text):
		m := ledLine.FindStringSubmatch(text)
		line, _ := strconv.Atoi(m[1])
		changes, _ := strconv.Atoi(m[2])
		r.leds = append(r.leds, ledCheck{line: line, minChanges: changes})
	case testLine.MatchString(text):
		m := testLine.FindStringSubmatch(text)
		secs, _ := strconv.ParseFloat(m[4], 64)
		r.tests = append(r.tests, guestTest{name: m[3], status: m[2], seconds: secs, binary: r.binary})
		if m[2] == "FAIL" {
			r.failures = append(r.failures, trimmed)
		}
	case strings.HasPrefix(trimmed, "panic: "), strings.Contains(text, "Kernel panic"):
		r.failures = append(r.failures, trimmed)
	}
}

// err says why the run failed, or nil.
func (r *consoleResult) err() error {
	var problems []string
	switch {
	case !r.booted:
		problems = append(problems, "the guest's init never started")
	case !r.done:
		problems = append(problems, "the guest's init did not finish (no VMTEST DONE)")
	}
	problems = append(problems, r.failures...)
	binaries := r.binaries
	if binaries == nil {
		binaries = []string{"static", "cgo"}
	}
	for _, binary := range binaries {
		if _, ok := r.exits[binary]; !ok && r.booted {
			problems = append(problems, fmt.Sprintf("test binary %s did not report its exit status", binary))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(problems, "; "))
}

// summary lists the top-level guest tests with their outcome.
func (r *consoleResult) summary() string {
	var parts []string
	for _, t := range r.tests {
		if strings.Contains(t.name, "/") {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s (%.1fs)", t.name, t.status, t.seconds))
	}
	return strings.Join(parts, ", ")
}

// traceLine is QEMU's pl061_set_output trace event (hw/gpio/trace-events),
// with or without the log backend's pid@time prefix.
var traceLine = regexp.MustCompile(`pl061_set_output .*setting output (\d+) to (-?\d+)`)

// lineChanges counts the level changes QEMU's PL061 made on one output line
// and returns the last level it drove (-1 when the line never changed).
func lineChanges(trace string, line int) (changes, last int) {
	last = -1
	for _, l := range strings.Split(trace, "\n") {
		m := traceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != line {
			continue
		}
		level, _ := strconv.Atoi(m[2])
		if level != last {
			changes++
		}
		last = level
	}
	return changes, last
}
