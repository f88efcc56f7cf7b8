package main

import "runtime/debug"

// gcPercent is the collector's target for onaird, used unless GOGC is set in
// its environment. A viewer's state lives as long as the viewer and the daemon
// allocates little while it streams (13.5 MB in 10 s with 50 viewers), so the
// collector rarely runs either way; Go's default headroom (100: the heap grows
// to twice what is live before a collection) then only costs memory. At 50
// the box used 2.5-6.8 MB less RSS with 50 viewers in five paired runs of
// bench/run.sh, with no CPU difference the runs could tell apart
// (BENCHMARKS.md, "Collector target 50").
const gcPercent = 50

// tuneGC sets gcPercent unless lookupEnv finds GOGC (then the runtime has
// read it, "off" included, and is left alone); it says whether it set it.
func tuneGC(lookupEnv func(string) (string, bool)) bool {
	if _, set := lookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(gcPercent)
	return true
}
