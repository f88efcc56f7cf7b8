//go:build cgo

package x264

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/device/testsrc"
	"github.com/onair/onair/encoder"
	"github.com/onair/onair/internal/imagetest"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Profile   string `json:"profile"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		NbFrames  string `json:"nb_read_frames"`
	} `json:"streams"`
	Frames []struct {
		KeyFrame int    `json:"key_frame"`
		PictType string `json:"pict_type"`
	} `json:"frames"`
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_frames",
		"-show_entries", "stream=codec_name,profile,width,height,nb_read_frames:frame=key_frame,pict_type",
		"-of", "json", "-f", "h264", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// encodePattern encodes n test-pattern frames, forcing keyframes at the given
// indexes, and returns the Annex-B stream and the samples.
func encodePattern(t *testing.T, enc *Encoder, w, h, n int, force map[int]bool) ([]byte, []media.Sample) {
	t.Helper()
	pattern, err := testsrc.NewPattern(w, h, 1000, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	var samples []media.Sample
	for i := 0; i < n; i++ {
		f, err := pattern.ReadVideo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s, ok, err := enc.Encode(f, force[i])
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatalf("frame %d: no output; zerolatency must give one access unit per picture", i)
		}
		if s.Capture != f.Capture {
			t.Fatalf("frame %d: capture %v, frame's %v", i, s.Capture, f.Capture)
		}
		stream.Write(s.Data)
		samples = append(samples, s)
	}
	return stream.Bytes(), samples
}

func TestEncodeDecodesWithFFmpeg(t *testing.T) {
	enc, err := New(encoder.VideoParams{Width: 320, Height: 240, FPS: 30, BitrateKbps: 500, KeyframeInterval: time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	stream, samples := encodePattern(t, enc, 320, 240, 75, map[int]bool{10: true})
	path := filepath.Join(t.TempDir(), "out.h264")
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	p := ffprobe(t, path)
	if len(p.Streams) != 1 {
		t.Fatalf("streams: %+v", p.Streams)
	}
	s := p.Streams[0]
	if s.CodecName != "h264" || s.Profile != "Constrained Baseline" || s.Width != 320 || s.Height != 240 {
		t.Fatalf("stream %+v, want h264 Constrained Baseline 320x240", s)
	}
	if n, _ := strconv.Atoi(s.NbFrames); n != 75 {
		t.Fatalf("ffprobe decoded %s frames, want 75", s.NbFrames)
	}
	// Keyframes: the first, the forced one at 10, and the regular ones every
	// 30 frames counted from the last keyframe.
	for i, f := range p.Frames {
		wantKey := i == 0 || i == 10 || i == 40 || i == 70
		if (f.KeyFrame == 1) != wantKey {
			t.Errorf("frame %d: key_frame=%d pict_type=%s, want keyframe %v", i, f.KeyFrame, f.PictType, wantKey)
		}
		if samples[i].Keyframe != wantKey {
			t.Errorf("frame %d: sample Keyframe=%v, want %v", i, samples[i].Keyframe, wantKey)
		}
		if wantKey {
			info := h264.Inspect(samples[i].Data)
			if !info.IDR || !info.SPS || !info.PPS {
				t.Errorf("keyframe %d lacks IDR/SPS/PPS: %+v", i, info)
			}
		}
	}
}

// x264 reads the planes straight from the frame's memory: each plane must
// land where it belongs (no swapped or shifted chroma), and the frame's
// buffer is the caller's again once Encode returns (the pattern refills the
// same buffer every frame). Decoded by ffmpeg, every plane of every picture
// matches its input.
func TestPlanesReadFromFrame(t *testing.T) {
	const w, h, n = 320, 240, 10
	enc, err := New(encoder.VideoParams{Width: w, Height: h, FPS: 30, BitrateKbps: 4000, KeyframeInterval: time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pattern, err := testsrc.NewPattern(w, h, 1000, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	var inputs [][]byte
	for i := 0; i < n; i++ {
		f, err := pattern.ReadVideo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, append([]byte(nil), f.Data...))
		s, ok, err := enc.Encode(f, false)
		if err != nil || !ok {
			t.Fatalf("frame %d: ok %v, %v", i, ok, err)
		}
		stream.Write(s.Data)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.h264"), stream.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	decoded, err := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", filepath.Join(dir, "out.h264"),
		"-f", "rawvideo", "-pix_fmt", "yuv420p", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v", err)
	}
	size := w * h * 3 / 2
	if len(decoded) != n*size {
		t.Fatalf("decoded %d bytes, want %d pictures of %d", len(decoded), n, size)
	}
	planes := []struct {
		name       string
		start, end int
	}{{"Y", 0, w * h}, {"U", w * h, w*h + w*h/4}, {"V", w*h + w*h/4, size}}
	for i, in := range inputs {
		out := decoded[i*size : (i+1)*size]
		for _, p := range planes {
			if db := imagetest.PSNR(in[p.start:p.end], out[p.start:p.end]); db < 35 {
				t.Errorf("picture %d, plane %s: PSNR %.1f dB against the input, want at least 35", i, p.name, db)
			}
		}
	}
}

func TestBitrateChangeWhileRunning(t *testing.T) {
	enc, err := New(encoder.VideoParams{Width: 640, Height: 360, FPS: 30, BitrateKbps: 150, KeyframeInterval: 10 * time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	low, _ := encodePattern(t, enc, 640, 360, 60, nil)
	if err := enc.SetBitrate(3000); err != nil {
		t.Fatal(err)
	}
	high, _ := encodePattern(t, enc, 640, 360, 60, nil)
	if len(high) < 2*len(low) {
		t.Fatalf("after raising the bitrate 20x, 60 frames take %d bytes against %d before", len(high), len(low))
	}
	if err := enc.SetBitrate(0); err == nil {
		t.Fatal("SetBitrate(0) accepted")
	}
}

// A cut of the bitrate (the uplink's answer to a link that just shrank)
// shows in the output within a few pictures, not after the one-second VBV
// buffer saved at the old rate is spent: noise, which uses every bit it is
// given, at 4000 kbit/s, then cut to 1000.
func TestBitrateCutFollowedAtOnce(t *testing.T) {
	const fps, fromKbps, toKbps, after = 30, 4000, 1000, 10
	enc, err := New(encoder.VideoParams{Width: 640, Height: 360, FPS: fps, BitrateKbps: 2500, KeyframeInterval: 10 * time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pattern, err := testsrc.NewPattern(640, 360, 1000, device.NewClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pattern.WithNoise()
	if err := enc.SetBitrate(fromKbps); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for i := range 40 + after {
		if i == 40 {
			if err := enc.SetBitrate(toKbps); err != nil {
				t.Fatal(err)
			}
		}
		f, err := pattern.ReadVideo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s, ok, err := enc.Encode(f, false)
		if err != nil || !ok {
			t.Fatalf("frame %d: ok %v, %v", i, ok, err)
		}
		if i >= 40 {
			sizes = append(sizes, len(s.Data))
		}
	}
	sum := 0
	for _, n := range sizes {
		sum += n
	}
	// With a one-second buffer the ten pictures after the cut took 3.4
	// times their share (14 to 18 KB each but the last two), with
	// steeredVBV 1.6 to 1.7 times (two pictures of the old size).
	budget := toKbps * 1000 / 8 * after / fps
	t.Logf("%d bytes (%.1fx their share): %v", sum, float64(sum)/float64(budget), sizes)
	if sum > 2*budget {
		t.Errorf("the %d pictures after a cut to %d kbit/s took %d bytes (%v), want at most twice their share of %d",
			after, toKbps, sum, sizes, budget)
	}
}

func TestRejectsWrongFrames(t *testing.T) {
	enc, err := New(encoder.VideoParams{Width: 64, Height: 64, FPS: 30, BitrateKbps: 100, KeyframeInterval: time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	cases := []media.VideoFrame{
		{Format: media.I420, Width: 32, Height: 64, Data: make([]byte, 32*64*3/2)},
		{Format: media.I420, Width: 64, Height: 64, Data: make([]byte, 10)},
		{Format: media.MJPEG, Width: 64, Height: 64, Data: make([]byte, 64*64*3/2)},
		{Format: media.YUYV, Width: 64, Height: 64, Data: make([]byte, 64*64)},
	}
	for i, f := range cases {
		if _, _, err := enc.Encode(f, false); err == nil {
			t.Errorf("case %d: frame %v %dx%d len %d accepted", i, f.Format, f.Width, f.Height, len(f.Data))
		}
	}
	// A YUYV frame of the right size encodes.
	if _, ok, err := enc.Encode(media.VideoFrame{Format: media.YUYV, Width: 64, Height: 64, Data: bytes.Repeat([]byte{100, 128}, 64*64)}, false); err != nil || !ok {
		t.Fatalf("YUYV frame: ok=%v err=%v", ok, err)
	}
	enc.Close()
	if _, _, err := enc.Encode(media.VideoFrame{}, false); err == nil {
		t.Fatal("Encode after Close accepted")
	}
}

func TestRejectsBadParams(t *testing.T) {
	for _, p := range []encoder.VideoParams{
		{Width: 0, Height: 240, FPS: 30, BitrateKbps: 100},
		{Width: 321, Height: 240, FPS: 30, BitrateKbps: 100},
		{Width: 320, Height: 240, FPS: 0, BitrateKbps: 100},
		{Width: 320, Height: 240, FPS: 30, BitrateKbps: 100, Profile: "extended"},
	} {
		if e, err := New(p, Options{}); err == nil {
			e.Close()
			t.Errorf("New(%+v) accepted", p)
		}
	}
}

// BenchmarkEncode720p measures Encode per 720p frame on the bars pattern
// (easy to compress) and with noise in the lower third (the encoder spends
// its full 2.5 Mbit/s, as in bench/encoder.sh). The frames are rendered
// before the loop, so only the encoder is measured.
func BenchmarkEncode720p(b *testing.B) {
	for _, bc := range []struct {
		name  string
		noise bool
	}{{"bars", false}, {"noise", true}} {
		b.Run(bc.name, func(b *testing.B) {
			enc, err := New(encoder.VideoParams{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, KeyframeInterval: 2 * time.Second}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			frames := patternFrames(b, 30, bc.noise)
			b.ReportAllocs()
			before := processCPU()
			i := 0
			for b.Loop() {
				if _, _, err := enc.Encode(frames[i%len(frames)], false); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// x264's slice threads work beside the caller: CPU time, not
			// the wall time of ns/op, is what the box pays.
			b.ReportMetric(float64(processCPU()-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// patternFrames renders n 720p pictures of the test pattern (moving bars,
// or noise, which x264 cannot compress well), each with its own copy of the
// data, before a benchmark's loop.
func patternFrames(b *testing.B, n int, noise bool) []media.VideoFrame {
	b.Helper()
	pattern, err := testsrc.NewPattern(1280, 720, 100000, device.NewClock(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if noise {
		pattern.WithNoise()
	}
	frames := make([]media.VideoFrame, n)
	for i := range frames {
		f, err := pattern.ReadVideo(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		f.Data = append([]byte(nil), f.Data...)
		frames[i] = f
	}
	return frames
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
