package mjpeg

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Source reads a video source that delivers MJPEG and hands on its frames
// decoded to I420. Frames in other formats pass through untouched. It
// implements device.VideoSource; ReadVideo and Close may be called from
// different goroutines, as the wrapped source allows.
type Source struct {
	src     device.VideoSource
	log     *slog.Logger
	dec     Decoder
	dropped atomic.Uint64
}

var _ device.VideoSource = (*Source)(nil)

// NewSource wraps src; logger (nil: slog.Default()) hears of dropped frames.
func NewSource(src device.VideoSource, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.Default()
	}
	return &Source{src: src, log: logger}
}

// ReadVideo returns the next frame that decodes. A frame that does not
// (truncated, damaged) is counted and skipped; the next one comes a frame
// time later. The returned Data is valid until the next ReadVideo.
func (s *Source) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	for {
		frame, err := s.src.ReadVideo(ctx)
		if err != nil || frame.Format != media.MJPEG {
			return frame, err
		}
		data, err := s.dec.Decode(frame.Data, frame.Width, frame.Height)
		if err != nil {
			n := s.dropped.Add(1)
			// The first one is worth a look (a camera that sends only
			// broken frames shows nothing); after that, webcams drop
			// the odd frame as a matter of course.
			level := slog.LevelDebug
			if n == 1 {
				level = slog.LevelWarn
			}
			s.log.Log(ctx, level, "dropped an MJPEG frame that does not decode", "dropped", n, "bytes", len(frame.Data), "error", err)
			continue
		}
		return media.VideoFrame{
			Format:  media.I420,
			Width:   frame.Width,
			Height:  frame.Height,
			Data:    data,
			Capture: frame.Capture,
		}, nil
	}
}

// Dropped is how many frames did not decode so far.
func (s *Source) Dropped() uint64 { return s.dropped.Load() }

// Close closes the wrapped source.
func (s *Source) Close() error { return s.src.Close() }
