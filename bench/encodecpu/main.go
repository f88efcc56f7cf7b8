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

func main() {
	width := flag.Int("width", 1280, "picture width")
	height := flag.Int("height", 720, "picture height")
	fps := flag.Int("fps", 30, "frame rate the encoder is set up for")
	kbps := flag.Int("kbps", 2500, "bitrate")
	frames := flag.Int("frames", 300, "frames to encode")
	writeRaw := flag.String("write-raw", "", "write the raw I420 frames to this file and exit")
	readRaw := flag.String("raw", "", "encode raw I420 frames from this file instead of the pattern")
	noise := flag.Bool("noise", true, "noise in the lower third, so the encoder works at its full bitrate")
	flag.Parse()
	if err := run(*width, *height, *fps, *kbps, *frames, *writeRaw, *readRaw, *noise); err != nil {
		slog.Error("encodecpu", "err", err)
		os.Exit(1)
	}
}

func run(w, h, fps, kbps, n int, writeRaw, readRaw string, noise bool) error {
	frameSize := w * h * 3 / 2
	pattern, err := testsrc.NewPattern(w, h, 1_000_000, device.NewClock(), nil) // unpaced
	if err != nil {
		return err
	}
	if noise {
		pattern.WithNoise()
	}
	if writeRaw != "" {
		f, err := os.Create(writeRaw)
		if err != nil {
			return err
		}
		out := bufio.NewWriter(f)
		for i := 0; i < n; i++ {
			fr, _ := pattern.ReadVideo(context.Background())
			out.Write(fr.Data)
		}
		if err := out.Flush(); err != nil {
			return err
		}
		return f.Close()
	}
	// Load every frame first so that reading is not measured.
	raw := make([][]byte, n)
	if readRaw != "" {
		f, err := os.Open(readRaw)
		if err != nil {
			return err
		}
		defer f.Close()
		for i := range raw {
			raw[i] = make([]byte, frameSize)
			if _, err := io.ReadFull(f, raw[i]); err != nil {
				return fmt.Errorf("raw file holds fewer than %d frames: %w", n, err)
			}
		}
	} else {
		for i := range raw {
			fr, _ := pattern.ReadVideo(context.Background())
			raw[i] = append([]byte(nil), fr.Data...)
		}
	}
	enc, err := x264.New(encoder.VideoParams{Width: w, Height: h, FPS: fps, BitrateKbps: kbps, KeyframeInterval: 2 * time.Second}, x264.Options{})
	if err != nil {
		return err
	}
	defer enc.Close()
	before := cpu()
	start := time.Now()
	var bytes int
	for i, data := range raw {
		s, ok, err := enc.Encode(media.VideoFrame{Format: media.I420, Width: w, Height: h, Data: data,
			Capture: time.Duration(i) * time.Second / time.Duration(fps)}, false)
		if err != nil {
			return err
		}
		if ok {
			bytes += len(s.Data)
		}
	}
	used := cpu() - before
	wall := time.Since(start)
	videoSecs := float64(n) / float64(fps)
	fmt.Printf("onair-x264 frames=%d cpu_s=%.2f wall_s=%.2f cpu_per_video_s=%.3f bitrate_kbps=%.0f\n",
		n, used.Seconds(), wall.Seconds(), used.Seconds()/videoSecs, float64(bytes)*8/1000/videoSecs)
	return nil
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
