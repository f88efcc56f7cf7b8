package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// usage is a process's CPU time (user + system) and resident set size at
// one moment.
type usage struct {
	cpu time.Duration
	rss uint64
}

// clockTicks is Linux's USER_HZ, 100 on every architecture we run on.
const clockTicks = 100

// sample reads /proc/<pid>/stat and /proc/<pid>/statm; pid 0 is this
// process.
func sample(pid int) (usage, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return usage{}, err
	}
	// The command name may contain spaces: count fields after it.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return usage{}, fmt.Errorf("%s/stat: no command name", dir)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return usage{}, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return usage{}, fmt.Errorf("%s/stat: utime %q stime %q", dir, f[11], f[12])
	}
	statm, err := os.ReadFile(dir + "/statm")
	if err != nil {
		return usage{}, err
	}
	m := strings.Fields(string(statm))
	if len(m) < 2 {
		return usage{}, fmt.Errorf("%s/statm: %q", dir, statm)
	}
	pages, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return usage{}, fmt.Errorf("%s/statm: %w", dir, err)
	}
	return usage{
		cpu: time.Duration(utime+stime) * time.Second / clockTicks,
		rss: pages * uint64(os.Getpagesize()),
	}, nil
}

// mustSample is sample for a process that must exist (this one, or the
// broker this program started); a failure reads as zero and is reported.
func mustSample(pid int) usage {
	u, err := sample(pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim: reading /proc:", err)
	}
	return u
}

// heapInUse is the Go heap in use now, after a collection, so that deltas
// between two moments are the memory still held.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
