//go:build cgo

package opus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/media"
)

// TestEncodeDecodesWithFFmpeg encodes a second of tone in odd-sized buffers,
// wraps the packets in Ogg and has ffmpeg decode them: the tone must come
// back at its level and length.
func TestEncodeDecodesWithFFmpeg(t *testing.T) {
	enc, err := New(48000, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	tone := testsrc.NewTone(device.NewClock())
	var samples []media.Sample
	var first time.Duration
	for i := 0; i < 50; i++ {
		a, err := tone.ReadAudio(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = a.Capture
		}
		// Split each 20 ms buffer 7:13 to check re-framing.
		cut := len(a.Samples) * 7 / 20
		for _, part := range []media.AudioFrame{
			{SampleRate: a.SampleRate, Channels: 1, Samples: a.Samples[:cut], Capture: a.Capture},
			{SampleRate: a.SampleRate, Channels: 1, Samples: a.Samples[cut:], Capture: a.Capture + 7*time.Millisecond},
		} {
			if samples, err = enc.Encode(samples, part); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(samples) != 50 {
		t.Fatalf("%d packets for 1 s, want 50", len(samples))
	}
	for i, s := range samples {
		if want := first + time.Duration(i)*20*time.Millisecond; s.Capture != want {
			t.Fatalf("packet %d capture %v, want %v", i, s.Capture, want)
		}
		if s.Kind != media.Audio || s.Duration != 20*time.Millisecond || len(s.Data) == 0 {
			t.Fatalf("packet %d: %+v", i, s)
		}
	}
	dir := t.TempDir()
	ogg := filepath.Join(dir, "tone.opus")
	if err := os.WriteFile(ogg, oggOpus(samples), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", ogg, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v", err)
	}
	pcm := make([]int16, len(out)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	if got := len(pcm); got < 46000 || got > 48500 {
		t.Fatalf("decoded %d samples, want about 48000", got)
	}
	var sum float64
	for _, s := range pcm[4800:] {
		sum += float64(s) * float64(s)
	}
	rms := 20 * math.Log10(math.Sqrt(sum/float64(len(pcm)-4800))/32768)
	if rms < -24 || rms > -18 {
		t.Fatalf("decoded tone at %.1f dBFS rms, want about -21", rms)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-of", "json", ogg).Output()
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			SampleRate string `json:"sample_rate"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(probe, &p); err != nil || len(p.Streams) != 1 || p.Streams[0].CodecName != "opus" {
		t.Fatalf("ffprobe: %s (%v)", probe, err)
	}
}

func TestRejects(t *testing.T) {
	if _, err := New(44100, 1, 64); err == nil {
		t.Error("44.1 kHz accepted")
	}
	if _, err := New(48000, 3, 64); err == nil {
		t.Error("3 channels accepted")
	}
	if _, err := New(48000, 1, 1000); err == nil {
		t.Error("1000 kbps accepted")
	}
	enc, err := New(48000, 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(nil, media.AudioFrame{SampleRate: 48000, Channels: 1, Samples: make([]int16, 960)}); err == nil {
		t.Error("mono into a stereo encoder accepted")
	}
	if _, err := enc.Encode(nil, media.AudioFrame{SampleRate: 48000, Channels: 2, Samples: make([]int16, 3)}); err == nil {
		t.Error("odd sample count for stereo accepted")
	}
	enc.Close()
	if _, err := enc.Encode(nil, media.AudioFrame{SampleRate: 48000, Channels: 2, Samples: make([]int16, 1920)}); err == nil {
		t.Error("Encode after Close accepted")
	}
}
