package mjpeg

import (
	"runtime/metrics"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the user and system CPU time the test process has used.
func cpuTime() time.Duration {
	var usage unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// gcCPUTime is the runtime's estimate of the CPU seconds the garbage
// collector has used so far.
func gcCPUTime() float64 {
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return sample[0].Value.Float64()
}
