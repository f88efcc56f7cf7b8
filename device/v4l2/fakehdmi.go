package v4l2

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// FakeHDMI makes a FakeCamera an HDMI-to-CSI-2 bridge: a TC358743 as the
// Pi's unicam (or, with Subdevice, rp1-cfe and the bridge's subdevice node)
// presents it. It enforces what those drivers enforce:
//
//   - VIDIOC_QUERY_DV_TIMINGS: ENOLINK until the cable is connected
//     (ConnectHDMI) and an EDID is loaded (a TC358743 keeps the hotplug line
//     low without one, so the source sends nothing); ENOLCK while the
//     signal is unstable; ERANGE for a mode beyond 1920x1200, 165 MHz;
//   - VIDIOC_S_DV_TIMINGS: ERANGE beyond the same limits, EBUSY while
//     buffers are allocated (unicam), EINVAL for a type other than BT.656;
//   - VIDIOC_S_EDID: EINVAL for a pad other than 0 or a start block other
//     than 0, E2BIG (with blocks set to the limit) beyond MaxEDIDBlocks,
//     blocks 0 clears the EDID (and the signal goes); writing one while a
//     source is connected makes it start over (a source change event);
//   - VIDIOC_G_EDID: blocks 0 from block 0 asks how many there are; ENODATA
//     with none loaded;
//   - VIDIOC_SUBSCRIBE_EVENT takes V4L2_EVENT_SOURCE_CHANGE only; DQEVENT
//     says ENOENT when nothing is pending; a change of the source's mode,
//     connect and disconnect each queue one;
//   - VIDIOC_S_FMT offers UYVY and RGB3 and forces the size of the applied
//     DV timings (the bridge's pad format follows them). With Subdevice the
//     video node takes any size, and STREAMON fails with EPIPE when it does
//     not match the timings (media pipeline validation), while the EDID,
//     DV timings and event requests get ENOTTY on the video node;
//   - frames flow only while the source's timings equal the applied ones;
//   - G_PARM, S_PARM and the frame size and interval enumerations: ENOTTY.
type FakeHDMI struct {
	// Subdevice puts the EDID, DV timings and events on the node that
	// FakeCamera.Subdevice returns, as on media-controller systems (Pi 5).
	Subdevice bool
	// MaxEDIDBlocks is how many EDID blocks the bridge stores; 0 means 8,
	// the TC358743's EDID_NUM_BLOCKS_MAX.
	MaxEDIDBlocks int
}

// FakeHDMIMode is a video format the fake's HDMI source sends.
type FakeHDMIMode struct{ timing videoTiming }

// The modes a fake HDMI source can send.
var (
	FakeHDMI1080p30 = FakeHDMIMode{cea1080p30}
	FakeHDMI1080p25 = FakeHDMIMode{cea1080p25}
	FakeHDMI720p60  = FakeHDMIMode{cea720p60}
	FakeHDMI720p50  = FakeHDMIMode{cea720p50}
	// FakeHDMI2160p30 is beyond a TC358743: QUERY_DV_TIMINGS says ERANGE.
	FakeHDMI2160p30 = FakeHDMIMode{videoTiming{vic: 95, width: 3840, height: 2160, pixelClockHz: 297_000_000,
		hFrontPorch: 176, hSync: 88, hBackPorch: 296, vFrontPorch: 8, vSync: 10, vBackPorch: 72,
		hSyncPositive: true, vSyncPositive: true, description: "3840x2160p30"}}
)

// String names the mode ("1920x1080p30").
func (m FakeHDMIMode) String() string { return m.timing.description }

// timingsOf turns a CEA-861 format into DV timings.
func timingsOf(t videoTiming) v4l2DVTimings {
	dv := v4l2DVTimings{Type: dvBT6561120}
	bt := &dv.BT
	bt.Width, bt.Height = uint32(t.width), uint32(t.height)
	bt.setPixelClock(t.pixelClockHz)
	bt.HFrontPorch, bt.HSync, bt.HBackPorch = uint32(t.hFrontPorch), uint32(t.hSync), uint32(t.hBackPorch)
	bt.VFrontPorch, bt.VSync, bt.VBackPorch = uint32(t.vFrontPorch), uint32(t.vSync), uint32(t.vBackPorch)
	if t.hSyncPositive {
		bt.Polarities |= dvHSyncPosPol
	}
	if t.vSyncPositive {
		bt.Polarities |= dvVSyncPosPol
	}
	bt.CEA861VIC = t.vic
	bt.PictureAspect = v4l2Fract{Numerator: 16, Denominator: 9}
	return dv
}

// bridgeTakes applies the TC358743's timings capabilities.
func bridgeTakes(bt *v4l2BTTimings) bool {
	clock := bt.pixelClock()
	return bt.Interlaced == 0 && bt.Width >= 640 && bt.Width <= 1920 && bt.Height >= 480 && bt.Height <= 1200 &&
		clock >= 13_000_000 && clock <= 165_000_000
}

// fakeHDMI is the bridge's state inside a FakeCamera (under its mutex).
type fakeHDMI struct {
	cfg        FakeHDMI
	edid       []byte
	edidWrites int
	connected  bool
	unstable   bool
	source     v4l2DVTimings
	applied    v4l2DVTimings
	subscribed bool
	events     []v4l2Event
	eventSeq   uint32
	subClosed  bool
}

func newFakeHDMI(cfg FakeHDMI) *fakeHDMI {
	if cfg.MaxEDIDBlocks <= 0 {
		cfg.MaxEDIDBlocks = maxEDIDBlocks
	}
	// The TC358743 driver starts with 640x480p60 applied.
	return &fakeHDMI{cfg: cfg, applied: timingsOf(videoTiming{vic: 1, width: 640, height: 480, pixelClockHz: 25_175_000,
		hFrontPorch: 16, hSync: 96, hBackPorch: 48, vFrontPorch: 10, vSync: 2, vBackPorch: 33, description: "640x480p60"})}
}

// signal reports whether the source's picture reaches the bridge.
func (h *fakeHDMI) signal() bool { return h.connected && len(h.edid) > 0 }

// flowing reports whether frames arrive: a locked signal whose timings
// are the applied ones.
func (h *fakeHDMI) flowing() bool {
	return h.signal() && !h.unstable && sameTimings(&h.source.BT, &h.applied.BT)
}

func (h *fakeHDMI) queueSourceChange() {
	if !h.subscribed {
		return
	}
	ev := v4l2Event{Type: eventSourceChange, Sequence: h.eventSeq, Timestamp: unix.NsecToTimespec(int64(monotonicNow()))}
	ev.U[0] = eventSrcChResolution
	h.eventSeq++
	h.events = append(h.events, ev)
}

// ConnectHDMI plugs in a source that sends mode (or, already connected,
// makes it switch to mode): a source change event follows.
func (f *FakeCamera) ConnectHDMI(mode FakeHDMIMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hdmi
	h.connected, h.unstable = true, false
	h.source = timingsOf(mode.timing)
	h.queueSourceChange()
	f.notifyLocked()
}

// DisconnectHDMI unplugs the source: no more frames, a source change event.
func (f *FakeCamera) DisconnectHDMI() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hdmi.connected = false
	f.hdmi.queueSourceChange()
	f.notifyLocked()
}

// UnstableHDMI makes the signal one the bridge cannot lock to (ENOLCK)
// until the next ConnectHDMI.
func (f *FakeCamera) UnstableHDMI() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hdmi.unstable = true
	f.hdmi.queueSourceChange()
	f.notifyLocked()
}

// FakeHDMIState is what the fake bridge holds.
type FakeHDMIState struct {
	EDID []byte
	// EDIDWrites counts successful VIDIOC_S_EDID calls.
	EDIDWrites int
	// Width and Height are the applied DV timings' size.
	Width, Height int
	Subscribed    bool
	// SubdeviceClosed is true once the Subdevice node was closed.
	SubdeviceClosed bool
}

// HDMIState reports the bridge's state.
func (f *FakeCamera) HDMIState() FakeHDMIState {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hdmi
	return FakeHDMIState{
		EDID: append([]byte(nil), h.edid...), EDIDWrites: h.edidWrites,
		Width: int(h.applied.BT.Width), Height: int(h.applied.BT.Height),
		Subscribed: h.subscribed, SubdeviceClosed: h.subClosed,
	}
}

// isHDMIRequest reports whether req belongs to the bridge rather than the
// capture queue.
func isHDMIRequest(req uintptr) bool {
	switch req {
	case vidiocGEdid, vidiocSEdid, vidiocQueryDVTimings, vidiocSDVTimings, vidiocGDVTimings,
		vidiocSubscribeEvent, vidiocUnsubscribeEvent, vidiocDQEvent:
		return true
	}
	return false
}

// hdmiIoctl answers the video node's requests of an HDMI fake; handled is
// false for the requests the camera code answers as for any device.
func (f *FakeCamera) hdmiIoctl(req uintptr, arg unsafe.Pointer) (handled bool, err error) {
	h := f.hdmi
	if isHDMIRequest(req) {
		if h.cfg.Subdevice {
			return true, unix.ENOTTY
		}
		return true, f.bridgeIoctl(req, arg)
	}
	switch req {
	case vidiocEnumFmt:
		d := (*v4l2Fmtdesc)(arg)
		codes := []uint32{pixFmtUYVY, pixFmtRGB24}
		if d.Type != bufTypeVideoCapture || int(d.Index) >= len(codes) {
			return true, unix.EINVAL
		}
		*d = v4l2Fmtdesc{Index: d.Index, Type: d.Type, PixelFormat: codes[d.Index]}
		copy(d.Description[:len(d.Description)-1], "Fake HDMI "+fourccString(codes[d.Index]))
		return true, nil
	case vidiocGFmt, vidiocSFmt:
		format := (*v4l2Format)(arg)
		if format.Type != bufTypeVideoCapture {
			return true, unix.EINVAL
		}
		if req == vidiocSFmt {
			if len(f.buffers) > 0 {
				return true, unix.EBUSY
			}
			f.applyHDMIFormat(&format.Fmt.Pix)
		}
		format.Fmt.Pix = f.format
		return true, nil
	case vidiocGParm, vidiocSParm, vidiocEnumFrameSizes, vidiocEnumFrameIntervals:
		return true, unix.ENOTTY
	case vidiocStreamOn:
		if h.cfg.Subdevice && (f.format.Width != h.applied.BT.Width || f.format.Height != h.applied.BT.Height) {
			return true, unix.EPIPE
		}
	}
	return false, nil
}

// applyHDMIFormat is S_FMT on the bridge's video node.
func (f *FakeCamera) applyHDMIFormat(pix *v4l2PixFormat) {
	code := pix.PixelFormat
	if code != pixFmtUYVY && code != pixFmtRGB24 {
		code = pixFmtUYVY
	}
	width, height := int(f.hdmi.applied.BT.Width), int(f.hdmi.applied.BT.Height)
	if f.hdmi.cfg.Subdevice {
		width = snap(int(pix.Width), 640, 1920, 2)
		height = snap(int(pix.Height), 480, 1200, 1)
	}
	bytesPerPixel := 2
	if code == pixFmtRGB24 {
		bytesPerPixel = 3
	}
	stride := width*bytesPerPixel + f.cfg.RowPadding&^1
	// Both formats are one packed plane; rawPlanes' YUYV layout with the
	// row size fixed describes either.
	planes := rawPlanes(media.YUYV, width, height, stride)
	planes[0].rowBytes = width * bytesPerPixel
	f.planes = planes
	f.format = v4l2PixFormat{
		Width: uint32(width), Height: uint32(height), PixelFormat: code, Field: fieldNone,
		BytesPerLine: uint32(stride), SizeImage: uint32(planesSize(planes)),
	}
}

// bridgeIoctl answers the EDID, DV timings and event requests, on the
// video node or the subdevice.
func (f *FakeCamera) bridgeIoctl(req uintptr, arg unsafe.Pointer) error {
	h := f.hdmi
	switch req {
	case vidiocGEdid:
		e := (*v4l2Edid)(arg)
		written := uint32(len(h.edid) / edidBlockSize)
		switch {
		case e.Pad != 0:
			return unix.EINVAL
		case e.StartBlock == 0 && e.Blocks == 0:
			e.Blocks = written
			return nil
		case written == 0:
			return unix.ENODATA
		case e.StartBlock >= written:
			return unix.EINVAL
		}
		e.Blocks = min(e.Blocks, written-e.StartBlock)
		out := unsafe.Slice((*byte)(e.Edid), int(e.Blocks)*edidBlockSize)
		copy(out, h.edid[int(e.StartBlock)*edidBlockSize:])
		return nil
	case vidiocSEdid:
		e := (*v4l2Edid)(arg)
		e.Reserved = [5]uint32{}
		switch {
		case e.Pad != 0 || e.StartBlock != 0:
			return unix.EINVAL
		case int(e.Blocks) > h.cfg.MaxEDIDBlocks:
			e.Blocks = uint32(h.cfg.MaxEDIDBlocks)
			return unix.E2BIG
		case e.Blocks > 0 && e.Edid == nil:
			return unix.EFAULT
		}
		h.edid = append([]byte(nil), unsafe.Slice((*byte)(e.Edid), int(e.Blocks)*edidBlockSize)...)
		h.edidWrites++
		if h.connected {
			// The hotplug line toggles: the source reads the EDID again.
			h.queueSourceChange()
			f.notifyLocked()
		}
		return nil
	case vidiocQueryDVTimings:
		t := (*v4l2DVTimings)(arg)
		switch {
		case !h.signal():
			return unix.ENOLINK
		case h.unstable:
			return unix.ENOLCK
		case !bridgeTakes(&h.source.BT):
			return unix.ERANGE
		}
		*t = h.source
		return nil
	case vidiocGDVTimings:
		*(*v4l2DVTimings)(arg) = h.applied
		return nil
	case vidiocSDVTimings:
		t := (*v4l2DVTimings)(arg)
		switch {
		case t.Type != dvBT6561120:
			return unix.EINVAL
		case !bridgeTakes(&t.BT):
			return unix.ERANGE
		case sameTimings(&t.BT, &h.applied.BT):
			return nil
		case !h.cfg.Subdevice && len(f.buffers) > 0:
			return unix.EBUSY
		}
		h.applied = *t
		return nil
	case vidiocSubscribeEvent, vidiocUnsubscribeEvent:
		sub := (*v4l2EventSubscription)(arg)
		if sub.Type != eventSourceChange {
			return unix.EINVAL
		}
		h.subscribed = req == vidiocSubscribeEvent
		if !h.subscribed {
			h.events = nil
		}
		return nil
	case vidiocDQEvent:
		if len(h.events) == 0 {
			return unix.ENOENT
		}
		ev := (*v4l2Event)(arg)
		*ev = h.events[0]
		h.events = append(h.events[:0], h.events[1:]...)
		ev.Pending = uint32(len(h.events))
		return nil
	}
	return unix.ENOTTY
}

// Subdevice returns the bridge's subdevice node (/dev/v4l-subdevN) of a
// fake made with FakeHDMI.Subdevice: it answers the EDID, DV timings and
// event requests and nothing else.
// Each call is a new open of the node.
func (f *FakeCamera) Subdevice() Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hdmi != nil {
		f.hdmi.subClosed = false
	}
	return &fakeSubdevice{f: f}
}

// Reopen opens the closed fake's node again, as the pipeline's retries do
// with a real one: buffers are gone, the bridge keeps its EDID and timings
// (they live in the chip, not in the file handle).
func (f *FakeCamera) Reopen() Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed, f.streaming = false, false
	f.buffers, f.queue = nil, nil
	return f
}

type fakeSubdevice struct{ f *FakeCamera }

func (s *fakeSubdevice) Ioctl(req uintptr, arg unsafe.Pointer) error {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.hdmi == nil || f.hdmi.subClosed:
		return unix.EBADF
	case f.unplugged:
		return unix.ENODEV
	case !isHDMIRequest(req):
		return unix.ENOTTY
	}
	return f.bridgeIoctl(req, arg)
}

func (s *fakeSubdevice) Mmap(int64, int) ([]byte, error) { return nil, unix.ENODEV }
func (s *fakeSubdevice) Munmap([]byte) error             { return unix.EINVAL }

// Poll reports at once whether an event is pending; it does not wait.
func (s *fakeSubdevice) Poll(time.Duration) (bool, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return len(s.f.hdmi.events) > 0, nil
}

func (s *fakeSubdevice) Close() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.hdmi.subClosed {
		return unix.EBADF
	}
	s.f.hdmi.subClosed = true
	s.f.hdmi.subscribed, s.f.hdmi.events = false, nil
	return nil
}
