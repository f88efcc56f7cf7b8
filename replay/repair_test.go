package replay

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// unfinishedFile returns the bytes of a recording of d interrupted right
// after its last fragment, and where its fragments end.
func unfinishedFile(t testing.TB, d time.Duration) ([]byte, []int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "u.mp4")
	muxFileUnfinished(t, path, firstSeconds(testMedia(t), d), false)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := scan(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || lay.indexed || lay.end != int64(len(raw)) {
		t.Fatalf("scan of an interrupted recording: %+v, %v", lay, err)
	}
	var ends []int64
	for _, f := range lay.frags {
		ends = append(ends, f.end())
	}
	return raw, ends
}

// Wherever power fails, the repair keeps exactly the fragments that were
// complete, and what it keeps plays.
func TestRepairAtAnyCut(t *testing.T) {
	raw, ends := unfinishedFile(t, 6*time.Second)
	cuts := []int64{0, 8, 100, ends[0] - 1}
	for _, e := range ends {
		cuts = append(cuts, e-1, e, e+1, e+8, e+100)
	}
	for c := int64(0); c < int64(len(raw)); c += int64(len(raw)) / 300 {
		cuts = append(cuts, c)
	}
	for _, cut := range cuts {
		if cut > int64(len(raw)) {
			continue
		}
		want := 0
		for want < len(ends) && ends[want] <= cut {
			want++
		}
		lay, err := scan(bytes.NewReader(raw[:cut]), cut)
		if want == 0 {
			if err == nil {
				t.Fatalf("cut at %d: no fragment complete, scan found %d", cut, len(lay.frags))
			}
			continue
		}
		if err != nil || len(lay.frags) != want || lay.end != ends[want-1] {
			t.Fatalf("cut at %d: %d fragments ending at %d (%v), want %d ending at %d", cut, len(lay.frags), lay.end, err, want, ends[want-1])
		}
	}
	// Repair and play a few.
	for _, cut := range []int64{ends[1] + 500, (ends[3] + ends[4]) / 2, int64(len(raw)) - 1} {
		path := filepath.Join(t.TempDir(), "cut.mp4")
		os.WriteFile(path, raw[:cut], 0o644)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		lay, err := scan(f, cut)
		if err == nil {
			err = finalize(f, &lay)
		}
		f.Close()
		if err != nil {
			t.Fatalf("repair at %d: %v", cut, err)
		}
		if msg := ffmpegDecode(t, path); msg != "" {
			t.Fatalf("cut at %d, repaired: ffmpeg: %s", cut, msg)
		}
		if got, want := decodedVideoSeconds(t, path), lay.duration().Seconds(); math.Abs(got-want) > 0.05 {
			t.Fatalf("cut at %d: ffmpeg decodes %.2f s, the repair kept %.2f s", cut, got, want)
		}
	}
}

// After a power cut the file may have its full length with zeros (or old
// blocks) where the data never reached the disk: that fragment goes.
func TestRepairDropsUnwrittenFragment(t *testing.T) {
	raw, ends := unfinishedFile(t, 4*time.Second)
	n := len(ends)
	for _, zeroFrom := range []int64{ends[n-2] + 600, ends[n-2], int64(len(raw)) - 50, -1} {
		data := bytes.Clone(raw)
		if zeroFrom < 0 {
			zeroFrom = int64(len(raw)) - 3000
			data[zeroFrom] ^= 0x40 // a stale block
		} else {
			clear(data[zeroFrom:])
		}
		lay, err := scan(bytes.NewReader(data), int64(len(data)))
		if err != nil || len(lay.frags) != n-1 || lay.end != ends[n-2] {
			t.Fatalf("zeros from %d: %d fragments ending at %d (%v), want %d ending at %d", zeroFrom, len(lay.frags), lay.end, err, n-1, ends[n-2])
		}
	}
}

// Finalizing twice changes nothing: repair is safe to repeat.
func TestFinalizeIsIdempotent(t *testing.T) {
	raw, _ := unfinishedFile(t, 3*time.Second)
	path := filepath.Join(t.TempDir(), "f.mp4")
	os.WriteFile(path, raw, 0o644)
	var first []byte
	for round := range 2 {
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		st, _ := f.Stat()
		lay, err := scan(f, st.Size())
		if err != nil || (round == 1) != lay.indexed {
			t.Fatalf("round %d: indexed %v, %v", round, lay.indexed, err)
		}
		if err := finalize(f, &lay); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, _ := os.ReadFile(path)
		if round == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatal("second finalize changed the file")
		}
	}
}

func TestOpenRepairsAndTidies(t *testing.T) {
	raw, ends := unfinishedFile(t, 5*time.Second)
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	side := func(id string) []byte {
		b, _ := json.Marshal(sidecar{Version: sidecarVersion, ID: id, BroadcastID: id, Title: "T " + id, Start: broadcastStart, StartTrusted: true})
		return b
	}
	write("cut.mp4", raw[:(ends[2]+ends[3])/2]) // power cut inside the fourth fragment
	write("cut.json", side("cut"))
	write("orphan.mp4", raw) // media whose sidecar never got written
	write("ghost.json", side("ghost"))
	write("empty.mp4", nil) // killed before the first fragment
	write("empty.json", side("empty"))
	write("garbage.mp4", bytes.Repeat([]byte{0xff}, 1000))
	write("garbage.json", side("garbage"))
	write(".cut.json.12345", []byte("{")) // an atomic write cut short
	write("notes.txt", []byte("not ours"))

	l := openLib(t, dir, newFakeClock(broadcastStart), Options{})
	wantIDs(t, l, "orphan", "cut")
	cut, _ := l.Get("cut")
	if cut.Title != "T cut" || cut.Recording || math.Abs(cut.DurationS-3) > 0.05 {
		t.Fatalf("repaired: %+v", cut)
	}
	if msg := ffmpegDecode(t, filepath.Join(dir, "cut.mp4")); msg != "" {
		t.Fatalf("ffmpeg: %s", msg)
	}
	if orphan, _ := l.Get("orphan"); math.Abs(orphan.DurationS-5) > 0.05 {
		t.Fatalf("orphan: %+v", orphan)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"cut.json", "cut.mp4", "notes.txt", "orphan.json", "orphan.mp4"}
	if len(names) != len(want) {
		t.Fatalf("directory after Open: %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("directory after Open: %v, want %v", names, want)
		}
	}
}

func TestSidxGroupsStartAtKeyframes(t *testing.T) {
	// 10,000 fragments of a second, a keyframe every other one: more than
	// the reserved room holds one by one.
	lay := layout{moovEnd: 1000, regionEnd: 1000 + reserveSize}
	lay.tracks[0] = trackInfo{id: 1, timescale: videoTimescale}
	lay.tracks[1] = trackInfo{id: 2, timescale: audioTimescale}
	off := lay.regionEnd
	for i := range 10000 {
		f := fragment{offset: off, size: 1000}
		f.tracks[0] = fragTrack{traf: 1, samples: 30, base: uint64(i) * videoTimescale, duration: videoTimescale, sync: -1}
		if i%2 == 0 {
			f.tracks[0].sync = 0
		}
		f.tracks[1] = fragTrack{traf: 2, samples: 50, base: uint64(i) * audioTimescale, duration: audioTimescale, sync: 0}
		lay.frags = append(lay.frags, f)
		off += f.size
	}
	region := buildSidx(&lay)
	if int64(len(region)) != reserveSize {
		t.Fatalf("region %d bytes, want %d", len(region), reserveSize)
	}
	refs := int(binary.BigEndian.Uint16(region[38:]))
	size := binary.BigEndian.Uint32(region[40:]) & 0x7fffffff
	duration := binary.BigEndian.Uint32(region[44:])
	sap := binary.BigEndian.Uint32(region[48:])
	// 5,000 keyframe fragments in at most 2,727 references: two keyframe
	// groups (4 fragments) each.
	if refs != 2500 || size != 4000 || duration != 4*videoTimescale || sap>>31 != 1 {
		t.Fatalf("%d references, first %d bytes, %d ticks, SAP %x", refs, size, duration, sap)
	}
}
