// Package device provides the box's capture sources: cameras, microphones and
// the built-in test sources used when no hardware is configured or found.
package device

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// VideoSource delivers raw pictures. ReadVideo blocks until the next picture
// or until ctx ends. The returned frame's Data stays valid until the next call
// to ReadVideo; a consumer that keeps it copies it.
type VideoSource interface {
	ReadVideo(ctx context.Context) (media.VideoFrame, error)
	Close() error
}

// AudioSource delivers raw PCM. ReadAudio blocks until the next buffer or
// until ctx ends; the Samples slice stays valid until the next call.
type AudioSource interface {
	ReadAudio(ctx context.Context) (media.AudioFrame, error)
	Close() error
}

// Clock is the pipeline's capture clock: a monotonic time line that starts
// when the clock is made. Audio and video share one Clock so their
// timestamps line up; the wall clock never enters it.
type Clock struct {
	start time.Time
	// startKernel is CLOCK_MONOTONIC at start, for converting timestamps that
	// drivers stamp on buffers (V4L2, ALSA) onto this time line.
	startKernel time.Duration
}

// NewClock starts a capture clock now.
func NewClock() *Clock {
	return &Clock{start: time.Now(), startKernel: kernelMonotonic()}
}

// Now is the time since the clock started, from the monotonic clock.
func (c *Clock) Now() time.Duration { return time.Since(c.start) }

// FromKernel converts a CLOCK_MONOTONIC timestamp (as V4L2 and ALSA stamp
// their buffers) to the clock's time line.
func (c *Clock) FromKernel(ts time.Duration) time.Duration { return ts - c.startKernel }

func kernelMonotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
