package replay

import (
	"bytes"
	"encoding/hex"
	"io"
	"os/exec"
	"testing"
	"time"
)

// memFile is a file in memory, for finalize without a disk.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Truncate(size int64) error {
	if size < int64(len(m.b)) {
		m.b = m.b[:size]
	} else {
		m.b = append(m.b, make([]byte, size-int64(len(m.b)))...)
	}
	return nil
}

func (m *memFile) Sync() error { return nil }

// FuzzScan feeds the repair scan arbitrary bytes (a replay file is outside
// input: whatever a crash, a power cut or a bad card left): it must never
// panic, and what it accepts must finalize into a file it reads back the
// same way.
func FuzzScan(f *testing.F) {
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		// A real recording, made small: the reserved room shrunk to an
		// empty free box (fragments address their data from their moof,
		// so nothing moves), two fragments of the first second.
		raw, ends := unfinishedFile(f, time.Second)
		lay, _ := scan(bytes.NewReader(raw), int64(len(raw)))
		small := append([]byte(nil), raw[:lay.moovEnd]...)
		small = append(small, 0, 0, 0, 8, 'f', 'r', 'e', 'e')
		small = append(small, raw[lay.regionEnd:ends[min(1, len(ends)-1)]]...)
		f.Add(small)
		f.Add(small[:len(small)-100])
		file := &memFile{b: bytes.Clone(small)}
		if lay, err := scan(file, int64(len(small))); err == nil && finalize(file, &lay) == nil {
			f.Add(file.b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x00\x00\x08ftyp\x00\x00\x00\x08moov"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lay, err := scan(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if lay.end > int64(len(data)) || lay.moovEnd > lay.regionEnd || len(lay.frags) == 0 || lay.frags[0].offset < lay.regionEnd {
			t.Fatalf("layout %+v of %d bytes", lay, len(data))
		}
		for i := 1; i < len(lay.frags); i++ {
			if lay.frags[i].offset != lay.frags[i-1].end() {
				t.Fatalf("fragments %+v and %+v", lay.frags[i-1], lay.frags[i])
			}
		}
		file := &memFile{b: bytes.Clone(data)}
		if err := finalize(file, &lay); err != nil {
			t.Fatal(err)
		}
		again, err := scan(file, int64(len(file.b)))
		if err != nil || !again.indexed || len(again.frags) != len(lay.frags) {
			t.Fatalf("after finalize: %d fragments, indexed %v, %v; before %d", len(again.frags), again.indexed, err, len(lay.frags))
		}
	})
}

// spsSamples are SPS NAL units that ffmpeg's libx264 wrote, with the
// picture size ffmpeg was asked for: cropping (1080, 1366), Baseline, Main,
// High, and interlaced 4:2:2.
var spsSamples = []struct {
	hex           string
	width, height int
}{
	{"67640028acd940780227e5c044000003000400000300f03c60c658", 1920, 1080},
	{"6742c01fd9005005bb0110000003001000000303c0f1832480", 1280, 720},
	{"674d401eeca05017fcb80880000003008000001e078b16cb", 640, 360},
	{"67640020acd94056061e6f0110000003001000000303c0f1831960", 1366, 768},
	{"677a001ebcd940b424d8088000000300800000190f8a14cb", 720, 576},
	{"67f4000d91968141fb0110000003001000000303c0f142aa", 320, 240},
}

func TestParseSPS(t *testing.T) {
	for _, c := range spsSamples {
		nal, _ := hex.DecodeString(c.hex)
		info, err := parseSPS(nal)
		if err != nil || info.width != c.width || info.height != c.height {
			t.Errorf("%s: %dx%d, %v; want %dx%d", c.hex, info.width, info.height, err, c.width, c.height)
		}
	}
	if _, err := parseSPS([]byte{0x68, 1, 2, 3}); err == nil {
		t.Error("a PPS parsed as SPS")
	}
}

// FuzzParseSPS: the SPS comes from the encoder, or a camera's own H.264.
func FuzzParseSPS(f *testing.F) {
	for _, c := range spsSamples {
		b, _ := hex.DecodeString(c.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, nal []byte) {
		info, err := parseSPS(nal)
		if err == nil && (info.width <= 0 || info.height <= 0 || info.width > 16384 || info.height > 32768) {
			t.Fatalf("%dx%d from %x", info.width, info.height, nal)
		}
	})
}

// FuzzParseRange: the Range header comes from any client.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-500", "bytes=100-", "bytes=0-0,5-9", "bytes=5-1", "items=0-1", "bytes=,,", "bytes=-0"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -size
		}
		ranges, err := parseRange(header, size)
		if err != nil {
			return
		}
		for _, r := range ranges {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size {
				t.Fatalf("%q on %d bytes: range %+v", header, size, r)
			}
		}
	})
}
