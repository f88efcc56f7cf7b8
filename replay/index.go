package replay

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// file is what finalize needs of an *os.File.
type file interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
}

// duration is how long the replay plays: the latest end of any track.
func (l *layout) duration() time.Duration {
	var d time.Duration
	for _, f := range l.frags {
		for i, t := range f.tracks {
			if t.traf == 0 || l.tracks[i].timescale == 0 {
				continue
			}
			if end := ticksToDuration(t.base+t.duration, l.tracks[i].timescale); end > d {
				d = end
			}
		}
	}
	return d
}

// finalize makes a replay whose fragments are complete a finished file: it
// cuts what follows the last good fragment, appends mfra, writes mehd into
// its placeholder and sidx into the reserved room, and syncs. Recording and
// repair both end here, so every recording exercises the repair path. Each
// step leaves a playable file if power fails in the middle, and running it
// again is harmless.
func finalize(f file, lay *layout) error {
	if len(lay.frags) == 0 {
		return errNoMedia
	}
	if err := f.Truncate(lay.end); err != nil {
		return fmt.Errorf("truncate after the last fragment: %w", err)
	}
	if _, err := f.WriteAt(appendMfra(nil, lay), lay.end); err != nil {
		return fmt.Errorf("write mfra: %w", err)
	}
	if lay.mehdAt >= 0 {
		var w boxes
		mehd := w.startFull("mehd", 1, 0)
		w.u64(uint64(lay.duration() / time.Millisecond))
		w.end(mehd)
		if _, err := f.WriteAt(w.b, lay.mehdAt); err != nil {
			return fmt.Errorf("write mehd: %w", err)
		}
	}
	if region := buildSidx(lay); region != nil {
		// The region's header turns into a free box over all of it first,
		// the sidx body goes in behind that header, and the header becomes
		// the sidx last: a power cut between the steps leaves a box that
		// players skip, never half an index.
		var free [8]byte
		binary.BigEndian.PutUint32(free[:], uint32(len(region)))
		copy(free[4:], "free")
		if _, err := f.WriteAt(free[:], lay.moovEnd); err != nil {
			return fmt.Errorf("write sidx: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		if _, err := f.WriteAt(region[8:], lay.moovEnd+8); err != nil {
			return fmt.Errorf("write sidx: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		if _, err := f.WriteAt(region[:8], lay.moovEnd); err != nil {
			return fmt.Errorf("write sidx: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	lay.indexed = true
	return nil
}

const (
	sidxHeaderSize = 40 // version 1, up to the reference count
	sidxRefSize    = 12
)

// buildSidx returns the new content of the reserved region: a sidx per
// track over all fragments, followed by a free box filling the rest, or nil
// when the region is too small. Each track gets its own sidx (as ffmpeg's
// global_sidx does): a demuxer that seeks every stream needs times for every
// stream, and with only a video sidx ffmpeg lands the audio seek, and so the
// read position, on the wrong fragment. Fragments share a reference when
// there are more than the region holds; a player then reads from that
// reference's first fragment on.
//
// A reference always starts at a fragment that starts with a keyframe (a
// fragment cut after a second without one does not): ffmpeg seeks to the
// reference and looks for the keyframe only in what it has read from there.
func buildSidx(lay *layout) []byte {
	region := lay.regionEnd - lay.moovEnd
	var slots []int
	for slot, t := range lay.tracks {
		if t.id != 0 {
			slots = append(slots, slot)
		}
	}
	tracks := int64(len(slots))
	n := int64(len(lay.frags))
	if tracks == 0 || n == 0 {
		return nil
	}
	maxRefs := (region - tracks*sidxHeaderSize - 8) / (tracks * sidxRefSize)
	if maxRefs < 1 {
		return nil
	}
	var starts []int64 // first fragment of each reference
	for i := range n {
		if v := lay.frags[i].tracks[0]; i == 0 || lay.tracks[0].id == 0 || (v.traf != 0 && v.sync == 0) {
			starts = append(starts, i)
		}
	}
	if per := (int64(len(starts)) + maxRefs - 1) / maxRefs; per > 1 {
		kept := starts[:0]
		for i := 0; i < len(starts); i += int(per) {
			kept = append(kept, starts[i])
		}
		starts = kept
	}
	groups := int64(len(starts))
	sidxSize := sidxHeaderSize + groups*sidxRefSize

	var w boxes
	w.b = make([]byte, 0, region)
	for i, slot := range slots {
		t := lay.tracks[slot]
		start := func(f *fragment) uint64 { return fragTime(lay, f, slot, false) }
		sidx := w.startFull("sidx", 1, 0)
		w.u32(t.id)
		w.u32(t.timescale)
		w.u64(start(&lay.frags[0]))
		// first_offset: from the end of this sidx over the ones after it
		// and the free filler to the first moof.
		w.u64(uint64(region - int64(i+1)*sidxSize))
		w.u16(0)
		w.u16(uint16(groups))
		for g := range groups {
			first, last := starts[g], n
			if g+1 < groups {
				last = starts[g+1]
			}
			var size int64
			for i := first; i < last; i++ {
				size += lay.frags[i].size
			}
			if size >= 1<<31 {
				return nil
			}
			begin := start(&lay.frags[first])
			var end uint64
			if last < n {
				end = start(&lay.frags[last])
			} else {
				end = fragTime(lay, &lay.frags[n-1], slot, true)
			}
			w.u32(uint32(size))
			w.u32(uint32(max(end, begin) - begin))
			if ft := lay.frags[first].tracks[slot]; ft.traf != 0 && ft.sync == 0 {
				w.u32(1<<31 | 1<<28) // starts with SAP, type 1
			} else {
				w.u32(0)
			}
		}
		w.end(sidx)
	}
	free := w.start("free")
	w.zeros(int(region) - len(w.b))
	w.end(free)
	return w.b
}

// fragTime is a fragment's start (or end) in the timescale of track slot,
// converted from the other track when the fragment has none of it.
func fragTime(lay *layout, f *fragment, slot int, end bool) uint64 {
	t := f.tracks[slot]
	if t.traf != 0 {
		if end {
			return t.base + t.duration
		}
		return t.base
	}
	other := 1 - slot
	o := f.tracks[other]
	v := o.base
	if end {
		v += o.duration
	}
	return toTimescale(ticksToDuration(v, lay.tracks[other].timescale), lay.tracks[slot].timescale)
}

// appendMfra writes the movie fragment random access box: for video each
// fragment's first keyframe, for audio each fragment's first sample.
func appendMfra(b []byte, lay *layout) []byte {
	w := boxes{b: b}
	mfra := w.start("mfra")
	for slot, t := range lay.tracks {
		if t.id == 0 {
			continue
		}
		tfra := w.startFull("tfra", 1, 0)
		w.u32(t.id)
		w.u32(0x1) // traf and trun numbers in 1 byte, sample numbers in 2
		count := len(w.b)
		w.u32(0)
		entries := uint32(0)
		for i := range lay.frags {
			f := &lay.frags[i]
			ft := f.tracks[slot]
			if ft.traf == 0 || ft.sync < 0 || ft.sync >= 0xffff {
				continue
			}
			w.u64(ft.syncTime)
			w.u64(uint64(f.offset))
			w.u8(ft.traf)
			w.u8(1)
			w.u16(uint16(ft.sync + 1))
			entries++
		}
		binary.BigEndian.PutUint32(w.b[count:], entries)
		w.end(tfra)
	}
	total := uint32(len(w.b) - mfra + 16) // mfro is 16 bytes
	mfro := w.startFull("mfro", 0, 0)
	w.u32(total)
	w.end(mfro)
	w.end(mfra)
	return w.b
}
