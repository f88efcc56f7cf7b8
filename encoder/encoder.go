// Package encoder turns raw pictures into H.264 and raw PCM into Opus. The
// encoders themselves live in sub-packages (x264 in software, v4l2m2m in
// hardware, opus); this package holds the interfaces they share, the choice
// between them by capability, and pixel-format helpers.
package encoder

import (
	"fmt"
	"time"

	"github.com/onair/onair/media"
)

// VideoEncoder encodes raw pictures into H.264 access units (Annex-B, SPS
// and PPS in front of every keyframe). It is used by one goroutine.
type VideoEncoder interface {
	// Encode encodes one picture. forceKeyframe makes it an IDR picture.
	// ok is false when the encoder produced nothing for this picture.
	Encode(frame media.VideoFrame, forceKeyframe bool) (sample media.Sample, ok bool, err error)
	// SetBitrate changes the target bitrate while running.
	SetBitrate(kbps int) error
	// Close frees the encoder.
	Close() error
}

// AudioEncoder encodes PCM into Opus packets. It is used by one goroutine.
type AudioEncoder interface {
	// Encode takes PCM of any length and returns the packets it completed
	// (20 ms each), appended to dst.
	Encode(dst []media.Sample, frame media.AudioFrame) ([]media.Sample, error)
	Close() error
}

// VideoParams are what every H.264 encoder is set up with.
type VideoParams struct {
	Width, Height int
	FPS           int
	BitrateKbps   int
	// KeyframeInterval is the time between regular keyframes.
	KeyframeInterval time.Duration
	// Profile is "constrained_baseline" (default, every WebRTC browser
	// decodes it), "main" or "high".
	Profile string
}

// Validate checks the parameters an encoder cannot work without.
func (p VideoParams) Validate() error {
	if p.Width <= 0 || p.Height <= 0 || p.Width%2 != 0 || p.Height%2 != 0 {
		return fmt.Errorf("video size %dx%d: want positive even numbers", p.Width, p.Height)
	}
	if p.FPS <= 0 {
		return fmt.Errorf("fps %d: want at least 1", p.FPS)
	}
	if p.BitrateKbps <= 0 {
		return fmt.Errorf("bitrate %d kbps: want at least 1", p.BitrateKbps)
	}
	switch p.Profile {
	case "", "constrained_baseline", "main", "high":
	default:
		return fmt.Errorf("profile %q: want constrained_baseline, main or high", p.Profile)
	}
	return nil
}

// KeyframeIntervalFrames is the keyframe interval in frames, at least 1.
func (p VideoParams) KeyframeIntervalFrames() int {
	n := int(p.KeyframeInterval * time.Duration(p.FPS) / time.Second)
	return max(n, 1)
}
