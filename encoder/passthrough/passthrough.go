// Package passthrough forwards H.264 that the camera encoded itself. It
// cannot force keyframes or change bitrate on a generic UVC camera, so auto
// never picks it; an operator who wants the camera's own encoding sets
// video.encoder: passthrough.
package passthrough

import (
	"errors"
	"fmt"
	"time"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// Encoder forwards Annex-B access units.
type Encoder struct {
	frameDuration time.Duration
}

// New makes a passthrough for a camera running at fps.
func New(fps int) *Encoder {
	return &Encoder{frameDuration: time.Second / time.Duration(max(fps, 1))}
}

// ErrNotSupported is returned for controls the camera's encoder lacks.
var ErrNotSupported = errors.New("passthrough: the camera's own encoder cannot be controlled")

// Encode copies the camera's access unit into a sample. A keyframe request
// cannot be honoured; the camera's next regular keyframe serves it.
func (e *Encoder) Encode(f media.VideoFrame, _ bool) (media.Sample, bool, error) {
	if f.Format != media.H264 {
		return media.Sample{}, false, fmt.Errorf("passthrough: camera delivers %s, not H264", f.Format)
	}
	info := h264.Inspect(f.Data)
	if info.Slices == 0 {
		return media.Sample{}, false, nil // parameter sets or SEI alone: nothing to show
	}
	return media.Sample{
		Kind: media.Video, Data: append([]byte(nil), f.Data...), Capture: f.Capture,
		Duration: e.frameDuration, Keyframe: info.IDR,
	}, true, nil
}

// SetBitrate is not possible on the camera's encoder.
func (e *Encoder) SetBitrate(int) error { return ErrNotSupported }

// Close does nothing.
func (e *Encoder) Close() error { return nil }

var _ encoder.VideoEncoder = (*Encoder)(nil)
