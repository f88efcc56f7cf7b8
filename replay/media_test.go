package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// Test media is real: ffmpeg encodes a test pattern with libx264 (Annex-B,
// SPS/PPS before every keyframe, no B-frames, as the box's encoders do) and
// a tone with libopus in 20 ms packets. The samples carry capture times on
// a pipeline clock that started a while before the broadcast.

const (
	mediaSeconds = 32
	mediaFPS     = 30
	// captureEpoch is the pipeline clock when the media starts.
	captureEpoch = 7 * time.Second
)

var (
	mediaOnce    sync.Once
	mediaSamples []media.Sample
	mediaErr     error
	mediaDir     string
)

func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: make deps-test (or make test) installs Debian's ffmpeg", tool)
		}
	}
}

// testMedia returns mediaSeconds of interleaved video and audio samples,
// sorted by capture time. Callers must not modify them.
func testMedia(t testing.TB) []media.Sample {
	t.Helper()
	needFFmpeg(t)
	mediaOnce.Do(func() { mediaSamples, mediaErr = makeMedia(320, 240, 300, mediaSeconds) })
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	return mediaSamples
}

func makeMedia(width, height, videoKbps, seconds int) ([]media.Sample, error) {
	if mediaDir == "" {
		dir, err := os.MkdirTemp("", "replay-media-")
		if err != nil {
			return nil, err
		}
		mediaDir = dir
	}
	video := filepath.Join(mediaDir, fmt.Sprintf("v%dx%d-%dk-%ds.h264", width, height, videoKbps, seconds))
	audio := filepath.Join(mediaDir, fmt.Sprintf("a-%ds.ogg", seconds))
	// A plain test pattern compresses far below a camera's bitrate; noise
	// brings it up to the target.
	source := fmt.Sprintf("testsrc=size=%dx%d:rate=%d", width, height, mediaFPS)
	if videoKbps >= 1000 {
		source = fmt.Sprintf("testsrc2=size=%dx%d:rate=%d,noise=alls=12:allf=t", width, height, mediaFPS)
	}
	rate := fmt.Sprintf("%dk", videoKbps)
	cmds := [][]string{
		{"-f", "lavfi", "-i", source, "-t", strconv.Itoa(seconds),
			"-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-pix_fmt", "yuv420p",
			"-x264-params", "aud=1:repeat-headers=1:bframes=0:keyint=60:min-keyint=60:scenecut=0",
			"-bsf:v", "h264_mp4toannexb", "-f", "h264", video},
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(seconds),
			"-c:a", "libopus", "-b:a", "64k", "-ac", "1", "-frame_duration", "20", audio},
	}
	for _, args := range cmds {
		if _, err := os.Stat(args[len(args)-1]); err == nil {
			continue // made before, by the parent of a crash test child
		}
		out, err := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	v, err := os.ReadFile(video)
	if err != nil {
		return nil, err
	}
	a, err := os.ReadFile(audio)
	if err != nil {
		return nil, err
	}
	var samples []media.Sample
	for i, au := range accessUnits(v) {
		// A little capture jitter, as a real camera has, that must not
		// turn into drift.
		jitter := time.Duration(i%3-1) * time.Millisecond
		samples = append(samples, media.Sample{
			Kind: media.Video, Data: au, Keyframe: h264.Inspect(au).IDR,
			Capture:  captureEpoch + time.Duration(i)*time.Second/mediaFPS + jitter,
			Duration: time.Second / mediaFPS,
		})
	}
	packets, err := oggPackets(a)
	if err != nil {
		return nil, err
	}
	for i, p := range packets {
		// Audio starts a little before the first video frame: the
		// recorder drops what comes before the first keyframe.
		samples = append(samples, media.Sample{
			Kind: media.Audio, Data: p,
			Capture:  captureEpoch - 30*time.Millisecond + time.Duration(i)*20*time.Millisecond,
			Duration: 20 * time.Millisecond,
		})
	}
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Capture < samples[j].Capture })
	return samples, nil
}

// accessUnits splits an Annex-B stream at access unit delimiters.
func accessUnits(stream []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+4 < len(stream); i++ {
		if stream[i] == 0 && stream[i+1] == 0 && stream[i+2] == 0 && stream[i+3] == 1 && stream[i+4]&0x1f == h264.TypeAUD {
			if start >= 0 {
				out = append(out, stream[start:i])
			}
			start = i
		}
	}
	if start >= 0 {
		out = append(out, stream[start:])
	}
	return out
}

// oggPackets returns the packets of an Ogg Opus file after its two header
// packets.
func oggPackets(data []byte) ([][]byte, error) {
	var out [][]byte
	var cur []byte
	for len(data) > 0 {
		if len(data) < 27 || !bytes.Equal(data[:4], []byte("OggS")) {
			return nil, fmt.Errorf("ogg: bad page")
		}
		n := int(data[26])
		if len(data) < 27+n {
			return nil, fmt.Errorf("ogg: short page")
		}
		lacing := data[27 : 27+n]
		body := data[27+n:]
		used := 0
		for _, l := range lacing {
			if used+int(l) > len(body) {
				return nil, fmt.Errorf("ogg: short page body")
			}
			cur = append(cur, body[used:used+int(l)]...)
			used += int(l)
			if l < 255 {
				out = append(out, cur)
				cur = nil
			}
		}
		data = body[used:]
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("ogg: no packets")
	}
	return out[2:], nil
}

// probe is what ffprobe says about a file.
type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		Channels  int    `json:"channels"`
		StartTime string `json:"start_time"`
		Duration  string `json:"duration"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return p
}

// ffmpegDecode decodes the whole file and returns what ffmpeg complained
// about (empty when nothing).
func ffmpegDecode(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

// decodedSeconds is how much video ffmpeg decodes from the file, by
// counting frames.
func decodedVideoSeconds(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe -count_frames %s: %v", path, err)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(bytes.TrimRight(out, ","))))
	if err != nil {
		t.Fatalf("frame count %q: %v", out, err)
	}
	return float64(n) / mediaFPS
}

func parseSeconds(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("seconds %q: %v", s, err)
	}
	return v
}
