package v4l2m2m

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a logger for tests that check behaviour, not logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakes is an opener that makes a new FakeDevice for every open, as the
// real node gives a new driver context per open, and remembers them.
type fakes struct {
	cfg     FakeConfig
	devices []*FakeDevice
	paths   []string
}

func (f *fakes) open(path string) (Device, error) {
	d := NewFakeDevice(f.cfg)
	f.devices = append(f.devices, d)
	f.paths = append(f.paths, path)
	return d, nil
}

func (f *fakes) last() *FakeDevice { return f.devices[len(f.devices)-1] }

func params(width, height int) encoder.VideoParams {
	return encoder.VideoParams{Width: width, Height: height, FPS: 30, BitrateKbps: 2500, KeyframeInterval: time.Second}
}

// picture makes frame n of a moving test picture in the given format:
// every byte depends on position and n, so that a misplaced row or plane
// shows. Capture times are 1/30 s apart plus an odd number of nanoseconds,
// which the driver's microsecond timestamps cannot carry by themselves.
func picture(format media.PixelFormat, width, height, n int) media.VideoFrame {
	i420 := make([]byte, width*height*3/2)
	cw, ch := width/2, height/2
	u, v := i420[width*height:width*height+cw*ch], i420[width*height+cw*ch:]
	// Y = x + 3y + 7n, U = 128 + x - y + n, V = 64 + x + 2y - n (mod 256):
	// each row is a slice of a ramp, which keeps this fast under qemu.
	var ramp [512]byte
	for i := range ramp {
		ramp[i] = byte(i)
	}
	fill := func(row []byte, start int) {
		for x := 0; x < len(row); x += 256 {
			off := (start + x) & 255
			copy(row[x:min(x+256, len(row))], ramp[off:])
		}
	}
	for y := 0; y < height; y++ {
		fill(i420[y*width:(y+1)*width], 3*y+7*n)
	}
	for y := 0; y < ch; y++ {
		fill(u[y*cw:(y+1)*cw], 128-y+n+1024)
		fill(v[y*cw:(y+1)*cw], 64+2*y-n+1024)
	}
	data := i420
	switch format {
	case media.NV12:
		data = make([]byte, len(i420))
		copy(data, i420[:width*height])
		uv := data[width*height:]
		for i := 0; i < cw*ch; i++ {
			uv[2*i], uv[2*i+1] = u[i], v[i]
		}
	case media.YUYV:
		data = make([]byte, width*height*2)
		for y := 0; y < height; y++ {
			for x := 0; x < width; x += 2 {
				o := y*width*2 + x*2
				data[o], data[o+1], data[o+2], data[o+3] = i420[y*width+x], u[(y/2)*cw+x/2], i420[y*width+x+1], v[(y/2)*cw+x/2]
			}
		}
	}
	return media.VideoFrame{
		Format: format, Width: width, Height: height, Data: data,
		Capture: time.Duration(n)*time.Second/30 + 1234*time.Millisecond + 567*time.Nanosecond,
	}
}

// stream is what an encoder produced, with the capture times of the
// pictures that went in.
type stream struct {
	samples  []media.Sample
	captures []time.Duration
}

func (s stream) annexB() []byte {
	var b bytes.Buffer
	for _, sample := range s.samples {
		b.Write(sample.Data)
	}
	return b.Bytes()
}

// encodeFrames encodes n pictures, forcing keyframes at the given indexes;
// current, when not nil, is set to each picture before it is encoded.
func encodeFrames(t *testing.T, e *Encoder, format media.PixelFormat, width, height, n int, force map[int]bool, current *media.VideoFrame) stream {
	t.Helper()
	var s stream
	for i := 0; i < n; i++ {
		frame := picture(format, width, height, i)
		if current != nil {
			*current = frame
		}
		sample, ok, err := e.Encode(frame, force[i])
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !ok {
			t.Fatalf("frame %d: no access unit", i)
		}
		s.samples = append(s.samples, sample)
		s.captures = append(s.captures, frame.Capture)
	}
	return s
}

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Profile   string `json:"profile"`
		Level     int    `json:"level"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		NbFrames  string `json:"nb_read_frames"`
	} `json:"streams"`
	Frames []struct {
		KeyFrame int    `json:"key_frame"`
		PictType string `json:"pict_type"`
	} `json:"frames"`
}

// decode has ffmpeg decode an Annex-B stream: it fails the test on any
// decoder message, and returns what ffprobe says of the stream.
func decode(t *testing.T, annexB []byte) probe {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is not installed: make deps-test (or make test) installs Debian's ffmpeg")
	}
	path := filepath.Join(t.TempDir(), "out.h264")
	if err := os.WriteFile(path, annexB, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.String())
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_frames",
		"-show_entries", "stream=codec_name,profile,level,width,height,nb_read_frames:frame=key_frame,pict_type",
		"-of", "json", "-f", "h264", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 1 {
		t.Fatalf("ffprobe streams: %+v", p.Streams)
	}
	return p
}

func (p probe) frames(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(p.Streams[0].NbFrames)
	if err != nil {
		t.Fatalf("ffprobe frame count %q", p.Streams[0].NbFrames)
	}
	return n
}
