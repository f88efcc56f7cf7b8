package replay

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// scan reads the structure of a replay file, which may have been cut
// anywhere by a crash or power loss, or hold zeros where the file system
// had not written the data yet (caught by the fragment's checksum). It returns the layout up to the end
// of the last complete, consistent fragment; finalize then truncates there
// and writes the index. The file is outside input: every size is checked
// before it is used and nothing is allocated from a size in the file
// beyond fixed caps.

var (
	errNotReplay = errors.New("not a replay file (no ftyp and moov at the start)")
	errNoMedia   = errors.New("no complete fragment")
)

const (
	maxMoovSize   = 1 << 20
	maxMoofSize   = 4 << 20
	maxSampleSize = 16 << 20
)

// trackInfo is one track of the moov as scan found it.
type trackInfo struct {
	id        uint32
	timescale uint32
	// trex defaults, used where tfhd and trun leave a value out
	defDuration, defSize, defFlags uint32
}

// layout is where things are in a replay file.
type layout struct {
	tracks [2]trackInfo // video, audio; id 0 when absent
	// moovEnd..regionEnd is the room reserved for the sidx: a free box
	// while recording, sidx and free once finished.
	moovEnd, regionEnd int64
	mehdAt             int64 // offset of the mehd placeholder in mvex, -1 if none
	frags              []fragment
	// end is the end of the last good fragment: where the file is cut.
	end int64
	// indexed tells that an mfra followed the fragments.
	indexed bool
}

// payload is where a fragment's media data lies and its checksum.
type payload struct {
	start, end int64
	sum        uint32
	hasSum     bool
}

type scanner struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	lay  layout
	// media data of the fragment being parsed and of the last accepted one
	cur, last payload
}

func scan(r io.ReaderAt, size int64) (layout, error) {
	s := &scanner{r: r, size: size}
	s.lay.mehdAt = -1
	err := s.run()
	if err == nil && len(s.lay.frags) > 0 && !s.lastFragmentIntact() {
		// Only the last fragment can be damaged: each one before it was
		// synced before the next was written.
		s.lay.frags = s.lay.frags[:len(s.lay.frags)-1]
		s.lay.indexed = false
		if n := len(s.lay.frags); n > 0 {
			s.lay.end = s.lay.frags[n-1].end()
		} else {
			s.lay.end = s.lay.regionEnd
		}
	}
	if err == nil && len(s.lay.frags) == 0 {
		err = errNoMedia
	}
	return s.lay, err
}

// header reads a box header at off; ok is false when no complete, sane box
// starts there.
func (s *scanner) header(off, limit int64) (typ string, size int64, hdr int64, ok bool) {
	var h [16]byte
	if limit-off < 8 {
		return "", 0, 0, false
	}
	if _, err := s.r.ReadAt(h[:8], off); err != nil {
		return "", 0, 0, false
	}
	size, hdr = int64(binary.BigEndian.Uint32(h[:4])), 8
	if size == 1 {
		if limit-off < 16 {
			return "", 0, 0, false
		}
		if _, err := s.r.ReadAt(h[8:16], off+8); err != nil {
			return "", 0, 0, false
		}
		size, hdr = int64(binary.BigEndian.Uint64(h[8:16])), 16
	}
	// size 0 ("to the end of the file") is never written by us: it is
	// what a zero-filled tail looks like.
	if size < hdr || size > limit-off {
		return "", 0, 0, false
	}
	return string(h[4:8]), size, hdr, true
}

func (s *scanner) read(off, n int64) ([]byte, bool) {
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := s.r.ReadAt(b, off); err != nil {
		return nil, false
	}
	return b, true
}

func (s *scanner) run() error {
	typ, size, _, ok := s.header(0, s.size)
	if !ok || typ != "ftyp" {
		return errNotReplay
	}
	off := size
	typ, size, hdr, ok := s.header(off, s.size)
	if !ok || typ != "moov" || size > maxMoovSize {
		return errNotReplay
	}
	moov, ok := s.read(off+hdr, size-hdr)
	if !ok || !s.parseMoov(moov, off+hdr) {
		return errNotReplay
	}
	off += size
	s.lay.moovEnd, s.lay.regionEnd, s.lay.end = off, off, off
	for {
		typ, size, hdr, ok := s.header(off, s.size)
		if !ok {
			return nil
		}
		switch typ {
		case "moof":
			if size > maxMoofSize {
				return nil
			}
			frag, ok := s.fragment(off, size, hdr)
			if !ok {
				return nil
			}
			if len(s.lay.frags) == 0 {
				s.lay.regionEnd = off
			}
			s.lay.frags = append(s.lay.frags, frag)
			s.last = s.cur
			off = frag.end()
			s.lay.end = off
		case "mfra":
			s.lay.indexed = len(s.lay.frags) > 0 && off+size == s.size
			return nil
		case "mdat":
			return nil // media data without its moof: the fragment is gone
		default:
			off += size
			if len(s.lay.frags) == 0 {
				s.lay.regionEnd, s.lay.end = off, off
			}
		}
	}
}

// children calls fn for each complete box in p (absolute offset base).
func children(p []byte, base int64, fn func(typ string, body []byte, at int64) bool) bool {
	for len(p) > 0 {
		if len(p) < 8 {
			return false
		}
		size := int64(binary.BigEndian.Uint32(p))
		if size < 8 || size > int64(len(p)) {
			return false
		}
		if !fn(string(p[4:8]), p[8:size], base) {
			return false
		}
		p, base = p[size:], base+size
	}
	return true
}

func (s *scanner) parseMoov(moov []byte, base int64) bool {
	n := 0
	ok := children(moov, base, func(typ string, body []byte, at int64) bool {
		switch typ {
		case "trak":
			t, video, ok := parseTrak(body)
			if !ok {
				return false
			}
			slot := 1
			if video {
				slot = 0
			}
			if s.lay.tracks[slot].id != 0 {
				return false // one track of each kind
			}
			s.lay.tracks[slot] = t
			n++
		case "mvex":
			return children(body, at+8, func(typ string, body []byte, at int64) bool {
				switch typ {
				case "free", "mehd":
					if len(body)+8 == mehdSize && s.lay.mehdAt < 0 {
						s.lay.mehdAt = at
					}
				case "trex":
					if len(body) < 24 {
						return false
					}
					id := binary.BigEndian.Uint32(body[4:])
					for i := range s.lay.tracks {
						if t := &s.lay.tracks[i]; t.id == id && id != 0 {
							t.defDuration = binary.BigEndian.Uint32(body[12:])
							t.defSize = binary.BigEndian.Uint32(body[16:])
							t.defFlags = binary.BigEndian.Uint32(body[20:])
						}
					}
				}
				return true
			})
		}
		return true
	})
	return ok && n > 0 && s.lay.tracks[0].id != 0
}

// parseTrak finds the track id, timescale and kind.
func parseTrak(trak []byte) (t trackInfo, video bool, ok bool) {
	var handler string
	children(trak, 0, func(typ string, body []byte, _ int64) bool {
		switch typ {
		case "tkhd":
			if len(body) >= 16 && body[0] == 0 {
				t.id = binary.BigEndian.Uint32(body[12:])
			} else if len(body) >= 24 && body[0] == 1 {
				t.id = binary.BigEndian.Uint32(body[20:])
			}
		case "mdia":
			children(body, 0, func(typ string, body []byte, _ int64) bool {
				switch typ {
				case "mdhd":
					if len(body) >= 16 && body[0] == 0 {
						t.timescale = binary.BigEndian.Uint32(body[12:])
					} else if len(body) >= 24 && body[0] == 1 {
						t.timescale = binary.BigEndian.Uint32(body[20:])
					}
				case "hdlr":
					if len(body) >= 12 {
						handler = string(body[8:12])
					}
				}
				return true
			})
		}
		return true
	})
	video = handler == "vide"
	ok = t.id != 0 && t.timescale != 0 && (video || handler == "soun")
	return t, video, ok
}

func (s *scanner) slot(trackID uint32) int {
	for i, t := range s.lay.tracks {
		if t.id == trackID && trackID != 0 {
			return i
		}
	}
	return -1
}

// fragment parses the moof at off and checks that a complete mdat follows
// it holding every sample the moof points at.
func (s *scanner) fragment(off, size, hdr int64) (fragment, bool) {
	frag := fragment{offset: off}
	mdatTyp, mdatSize, mdatHdr, ok := s.header(off+size, s.size)
	if !ok || mdatTyp != "mdat" {
		return frag, false
	}
	dataStart, dataEnd := off+size+mdatHdr, off+size+mdatSize
	frag.size = size + mdatSize
	moof, ok := s.read(off+hdr, size-hdr)
	if !ok {
		return frag, false
	}
	s.cur = payload{start: dataStart, end: dataEnd}
	traf := uint8(0)
	ok = children(moof, 0, func(typ string, body []byte, _ int64) bool {
		if typ == "free" && len(body) == 8 && string(body[:4]) == checksumTag {
			s.cur.sum, s.cur.hasSum = binary.BigEndian.Uint32(body[4:]), true
		}
		if typ != "traf" {
			return true
		}
		traf++
		return s.traf(body, &frag, traf, off, dataStart, dataEnd)
	})
	return frag, ok && traf > 0
}

func (s *scanner) traf(body []byte, frag *fragment, traf uint8, moofAt, dataStart, dataEnd int64) bool {
	var (
		slot                           = -1
		base                           int64
		defDuration, defSize, defFlags uint32
		haveTime                       bool
		ft                             = fragTrack{traf: traf, sync: -1}
		next                           int64 // where a trun without data_offset starts
		dts                            uint64
	)
	return children(body, 0, func(typ string, b []byte, _ int64) bool {
		switch typ {
		case "tfhd":
			if len(b) < 8 {
				return false
			}
			flags := binary.BigEndian.Uint32(b) & 0xffffff
			slot = s.slot(binary.BigEndian.Uint32(b[4:]))
			if slot < 0 || frag.tracks[slot].traf != 0 {
				return false
			}
			t := s.lay.tracks[slot]
			defDuration, defSize, defFlags = t.defDuration, t.defSize, t.defFlags
			p := b[8:]
			base = moofAt
			if flags&0x1 != 0 {
				if len(p) < 8 {
					return false
				}
				base = int64(binary.BigEndian.Uint64(p))
				p = p[8:]
			} else if flags&tfhdDefaultBaseIsMoof == 0 {
				return false // only moof-relative offsets are ours
			}
			for _, f := range [...]struct {
				bit uint32
				dst *uint32
			}{{0x2, nil}, {0x8, &defDuration}, {0x10, &defSize}, {0x20, &defFlags}} {
				if flags&f.bit == 0 {
					continue
				}
				if len(p) < 4 {
					return false
				}
				if f.dst != nil {
					*f.dst = binary.BigEndian.Uint32(p)
				}
				p = p[4:]
			}
			next = base
		case "tfdt":
			if slot < 0 || len(b) < 8 {
				return false
			}
			if b[0] == 1 {
				if len(b) < 12 {
					return false
				}
				dts = binary.BigEndian.Uint64(b[4:])
			} else {
				dts = uint64(binary.BigEndian.Uint32(b[4:]))
			}
			ft.base, haveTime = dts, true
		case "trun":
			if slot < 0 || !haveTime || len(b) < 8 {
				return false
			}
			flags := binary.BigEndian.Uint32(b) & 0xffffff
			count := int64(binary.BigEndian.Uint32(b[4:]))
			p := b[8:]
			at := next
			if flags&trunDataOffset != 0 {
				if len(p) < 4 {
					return false
				}
				at = base + int64(int32(binary.BigEndian.Uint32(p)))
				p = p[4:]
			}
			firstFlags, haveFirst := uint32(0), false
			if flags&trunFirstSampleFlags != 0 {
				if len(p) < 4 {
					return false
				}
				firstFlags, haveFirst = binary.BigEndian.Uint32(p), true
				p = p[4:]
			}
			per := int64(0)
			for _, bit := range [...]uint32{trunSampleDuration, trunSampleSize, trunSampleFlags, trunSampleCompositionT} {
				if flags&bit != 0 {
					per += 4
				}
			}
			if count > 1<<20 || count*per > int64(len(p)) {
				return false
			}
			for i := range count {
				duration, size, sflags := defDuration, defSize, defFlags
				if flags&trunSampleDuration != 0 {
					duration, p = binary.BigEndian.Uint32(p), p[4:]
				}
				if flags&trunSampleSize != 0 {
					size, p = binary.BigEndian.Uint32(p), p[4:]
				}
				if flags&trunSampleFlags != 0 {
					sflags, p = binary.BigEndian.Uint32(p), p[4:]
				} else if i == 0 && haveFirst {
					sflags = firstFlags
				}
				if flags&trunSampleCompositionT != 0 {
					p = p[4:]
				}
				if at < dataStart || int64(size) > dataEnd-at || int64(size) > maxSampleSize {
					return false
				}
				if ft.sync < 0 && sflags&0x00010000 == 0 {
					ft.sync, ft.syncTime = int32(ft.samples), dts
				}
				at += int64(size)
				dts += uint64(duration)
				ft.duration += uint64(duration)
				ft.samples++
			}
			next = at
		}
		if slot >= 0 {
			frag.tracks[slot] = ft
		}
		return true
	}) && slot >= 0 && ft.samples > 0
}

// lastFragmentIntact checks the last fragment's media data against its
// checksum: after a power cut the file can have its full length with zeros
// (or stale blocks) where the data never reached the disk.
func (s *scanner) lastFragmentIntact() bool {
	p := s.last
	if !p.hasSum {
		return true
	}
	sum := uint32(0)
	for off := p.start; off < p.end; {
		n := min(p.end-off, 256<<10)
		b, ok := s.read(off, n)
		if !ok {
			return false
		}
		sum = crc32.Update(sum, crc32.IEEETable, b)
		off += n
	}
	return sum == p.sum
}
