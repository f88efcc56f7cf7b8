package v4l2m2m

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// TestHardware runs the encoder on a real device, for the first run on a
// Pi (docs/hardware-check.md): ONAIR_HW_ENCODER=/dev/video11 runs it, and
// ONAIR_HW_OUT=<dir> keeps the streams. Without the variable it skips.
func TestHardware(t *testing.T) {
	path := os.Getenv("ONAIR_HW_ENCODER")
	if path == "" {
		t.Skip("set ONAIR_HW_ENCODER=/dev/video11 to run on a Pi's encoder")
	}
	found, reason, err := Find()
	t.Logf("Find: %q (%s) %v", found, reason, err)
	if found != path {
		t.Errorf("Find chose %q, not %s", found, path)
	}
	tests := []struct {
		format        media.PixelFormat
		width, height int
		profile       string
		rc            RateControl
	}{
		{media.I420, 1280, 720, "", VBR},
		{media.YUYV, 640, 480, "main", VBR},
		{media.NV12, 1920, 1080, "high", VBR},
		{media.I420, 1920, 1080, "constrained_baseline", CBR},
		{media.I420, 322, 242, "", VBR},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s_%dx%d_%s_%s", tt.format, tt.width, tt.height, tt.profile, tt.rc)
		t.Run(name, func(t *testing.T) {
			p := params(tt.width, tt.height)
			p.Profile = tt.profile
			e, err := Open(path, p, Options{Format: tt.format, RateControl: tt.rc})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", e.Info())
			const n = 150
			var stream bytes.Buffer
			var took []time.Duration
			keyframes := []int{}
			for i := 0; i < n; i++ {
				if i == 60 {
					if err := e.SetBitrate(1000); err != nil {
						t.Fatalf("SetBitrate while streaming: %v", err)
					}
				}
				frame := picture(tt.format, tt.width, tt.height, i)
				start := time.Now()
				sample, ok, err := e.Encode(frame, i == 10)
				took = append(took, time.Since(start))
				if err != nil || !ok {
					t.Fatalf("picture %d: ok %v, %v", i, ok, err)
				}
				if sample.Capture != frame.Capture {
					t.Errorf("picture %d: capture %v, want %v", i, sample.Capture, frame.Capture)
				}
				if sample.Keyframe {
					keyframes = append(keyframes, i)
					if info := h264.Inspect(sample.Data); !info.SPS || !info.PPS || !info.IDR {
						t.Errorf("keyframe %d is not SPS+PPS+IDR: %+v", i, info)
					}
				}
				stream.Write(sample.Data)
			}
			closeStart := time.Now()
			if err := e.Close(); err != nil {
				t.Errorf("Close (drain): %v", err)
			}
			t.Logf("keyframes at %v; close took %v", keyframes, time.Since(closeStart))
			if !slices.Contains(keyframes, 0) || !slices.Contains(keyframes, 10) {
				t.Errorf("keyframes %v: want the first and the forced one (10)", keyframes)
			}
			for i := 1; i < len(keyframes); i++ {
				if gap := keyframes[i] - keyframes[i-1]; gap > 31 {
					t.Errorf("keyframes %v: %d pictures between two (keyframe period 30)", keyframes, gap)
				}
			}
			slices.Sort(took)
			t.Logf("Encode per picture: p50 %v, p95 %v, max %v", took[n/2], took[n*95/100], took[n-1])
			if took[n*95/100] > time.Second/30 {
				t.Errorf("p95 %v per picture does not keep up with 30 fps", took[n*95/100])
			}
			if dir := os.Getenv("ONAIR_HW_OUT"); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, name+".h264"), stream.Bytes(), 0o644); err != nil {
					t.Error(err)
				}
			}
			if got := decode(t, stream.Bytes()).frames(t); got != n {
				t.Errorf("ffmpeg decoded %d pictures, want %d", got, n)
			}
		})
	}
	t.Run("reset", func(t *testing.T) {
		e, err := Open(path, params(640, 480), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		encodeFrames(t, e, media.I420, 640, 480, 5, nil, nil)
		if err := e.Reset(); err != nil {
			t.Fatal(err)
		}
		s := encodeFrames(t, e, media.I420, 640, 480, 2, nil, nil)
		if !s.samples[0].Keyframe {
			t.Error("first picture after Reset is not a keyframe")
		}
	})
}
