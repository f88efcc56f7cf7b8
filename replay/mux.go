package replay

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// The file layout, written by muxer and read back by scan:
//
//	ftyp
//	moov     mvhd, trak (avc1+avcC, 90 kHz), [trak (Opus+dOps, 48 kHz)],
//	         mvex (free placeholder for mehd, trex per track)
//	free     reserveSize bytes; becomes sidx + free when the replay is finished
//	moof+mdat, moof+mdat, ...   one pair per fragment (~1 s), fsynced one by one;
//	         each moof holds a free box with the CRC-32 of its mdat payload
//	mfra     tfra per track + mfro, appended when the replay is finished
const (
	videoTrackID   = 1
	audioTrackID   = 2
	videoTimescale = 90000
	audioTimescale = 48000
	movieTimescale = 1000

	// opusPreSkip is libopus's look-ahead at 48 kHz (RFC 7845 5.1 asks
	// for it in the header); the decoder throws these samples away.
	opusPreSkip = 312

	// reserveSize is the room kept after moov for the segment indexes (one
	// sidx per track). 64 KiB holds 2,727 references per track; a reference
	// starts at each keyframe fragment, so with 2 s keyframes that is 90
	// minutes, and longer replays put several keyframe groups in one.
	reserveSize = 64 << 10
	// mehdSize is a version-1 mehd box; a free box of that size holds its
	// place in mvex while recording, when the duration is still unknown.
	mehdSize = 20
)

// Fragment cutting: a fragment is cut before a video keyframe once it holds
// fragmentMinKeyframe of media, before any video sample once it holds
// fragmentTarget, and before any sample at all (video stalled) once it
// holds fragmentMax or fragmentMaxBytes. A crash loses at most the
// fragment being built, so about one second.
const (
	fragmentTarget      = time.Second
	fragmentMinKeyframe = 500 * time.Millisecond
	fragmentMax         = 2 * time.Second
	fragmentMaxBytes    = 8 << 20
)

// checksumTag starts the free box in each moof that holds the CRC-32 (IEEE)
// of the fragment's mdat payload.
const checksumTag = "ocrc"

// ISO BMFF sample flags (14496-12 8.8.3.1).
const (
	flagsSync    = 0x02000000 // sample_depends_on=2 (an I picture), sync
	flagsNonSync = 0x01010000 // sample_depends_on=1, sample_is_non_sync_sample
)

// tfhd and trun flags we write.
const (
	tfhdDefaultFlags       = 0x000020
	tfhdDefaultBaseIsMoof  = 0x020000
	trunDataOffset         = 0x000001
	trunFirstSampleFlags   = 0x000004
	trunSampleDuration     = 0x000100
	trunSampleSize         = 0x000200
	trunSampleFlags        = 0x000400
	trunSampleCompositionT = 0x000800
)

// initParams is what the init segment (ftyp+moov) describes. It is fixed by
// the first fragment: the first keyframe's parameter sets and whether audio
// came with it.
type initParams struct {
	sps, pps      []byte // NAL units, no start code; own copies
	info          spsInfo
	audio         bool
	audioChannels int
}

type sampleEntry struct {
	dts      uint64 // decode time in the track's timescale
	duration uint32
	size     uint32
	flags    uint32
}

// trackBuf collects one track's part of the fragment being built.
type trackBuf struct {
	timescale uint32
	samples   []sampleEntry
	data      []byte
	lastDTS   uint64 // of the last sample added, across fragments
	any       bool   // a sample was ever added
}

func (t *trackBuf) reset() {
	t.samples = t.samples[:0]
	t.data = t.data[:0]
}

// fragTrack describes one track in one written fragment: enough to build
// sidx and mfra without reading the file again.
type fragTrack struct {
	traf     uint8 // 1-based traf number within the moof; 0: track absent
	samples  uint32
	base     uint64 // decode time of the first sample
	duration uint64
	sync     int32  // index of the first sync sample, -1 when none
	syncTime uint64 // decode time of that sample
}

// fragment is one moof+mdat pair in the file.
type fragment struct {
	offset, size int64
	tracks       [2]fragTrack // video, audio
}

func (f *fragment) end() int64 { return f.offset + f.size }

// muxer turns samples into fragments. It never touches the file: cut
// serializes a fragment into a reused buffer and the recorder writes it. It
// allocates nothing per sample once its buffers have grown.
type muxer struct {
	params     initParams
	haveParams bool
	// initWritten is set by the recorder once the init segment is on disk;
	// until then every cut output starts with it.
	initWritten bool

	// origin is the capture time that maps to media time 0. A discontinuity
	// (samples dropped) moves it so that the timeline has no hole.
	origin  time.Duration
	waitKey bool // drop everything until a video keyframe
	// keyCapture is the capture time of the keyframe that (re)started the
	// timeline: older audio would overlap what is already written.
	keyCapture time.Duration
	// writtenEnd is the media time where the written fragments end; the
	// keyframe after a discontinuity continues from there.
	writtenEnd time.Duration

	video, audio trackBuf
	fragStart    time.Duration // capture time of the fragment's first sample
	seq          uint32
	out          boxes
}

func newMuxer() *muxer {
	m := &muxer{waitKey: true}
	m.video.timescale = videoTimescale
	m.audio.timescale = audioTimescale
	return m
}

// toTimescale converts a media time to ticks of a timescale, rounding to
// the nearest tick; absolute conversion keeps rounding from accumulating.
func toTimescale(d time.Duration, timescale uint32) uint64 {
	if d <= 0 {
		return 0
	}
	ts := int64(timescale)
	sec, frac := int64(d/time.Second), int64(d%time.Second)
	return uint64(sec*ts + (frac*ts+int64(time.Second)/2)/int64(time.Second))
}

// empty tells whether the fragment being built holds no sample.
func (m *muxer) empty() bool { return len(m.video.samples) == 0 && len(m.audio.samples) == 0 }

// needCut tells whether the fragment being built should be cut before s.
func (m *muxer) needCut(s media.Sample) bool {
	if m.empty() {
		return false
	}
	if len(m.video.data)+len(m.audio.data) >= fragmentMaxBytes {
		return true
	}
	held := s.Capture - m.fragStart
	if s.Kind == media.Video {
		return held >= fragmentTarget || (s.Keyframe && held >= fragmentMinKeyframe)
	}
	return held >= fragmentMax
}

// discontinuity throws away the fragment being built and drops what
// follows until the next video keyframe, which then continues the timeline
// where the written fragments end: the replay skips what could not be
// recorded instead of freezing over it.
func (m *muxer) discontinuity() {
	m.video.reset()
	m.audio.reset()
	m.video.any, m.audio.any = false, false
	m.waitKey = true
}

// written records that the recorder put a fragment from cut on disk.
func (m *muxer) written(f *fragment) {
	m.initWritten = true
	for i, ts := range [2]uint32{videoTimescale, audioTimescale} {
		t := f.tracks[i]
		if t.traf == 0 {
			continue
		}
		end := ticksToDuration(t.base+t.duration, ts)
		if end > m.writtenEnd {
			m.writtenEnd = end
		}
	}
}

func ticksToDuration(ticks uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	return time.Duration(ticks/ts)*time.Second + time.Duration(ticks%ts*uint64(time.Second)/ts)
}

// add appends a sample to the fragment being built. It reports false when
// the sample was dropped: before the first keyframe with parameter sets,
// after a discontinuity until a keyframe, audio older than the video start.
func (m *muxer) add(s media.Sample) bool {
	switch s.Kind {
	case media.Video:
		if m.waitKey {
			if !s.Keyframe {
				return false
			}
			if !m.haveParams && !m.takeParams(s.Data) {
				return false
			}
			m.origin = s.Capture - m.writtenEnd
			m.waitKey, m.keyCapture = false, s.Capture
		}
		return m.addVideo(s)
	case media.Audio:
		if m.waitKey || s.Capture < m.keyCapture || len(s.Data) == 0 {
			return false
		}
		if m.initWritten && !m.params.audio {
			return false // the file has no audio track
		}
		return m.addAudio(s)
	}
	return false
}

// takeParams keeps the keyframe's SPS and PPS for the init segment.
func (m *muxer) takeParams(au []byte) bool {
	sps, pps := h264.ParameterSets(au)
	if sps == nil || pps == nil {
		return false
	}
	info, err := parseSPS(sps)
	if err != nil {
		return false
	}
	m.params.sps = append([]byte(nil), sps...)
	m.params.pps = append([]byte(nil), pps...)
	m.params.info = info
	m.haveParams = true
	return true
}

func (m *muxer) startSample(t *trackBuf, capture, own time.Duration) (dts uint64, duration uint32) {
	if m.empty() {
		m.fragStart = capture
	}
	dts = toTimescale(capture-m.origin, t.timescale)
	if t.any && dts <= t.lastDTS {
		dts = t.lastDTS + 1 // never let decode time stand still or go back
	}
	if n := len(t.samples); n > 0 {
		t.samples[n-1].duration = uint32(dts - t.samples[n-1].dts)
	}
	t.lastDTS, t.any = dts, true
	duration = uint32(toTimescale(own, t.timescale))
	return dts, duration
}

func (m *muxer) addVideo(s media.Sample) bool {
	start := len(m.video.data)
	for nal, rest := h264.NextNAL(s.Data); nal != nil; nal, rest = h264.NextNAL(rest) {
		switch h264.Type(nal) {
		case h264.TypeAUD, 12: // access unit delimiter, filler: no use in a file
			continue
		}
		m.video.data = binary.BigEndian.AppendUint32(m.video.data, uint32(len(nal)))
		m.video.data = append(m.video.data, nal...)
	}
	size := len(m.video.data) - start
	if size == 0 {
		return false
	}
	own := s.Duration
	if own <= 0 {
		own = time.Second / 30
	}
	dts, duration := m.startSample(&m.video, s.Capture, own)
	flags := uint32(flagsNonSync)
	if s.Keyframe {
		flags = flagsSync
	}
	m.video.samples = append(m.video.samples, sampleEntry{dts: dts, duration: duration, size: uint32(size), flags: flags})
	return true
}

func (m *muxer) addAudio(s media.Sample) bool {
	if !m.initWritten && !m.params.audio {
		// The first packet decides the channel count (TOC byte, RFC 6716 3.1).
		m.params.audio = true
		m.params.audioChannels = 1
		if s.Data[0]&0x04 != 0 {
			m.params.audioChannels = 2
		}
	}
	own := s.Duration
	if own <= 0 {
		own = 20 * time.Millisecond
	}
	dts, duration := m.startSample(&m.audio, s.Capture, own)
	m.audio.data = append(m.audio.data, s.Data...)
	m.audio.samples = append(m.audio.samples, sampleEntry{dts: dts, duration: duration, size: uint32(len(s.Data)), flags: flagsSync})
	return true
}

// cut serializes the fragment being built (preceded by the init segment
// until that is written) and empties it. next is the capture time of the
// video sample that caused the cut, which gives the last video sample its
// exact duration; hasNext false uses the sample's own duration. Audio that
// plays past next stays for the following fragment, so that each fragment's
// audio starts no later than its video: a demuxer that seeks audio and video
// separately (ffmpeg, and so Chrome) then lands both in the same fragment.
// out is valid until the next cut; frag.offset is relative to out.
func (m *muxer) cut(next time.Duration, hasNext bool) (out []byte, frag fragment, initLen int) {
	m.out.b = m.out.b[:0]
	if m.empty() {
		return nil, frag, 0
	}
	count := [2]int{len(m.video.samples), len(m.audio.samples)}
	if hasNext {
		if n := count[0]; n > 0 {
			last := &m.video.samples[n-1]
			if d := toTimescale(next-m.origin, videoTimescale); d > last.dts {
				last.duration = uint32(d - last.dts)
			}
		}
		cutAt := toTimescale(next-m.origin, audioTimescale)
		for count[1] > 0 {
			last := m.audio.samples[count[1]-1]
			if last.dts+uint64(last.duration) <= cutAt {
				break
			}
			count[1]--
		}
	}
	if count[0] == 0 && count[1] == 0 {
		return nil, frag, 0
	}
	if !m.initWritten {
		appendInit(&m.out, &m.params)
		initLen = len(m.out.b)
	}
	m.seq++
	frag.offset = int64(initLen)
	moof := m.out.start("moof")
	mfhd := m.out.startFull("mfhd", 0, 0)
	m.out.u32(m.seq)
	m.out.end(mfhd)
	// A checksum of the media data, in a free box that players skip: after
	// a power cut, the repair tells a fragment whose data never reached the
	// disk (zeros, or old blocks) from one that did.
	check := m.out.start("free")
	m.out.str(checksumTag)
	checkAt := len(m.out.b)
	m.out.u32(0)
	m.out.end(check)
	var offsetFields, size [2]int
	traf := uint8(0)
	for i, t := range [2]*trackBuf{&m.video, &m.audio} {
		offsetFields[i] = -1
		if count[i] == 0 {
			continue
		}
		samples := t.samples[:count[i]]
		for _, s := range samples {
			size[i] += int(s.size)
		}
		traf++
		frag.tracks[i] = describe(samples, traf)
		offsetFields[i] = appendTraf(&m.out, uint32(i+1), samples)
	}
	m.out.end(moof)
	moofSize := len(m.out.b) - initLen
	dataOffset := moofSize + 8
	for i := range offsetFields {
		if offsetFields[i] >= 0 {
			binary.BigEndian.PutUint32(m.out.b[offsetFields[i]:], uint32(dataOffset))
			dataOffset += size[i]
		}
	}
	sum := crc32.ChecksumIEEE(m.video.data[:size[0]])
	sum = crc32.Update(sum, crc32.IEEETable, m.audio.data[:size[1]])
	binary.BigEndian.PutUint32(m.out.b[checkAt:], sum)
	m.out.u32(uint32(8 + size[0] + size[1]))
	m.out.str("mdat")
	m.out.bytes(m.video.data[:size[0]])
	m.out.bytes(m.audio.data[:size[1]])
	frag.size = int64(len(m.out.b) - initLen)
	m.video.reset()
	m.audio.keepFrom(count[1], size[1])
	if len(m.audio.samples) > 0 {
		m.fragStart = next
	}
	return m.out.b, frag, initLen
}

// keepFrom drops the first n samples (bytes of data) and keeps the rest at
// the front of the buffers.
func (t *trackBuf) keepFrom(n, bytes int) {
	t.samples = t.samples[:copy(t.samples, t.samples[n:])]
	t.data = t.data[:copy(t.data, t.data[bytes:])]
}

// describe summarizes a track's samples for the index.
func describe(samples []sampleEntry, traf uint8) fragTrack {
	ft := fragTrack{traf: traf, samples: uint32(len(samples)), base: samples[0].dts, sync: -1}
	for i, s := range samples {
		ft.duration += uint64(s.duration)
		if ft.sync < 0 && s.flags&0x00010000 == 0 {
			ft.sync, ft.syncTime = int32(i), s.dts
		}
	}
	return ft
}

// appendTraf writes one track's traf and returns the position of the trun
// data_offset field, which cut fills in once the moof size is known.
func appendTraf(w *boxes, trackID uint32, samples []sampleEntry) int {
	audio := trackID == audioTrackID
	traf := w.start("traf")
	if audio {
		tfhd := w.startFull("tfhd", 0, tfhdDefaultBaseIsMoof|tfhdDefaultFlags)
		w.u32(trackID)
		w.u32(flagsSync)
		w.end(tfhd)
	} else {
		tfhd := w.startFull("tfhd", 0, tfhdDefaultBaseIsMoof)
		w.u32(trackID)
		w.end(tfhd)
	}
	tfdt := w.startFull("tfdt", 1, 0)
	w.u64(samples[0].dts)
	w.end(tfdt)
	flags := uint32(trunDataOffset | trunSampleDuration | trunSampleSize)
	if !audio {
		flags |= trunSampleFlags
	}
	trun := w.startFull("trun", 0, flags)
	w.u32(uint32(len(samples)))
	field := len(w.b)
	w.u32(0) // data_offset, filled in by cut
	for _, s := range samples {
		w.u32(s.duration)
		w.u32(s.size)
		if !audio {
			w.u32(s.flags)
		}
	}
	w.end(trun)
	w.end(traf)
	return field
}

var unityMatrix = [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}

// appendInit writes ftyp, moov and the reserved free box.
func appendInit(w *boxes, p *initParams) {
	ftyp := w.start("ftyp")
	w.str("isom")
	w.u32(0x200)
	w.str("isomiso6avc1mp41")
	w.end(ftyp)

	moov := w.start("moov")
	mvhd := w.startFull("mvhd", 0, 0)
	w.u32(0) // creation_time: the sidecar has the wall clock, which may be wrong here
	w.u32(0) // modification_time
	w.u32(movieTimescale)
	w.u32(0) // duration: fragmented; mehd carries it once finished
	w.u32(0x00010000)
	w.u16(0x0100)
	w.zeros(10)
	for _, v := range unityMatrix {
		w.u32(v)
	}
	w.zeros(24)
	next := uint32(videoTrackID + 1)
	if p.audio {
		next = audioTrackID + 1
	}
	w.u32(next)
	w.end(mvhd)

	appendTrak(w, p, videoTrackID)
	if p.audio {
		appendTrak(w, p, audioTrackID)
	}

	mvex := w.start("mvex")
	free := w.start("free") // the place of mehd
	w.zeros(mehdSize - 8)
	w.end(free)
	for id := uint32(videoTrackID); id < next; id++ {
		trex := w.startFull("trex", 0, 0)
		w.u32(id)
		w.u32(1) // sample description index
		w.u32(0) // default duration, size, flags: every trun says
		w.u32(0)
		w.u32(0)
		w.end(trex)
	}
	w.end(mvex)
	w.end(moov)

	reserve := w.start("free")
	w.zeros(reserveSize - 8)
	w.end(reserve)
}

func appendTrak(w *boxes, p *initParams, id uint32) {
	audio := id == audioTrackID
	trak := w.start("trak")
	tkhd := w.startFull("tkhd", 0, 3) // enabled, in movie
	w.u32(0)
	w.u32(0)
	w.u32(id)
	w.u32(0)
	w.u32(0) // duration
	w.zeros(8)
	w.u16(0) // layer
	w.u16(0) // alternate group
	if audio {
		w.u16(0x0100)
	} else {
		w.u16(0)
	}
	w.u16(0)
	for _, v := range unityMatrix {
		w.u32(v)
	}
	if audio {
		w.u32(0)
		w.u32(0)
	} else {
		w.u32(uint32(p.info.width) << 16)
		w.u32(uint32(p.info.height) << 16)
	}
	w.end(tkhd)

	mdia := w.start("mdia")
	mdhd := w.startFull("mdhd", 0, 0)
	w.u32(0)
	w.u32(0)
	if audio {
		w.u32(audioTimescale)
	} else {
		w.u32(videoTimescale)
	}
	w.u32(0)
	w.u16(0x55c4) // "und"
	w.u16(0)
	w.end(mdhd)
	hdlr := w.startFull("hdlr", 0, 0)
	w.u32(0)
	if audio {
		w.str("soun")
	} else {
		w.str("vide")
	}
	w.zeros(12)
	if audio {
		w.str("SoundHandler\x00")
	} else {
		w.str("VideoHandler\x00")
	}
	w.end(hdlr)

	minf := w.start("minf")
	if audio {
		smhd := w.startFull("smhd", 0, 0)
		w.u32(0)
		w.end(smhd)
	} else {
		vmhd := w.startFull("vmhd", 0, 1)
		w.zeros(8)
		w.end(vmhd)
	}
	dinf := w.start("dinf")
	dref := w.startFull("dref", 0, 0)
	w.u32(1)
	url := w.startFull("url ", 0, 1) // media in this file
	w.end(url)
	w.end(dref)
	w.end(dinf)

	stbl := w.start("stbl")
	stsd := w.startFull("stsd", 0, 0)
	w.u32(1)
	if audio {
		appendOpusEntry(w, p)
	} else {
		appendAVC1Entry(w, p)
	}
	w.end(stsd)
	for _, typ := range [...]string{"stts", "stsc", "stco"} {
		b := w.startFull(typ, 0, 0)
		w.u32(0)
		w.end(b)
	}
	stsz := w.startFull("stsz", 0, 0)
	w.u32(0)
	w.u32(0)
	w.end(stsz)
	w.end(stbl)
	w.end(minf)
	w.end(mdia)
	w.end(trak)
}

func appendAVC1Entry(w *boxes, p *initParams) {
	avc1 := w.start("avc1")
	w.zeros(6)
	w.u16(1) // data reference index
	w.zeros(16)
	w.u16(uint16(p.info.width))
	w.u16(uint16(p.info.height))
	w.u32(0x00480000) // 72 dpi
	w.u32(0x00480000)
	w.u32(0)
	w.u16(1) // frame count
	w.zeros(32)
	w.u16(0x0018)
	w.u16(0xffff)
	avcC := w.start("avcC")
	w.u8(1)
	w.u8(p.info.profile)
	w.u8(p.info.constraints)
	w.u8(p.info.level)
	w.u8(0xfc | 3) // 4-byte NAL lengths
	w.u8(0xe0 | 1)
	w.u16(uint16(len(p.sps)))
	w.bytes(p.sps)
	w.u8(1)
	w.u16(uint16(len(p.pps)))
	w.bytes(p.pps)
	if highProfile(p.info.profile) {
		w.u8(0xfc | byte(p.info.chromaFormat))
		w.u8(0xf8 | byte(p.info.bitDepthLuma))
		w.u8(0xf8 | byte(p.info.bitDepthChroma))
		w.u8(0)
	}
	w.end(avcC)
	w.end(avc1)
}

func appendOpusEntry(w *boxes, p *initParams) {
	opus := w.start("Opus")
	w.zeros(6)
	w.u16(1)
	w.zeros(8)
	w.u16(uint16(p.audioChannels))
	w.u16(16)
	w.u16(0)
	w.u16(0)
	w.u32(audioTimescale << 16)
	// dOps is big-endian, unlike the OpusHead it mirrors (Opus in
	// ISOBMFF, 4.3.2).
	dops := w.start("dOps")
	w.u8(0)
	w.u8(uint8(p.audioChannels))
	w.u16(opusPreSkip)
	w.u32(audioTimescale)
	w.u16(0) // output gain
	w.u8(0)  // channel mapping family 0: mono or stereo
	w.end(dops)
	w.end(opus)
}
