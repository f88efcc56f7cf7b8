// Command encodecpu measures the CPU time the box's software encoder spends
// on raw 720p video. It can also write the raw frames it encodes (the test
// pattern), so bench/encoder.sh can hand ffmpeg -c:v libx264 the very same
// input and compare the two side by side.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/encoder/x264"
	"github.com/onair/onair/media"
)

// config is what the flags ask for.
type config struct {
	width, height, fps, kbps, frames int
	writeRaw, readRaw, out           string
	noise, encode                    bool
}

func main() {
	var c config
	flag.IntVar(&c.width, "width", 1280, "picture width")
	flag.IntVar(&c.height, "height", 720, "picture height")
	flag.IntVar(&c.fps, "fps", 30, "frame rate the encoder is set up for")
	flag.IntVar(&c.kbps, "kbps", 2500, "bitrate")
	flag.IntVar(&c.frames, "frames", 300, "frames to encode")
	flag.StringVar(&c.writeRaw, "write-raw", "", "write the raw I420 frames to this file and exit")
	flag.StringVar(&c.readRaw, "raw", "", "encode raw I420 frames read one by one from this file (as ffmpeg reads it) instead of the pattern")
	flag.BoolVar(&c.noise, "noise", true, "noise in the lower third, so the encoder works at its full bitrate")
	flag.StringVar(&c.out, "out", "", "write the encoded Annex-B stream to this file (after the measurement)")
	flag.BoolVar(&c.encode, "encode", true, "encode; false only reads the frames, to measure what reading costs")
	flag.Parse()
	if err := run(c); err != nil {
		slog.Error("encodecpu", "err", err)
		os.Exit(1)
	}
}

func run(c config) error {
	w, h, n := c.width, c.height, c.frames
	if c.writeRaw != "" {
		pattern, err := newPattern(c)
		if err != nil {
			return err
		}
		return writeFrames(c.writeRaw, pattern, n)
	}
	var next func() ([]byte, error)
	if c.readRaw != "" {
		// One buffer, refilled for every frame: what a capture device hands
		// the encoder, and what ffmpeg's raw video demuxer does.
		f, err := os.Open(c.readRaw)
		if err != nil {
			return err
		}
		defer f.Close()
		frame := make([]byte, w*h*3/2)
		next = func() ([]byte, error) {
			if _, err := io.ReadFull(f, frame); err != nil {
				return nil, fmt.Errorf("raw file holds fewer than %d frames: %w", n, err)
			}
			return frame, nil
		}
	} else {
		pattern, err := newPattern(c)
		if err != nil {
			return err
		}
		// Render every frame first so that the pattern is not measured.
		raw := make([][]byte, n)
		for i := range raw {
			fr, _ := pattern.ReadVideo(context.Background())
			raw[i] = append([]byte(nil), fr.Data...)
		}
		next = func() ([]byte, error) {
			data := raw[0]
			raw = raw[1:]
			return data, nil
		}
	}
	enc, err := x264.New(encoder.VideoParams{Width: w, Height: h, FPS: c.fps, BitrateKbps: c.kbps, KeyframeInterval: 2 * time.Second}, x264.Options{})
	if err != nil {
		return err
	}
	defer enc.Close()
	before := cpu()
	start := time.Now()
	var bytes int
	var samples [][]byte // kept, not written, so that writing is not measured
	for i := 0; i < n; i++ {
		data, err := next()
		if err != nil {
			return err
		}
		if !c.encode {
			continue
		}
		s, ok, err := enc.Encode(media.VideoFrame{Format: media.I420, Width: w, Height: h, Data: data,
			Capture: time.Duration(i) * time.Second / time.Duration(c.fps)}, false)
		if err != nil {
			return err
		}
		if ok {
			bytes += len(s.Data)
			if c.out != "" {
				samples = append(samples, s.Data)
			}
		}
	}
	used := cpu() - before
	wall := time.Since(start)
	if c.out != "" {
		if err := writeStream(c.out, samples); err != nil {
			return err
		}
	}
	videoSecs := float64(n) / float64(c.fps)
	fmt.Printf("onair-x264 frames=%d cpu_s=%.2f wall_s=%.2f cpu_per_video_s=%.3f bitrate_kbps=%.0f\n",
		n, used.Seconds(), wall.Seconds(), used.Seconds()/videoSecs, float64(bytes)*8/1000/videoSecs)
	return nil
}

// newPattern is the unpaced test pattern the flags ask for.
func newPattern(c config) (*testsrc.Pattern, error) {
	pattern, err := testsrc.NewPattern(c.width, c.height, 1_000_000, device.NewClock(), nil)
	if err != nil {
		return nil, err
	}
	if c.noise {
		pattern.WithNoise()
	}
	return pattern, nil
}

// writeFrames writes n frames of the pattern, raw I420, to path.
func writeFrames(path string, pattern *testsrc.Pattern, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fr, _ := pattern.ReadVideo(context.Background())
		out.Write(fr.Data)
	}
	if err := out.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeStream writes the access units back to back: an Annex-B file that
// ffprobe and bench/encoder.sh read.
func writeStream(path string, samples [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, s := range samples {
		w.Write(s)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write stream %s: %w", path, err)
	}
	return f.Close()
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
