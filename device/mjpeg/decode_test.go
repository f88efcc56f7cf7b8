package mjpeg

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/onair/onair/internal/imagetest"
)

// ffmpegJPEG has ffmpeg draw its testsrc2 pattern at the given size and
// pixel format and encode it as one baseline JPEG, as a camera would. With
// standard tables, the picture uses the Annex K Huffman tables (what UVC
// cameras use); otherwise ffmpeg's optimised ones.
func ffmpegJPEG(t testing.TB, width, height int, pixFmt string, standardTables bool) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "frame.jpg")
	huffman := "optimal"
	if standardTables {
		huffman = "default"
	}
	args := []string{"-v", "error", "-nostdin", "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d", width, height),
		"-frames:v", "1", "-pix_fmt", pixFmt, "-huffman", huffman, "-q:v", "3", path}
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg (Debian package ffmpeg) makes the test pictures: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ffmpegI420 is ffmpeg's own decode of a JPEG, converted to yuv420p (video
// range) by its scaler: the independent reference for ours.
func ffmpegI420(t testing.TB, jpeg []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jpg"), filepath.Join(dir, "out.yuv")
	if err := os.WriteFile(in, jpeg, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-v", "error", "-nostdin", "-i", in, "-pix_fmt", "yuv420p", "-f", "rawvideo", out}
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg decode: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// segments lists a JPEG's marker segments before its first scan.
func segments(t testing.TB, jpeg []byte) map[byte][][]byte {
	t.Helper()
	out := map[byte][][]byte{}
	for i := 2; i+3 < len(jpeg); {
		if jpeg[i] != 0xff {
			t.Fatalf("no marker at %d", i)
		}
		marker := jpeg[i+1]
		if marker == markerSOS {
			return out
		}
		end := i + 2 + (int(jpeg[i+2])<<8 | int(jpeg[i+3]))
		out[marker] = append(out[marker], jpeg[i:end])
		i = end
	}
	t.Fatal("no scan")
	return nil
}

// stripTables removes every DHT segment, as UVC cameras send frames.
func stripTables(t testing.TB, jpeg []byte) []byte {
	t.Helper()
	stripped := jpeg
	for _, seg := range segments(t, jpeg)[markerDHT] {
		stripped = bytes.Replace(stripped, seg, nil, 1)
	}
	if len(stripped) == len(jpeg) {
		t.Fatal("the picture had no DHT segment to strip")
	}
	return stripped
}

func TestStandardTablesAreFFmpegs(t *testing.T) {
	// ffmpeg writes the Annex K tables as one DHT segment, in the same
	// order: ours must be byte for byte the same.
	jpeg := ffmpegJPEG(t, 64, 48, "yuvj422p", true)
	dht := segments(t, jpeg)[markerDHT]
	if len(dht) != 1 || !bytes.Equal(dht[0], standardDHT) {
		t.Fatalf("ffmpeg's standard DHT segments %x\ndiffer from ours %x", dht, standardDHT)
	}
}

func TestDecodeMatchesFFmpeg(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		pixFmt        string
		strip         bool
	}{
		{"4:2:2 720p", 1280, 720, "yuvj422p", false},
		{"4:2:2 720p without DHT", 1280, 720, "yuvj422p", true},
		{"4:2:0", 640, 360, "yuvj420p", true},
		{"4:4:4", 320, 240, "yuvj444p", false},
		{"greyscale", 320, 240, "gray", false},
		{"size not a multiple of the MCU", 328, 250, "yuvj422p", true},
	}
	var dec Decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jpeg := ffmpegJPEG(t, tt.width, tt.height, tt.pixFmt, tt.strip)
			want := ffmpegI420(t, jpeg)
			if tt.strip {
				jpeg = stripTables(t, jpeg)
			}
			got, err := dec.Decode(jpeg, tt.width, tt.height)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("I420 of %d bytes, ffmpeg's has %d", len(got), len(want))
			}
			luma := tt.width * tt.height
			chroma := (len(want) - luma) / 2
			for _, plane := range []struct {
				name       string
				start, end int
			}{{"Y", 0, luma}, {"U", luma, luma + chroma}, {"V", luma + chroma, len(want)}} {
				p := imagetest.PSNR(got[plane.start:plane.end], want[plane.start:plane.end])
				t.Logf("%s: PSNR %.1f dB against ffmpeg", plane.name, p)
				if p < 40 {
					t.Errorf("%s plane: PSNR %.1f dB against ffmpeg's decode, want > 40", plane.name, p)
				}
			}
		})
	}
}

func TestDecodeRefusesBrokenFrames(t *testing.T) {
	good := stripTables(t, ffmpegJPEG(t, 320, 240, "yuvj422p", true))
	var dec Decoder
	if _, err := dec.Decode(good, 320, 240); err != nil {
		t.Fatalf("the intact frame: %v", err)
	}
	cases := map[string][]byte{
		"empty":         nil,
		"no SOI":        good[2:],
		"only SOI":      good[:2],
		"garbage":       bytes.Repeat([]byte{0xff, 0x00, 0x13}, 500),
		"bad length":    append([]byte{0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff}, good[2:]...),
		"zeroed middle": append(append(append([]byte{}, good[:len(good)/2]...), make([]byte, 64)...), good[len(good)/2+64:]...),
	}
	// Webcams send frames cut short when USB packets are lost.
	for _, n := range []int{3, 20, 200, len(good) / 4, len(good) / 2, len(good) - 200, len(good) - 2} {
		cases[fmt.Sprintf("truncated to %d of %d bytes", n, len(good))] = good[:n]
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			i420, err := dec.Decode(frame, 320, 240)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode = %d bytes, %v; want ErrCorrupt", len(i420), err)
			}
		})
	}
	t.Run("another size than the camera said", func(t *testing.T) {
		if _, err := dec.Decode(good, 640, 480); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("no size", func(t *testing.T) {
		if _, err := dec.Decode(good, 0, 240); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	// The decoder is still good after all that.
	if _, err := dec.Decode(good, 320, 240); err != nil {
		t.Fatalf("intact frame after broken ones: %v", err)
	}
}

func TestRangeTables(t *testing.T) {
	for _, tt := range []struct {
		table   *[256]byte
		in, out byte
	}{
		{&lumaRange, 0, 16}, {&lumaRange, 255, 235}, {&lumaRange, 128, 126},
		{&chromaRange, 0, 16}, {&chromaRange, 255, 240}, {&chromaRange, 128, 128},
	} {
		if got := tt.table[tt.in]; got != tt.out {
			t.Errorf("range table maps %d to %d, want %d", tt.in, got, tt.out)
		}
	}
}

// BenchmarkDecode720p is the per-frame cost of a webcam's 720p MJPEG
// (4:2:2, no DHT) turned into I420.
func BenchmarkDecode720p(b *testing.B) {
	jpeg := stripTables(b, ffmpegJPEG(b, 1280, 720, "yuvj422p", true))
	var dec Decoder
	b.SetBytes(int64(len(jpeg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(jpeg, 1280, 720); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzDecode: a 64x48 4:2:2 frame
	// without tables and cut-short copies of it.
	f.Add([]byte{0xff, 0xd8, 0xff, 0xd9})
	var dec Decoder
	f.Fuzz(func(t *testing.T, frame []byte) {
		i420, err := dec.Decode(frame, 64, 48)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(i420) != 64*48*3/2 {
			t.Fatalf("I420 of %d bytes", len(i420))
		}
	})
}
