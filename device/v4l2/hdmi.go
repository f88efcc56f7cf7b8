package v4l2

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// HDMI-to-CSI-2 bridges (Toshiba TC358743 behind the Pi's unicam or
// rp1-cfe) do not negotiate like cameras: the HDMI source decides the
// picture, and the receiver must be told. Bring-up, in this order
// (Documentation/userspace-api/media/v4l/vidioc-g-edid.rst,
// vidioc-query-dv-timings.rst, vidioc-g-dv-timings.rst, vidioc-dqevent.rst):
//
//  1. VIDIOC_SUBSCRIBE_EVENT V4L2_EVENT_SOURCE_CHANGE, so that a change
//     after the query is not missed;
//  2. VIDIOC_S_EDID (pad 0, whole 128-byte blocks) when the bridge does not
//     hold our EDID already: writing it drops the hotplug line and the
//     source starts over, so it is not rewritten on every retry;
//  3. VIDIOC_QUERY_DV_TIMINGS: what the source sends (ENOLINK: no cable or
//     no signal; ENOLCK: not locked yet; ERANGE: beyond the bridge);
//  4. VIDIOC_S_DV_TIMINGS with those timings, before buffers exist (unicam
//     answers EBUSY otherwise);
//  5. VIDIOC_S_FMT at the timings' size (the bridge forces it anyway), in
//     UYVY, which Source swaps into YUYV for the encoders;
//  6. buffers and STREAMON as for a camera.
//
// On a source change event the stream is stopped and 3 to 6 run again.
//
// Two node layouts are supported. Without the media controller (the Pi 4's
// unicam as Raspberry Pi OS sets it up for the TC358743) the video node
// passes the EDID, DV timings and events on to the bridge. With it (Pi 5's
// rp1-cfe, newer kernels) they go to the bridge's subdevice node,
// /dev/v4l-subdevN (HDMIConfig.Subdevice), and the video node only
// captures; the formats along the media graph's links (media-ctl -V) must
// then already match the source, which this package does not set.

// SignalError is an HDMI signal problem that VIDIOC_QUERY_DV_TIMINGS
// reports. It unwraps to the kernel's errno.
type SignalError struct {
	msg   string
	errno unix.Errno
}

func (e *SignalError) Error() string { return e.msg }

// Unwrap returns the errno, so errors.Is(err, unix.ENOLINK) holds.
func (e *SignalError) Unwrap() error { return e.errno }

// The HDMI signal problems. The pipeline shows the slate meanwhile and
// tries the bridge again; errors.As with a *SignalError tells all three.
var (
	// ErrNoSignal: no cable, the source is off, or it has not read the EDID.
	ErrNoSignal = &SignalError{"no HDMI signal (ENOLINK)", unix.ENOLINK}
	// ErrSignalUnstable: a signal the bridge cannot lock to yet (the source
	// is switching modes).
	ErrSignalUnstable = &SignalError{"HDMI signal not locked (ENOLCK)", unix.ENOLCK}
	// ErrSignalOutOfRange: the source sends a mode beyond the bridge (a
	// TC358743 takes up to 1920x1200 at a 165 MHz pixel clock, progressive).
	ErrSignalOutOfRange = &SignalError{"HDMI signal out of range (ERANGE)", unix.ERANGE}
)

// ErrSourceChanged means the HDMI source changed to another picture size
// while capturing, and the Source was opened without HDMIConfig.FollowSize:
// close it and open the bridge again at the new size.
var ErrSourceChanged = errors.New("HDMI source changed its picture size")

// HDMIConfig turns on the bring-up of an HDMI-to-CSI-2 bridge in Config.
type HDMIConfig struct {
	// EDID is loaded into the bridge (LoadEDID checks a file); nil leaves
	// the bridge's EDID as it is.
	EDID []byte
	// Subdevice is the bridge's subdevice node (/dev/v4l-subdevN) that
	// takes the EDID, DV timings and events on media-controller systems;
	// "" means the video node takes them.
	Subdevice string
	// SubdeviceNode is the subdevice already open (tests pass a
	// FakeCamera's Subdevice()); Open opens Subdevice when it is nil. The
	// Source closes it.
	SubdeviceNode Device
	// FollowSize makes a source change to another picture size go on in
	// place, with frames of the new size. Without it, ReadVideo fails with
	// ErrSourceChanged, for consumers set up at one size.
	FollowSize bool
}

// Signal is what an HDMI source sends, from its DV timings.
type Signal struct {
	Width, Height int
	Interlaced    bool
	// FPS is the pixel clock over the total (active and blanking) pixels
	// of a frame.
	FPS          float64
	PixelClockHz uint64
}

// String spells the signal as "1920x1080p30 (74.25 MHz)".
func (s Signal) String() string {
	scan := "p"
	if s.Interlaced {
		scan = "i"
	}
	return fmt.Sprintf("%dx%d%s%s (%s MHz)", s.Width, s.Height, scan, fpsString(s.FPS), fpsString(float64(s.PixelClockHz)/1e6))
}

// signalOf reads DV timings.
func signalOf(t *v4l2BTTimings) Signal {
	s := Signal{Width: int(t.Width), Height: int(t.Height), Interlaced: t.Interlaced == dvInterlaced, PixelClockHz: t.pixelClock()}
	hTotal := uint64(t.Width + t.HFrontPorch + t.HSync + t.HBackPorch)
	vTotal := uint64(t.Height + t.VFrontPorch + t.VSync + t.VBackPorch)
	if s.Interlaced {
		vTotal += uint64(t.Height + t.ILVFrontPorch + t.ILVSync + t.ILVBackPorch)
	}
	if hTotal > 0 && vTotal > 0 {
		s.FPS = float64(s.PixelClockHz) / float64(hTotal*vTotal)
	}
	return s
}

// sameTimings compares the fields that define a video format.
func sameTimings(a, b *v4l2BTTimings) bool {
	x, y := *a, *b
	x.Reserved, y.Reserved = [46]uint8{}, [46]uint8{}
	x.Flags, y.Flags = 0, 0
	x.Standards, y.Standards = 0, 0
	return x == y
}

// hdmiInput is the bridge side of a Source.
type hdmiInput struct {
	cfg HDMIConfig
	// dev takes EDID, DV timings and events: the video node, or the
	// subdevice (owned then).
	dev    Device
	name   string
	owned  bool
	events bool
	// timings are the ones applied with S_DV_TIMINGS.
	timings v4l2DVTimings
	signal  Signal
	// event is VIDIOC_DQEVENT's argument, kept so polling for events
	// allocates nothing per frame.
	event v4l2Event
}

func (h *hdmiInput) ioctl(req uintptr, arg unsafe.Pointer) error { return h.dev.Ioctl(req, arg) }

// subscribe asks for source change events. A bridge without them still
// works, but only until the source changes its mode.
func (h *hdmiInput) subscribe() error {
	sub := v4l2EventSubscription{Type: eventSourceChange}
	err := h.ioctl(vidiocSubscribeEvent, unsafe.Pointer(&sub))
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("subscribe to source changes on %s: %w", h.name, err)
	}
	h.events = true
	return nil
}

// loadEDID writes cfg.EDID unless the bridge holds it already.
func (h *hdmiInput) loadEDID() (written bool, err error) {
	edid := h.cfg.EDID
	if len(edid) == 0 {
		return false, nil
	}
	if err := CheckEDID(edid); err != nil {
		return false, fmt.Errorf("EDID for %s: %w", h.name, err)
	}
	blocks := uint32(len(edid) / edidBlockSize)
	current := make([]byte, len(edid))
	get := v4l2Edid{Blocks: blocks, Edid: unsafe.Pointer(&current[0])}
	err = h.ioctl(vidiocGEdid, unsafe.Pointer(&get))
	if err == nil && get.Blocks == blocks && string(current) == string(edid) {
		return false, nil
	}
	set := v4l2Edid{Blocks: blocks, Edid: unsafe.Pointer(&edid[0])}
	err = h.ioctl(vidiocSEdid, unsafe.Pointer(&set))
	if errors.Is(err, unix.E2BIG) {
		return false, fmt.Errorf("load EDID into %s: %d blocks, the bridge takes at most %d: %w", h.name, blocks, set.Blocks, err)
	}
	if err != nil {
		return false, fmt.Errorf("load EDID into %s: %w", h.name, err)
	}
	return true, nil
}

// query asks the bridge what the source sends.
func (h *hdmiInput) query() (v4l2DVTimings, error) {
	var t v4l2DVTimings
	err := h.ioctl(vidiocQueryDVTimings, unsafe.Pointer(&t))
	var signalErr *SignalError
	switch {
	case errors.Is(err, unix.ENOLINK):
		signalErr = ErrNoSignal
	case errors.Is(err, unix.ENOLCK):
		signalErr = ErrSignalUnstable
	case errors.Is(err, unix.ERANGE):
		signalErr = ErrSignalOutOfRange
	case err != nil:
		return t, fmt.Errorf("query DV timings of %s: %w", h.name, err)
	}
	if signalErr != nil {
		return t, fmt.Errorf("query DV timings of %s: %w", h.name, signalErr)
	}
	if t.Type != dvBT6561120 || t.BT.Width == 0 || t.BT.Height == 0 {
		return t, fmt.Errorf("query DV timings of %s: driver gave type %d, %dx%d", h.name, t.Type, t.BT.Width, t.BT.Height)
	}
	if t.BT.Interlaced == dvInterlaced {
		return t, fmt.Errorf("%s: source sends %v, interlaced HDMI is not supported: %w", h.name, signalOf(&t.BT), ErrSignalOutOfRange)
	}
	return t, nil
}

// apply sets the queried timings on the bridge.
func (h *hdmiInput) apply(t v4l2DVTimings) error {
	if err := h.ioctl(vidiocSDVTimings, unsafe.Pointer(&t)); err != nil {
		return fmt.Errorf("set DV timings %v on %s: %w", signalOf(&t.BT), h.name, err)
	}
	h.timings = t
	h.signal = signalOf(&t.BT)
	return nil
}

// sourceChanged dequeues every pending event and reports whether one of
// them was a resolution change. ENOENT (nothing pending) is the usual answer.
func (h *hdmiInput) sourceChanged() (bool, error) {
	changed := false
	for range 64 {
		err := h.ioctl(vidiocDQEvent, unsafe.Pointer(&h.event))
		if errors.Is(err, unix.ENOENT) {
			return changed, nil
		}
		if err != nil {
			return changed, err
		}
		if h.event.Type == eventSourceChange && h.event.sourceChanges()&eventSrcChResolution != 0 {
			changed = true
		}
	}
	return changed, nil
}

// startHDMI runs the bridge's bring-up and starts streaming.
func (s *Source) startHDMI(want Config) error {
	h := s.hdmi
	if err := h.subscribe(); err != nil {
		return err
	}
	if !h.events {
		s.log.Warn("HDMI bridge sends no source change events: a change of mode will stall the picture", "node", h.name)
	}
	written, err := h.loadEDID()
	if err != nil {
		return err
	}
	if written {
		s.log.Info("EDID loaded into the HDMI bridge; the source reads it and picks a mode", "node", h.name, "blocks", len(h.cfg.EDID)/edidBlockSize)
	}
	code, swap, err := s.hdmiFormat(want.Formats)
	if err != nil {
		return err
	}
	s.swapUYVY = swap
	if err := s.negotiateHDMI(code); err != nil {
		return err
	}
	s.mode.Reason = fmt.Sprintf("HDMI source sends %v", h.signal)
	if swap {
		s.mode.Reason += "; the bridge gives UYVY, swapped to YUYV"
	}
	return s.startStreaming(want.Buffers)
}

// negotiateHDMI queries and applies the DV timings and sets the format to
// their size.
func (s *Source) negotiateHDMI(code uint32) error {
	h := s.hdmi
	timings, err := h.query()
	if err != nil {
		return err
	}
	if err := h.apply(timings); err != nil {
		return err
	}
	if err := s.setFormat(code, h.signal.Width, h.signal.Height); err != nil {
		return err
	}
	if s.mode.Width != h.signal.Width || s.mode.Height != h.signal.Height {
		return fmt.Errorf("set format on %s: the bridge gives %dx%d, the source sends %v",
			s.name, s.mode.Width, s.mode.Height, h.signal)
	}
	s.mode.FPS = h.signal.FPS
	s.mode.Signal = h.signal
	return nil
}

// hdmiFormat picks the capture format: YUYV as it is, else UYVY swapped
// into YUYV. The bridge's RGB24 is not taken.
func (s *Source) hdmiFormat(wanted []media.PixelFormat) (code uint32, swap bool, err error) {
	if len(wanted) > 0 && !containsPixelFormat(wanted, media.YUYV) {
		return 0, false, fmt.Errorf("open %s: an HDMI bridge delivers YUYV, wanted %v: %w", s.name, wanted, ErrNoFormat)
	}
	formats, err := enumFormats(s.dev, bufTypeVideoCapture)
	if err != nil {
		return 0, false, fmt.Errorf("list formats of %s: %w", s.name, err)
	}
	var offered []string
	for _, f := range formats {
		if f.code == pixFmtYUYV {
			return pixFmtYUYV, false, nil
		}
		offered = append(offered, fourccString(f.code))
	}
	for _, f := range formats {
		if f.code == pixFmtUYVY {
			return pixFmtUYVY, true, nil
		}
	}
	return 0, false, fmt.Errorf("open %s: HDMI bridge offers %v, wanted UYVY or YUYV: %w", s.name, offered, ErrNoFormat)
}

func containsPixelFormat(list []media.PixelFormat, f media.PixelFormat) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// followSourceChange runs when the bridge reports a source change while
// streaming: same timings go on, a signal problem or a new size the
// consumer cannot take ends the stream, anything else is negotiated again.
func (s *Source) followSourceChange() error {
	h := s.hdmi
	timings, err := h.query()
	if err != nil {
		s.failed = fmt.Errorf("HDMI source changed: %w", err)
		s.log.Info("HDMI signal lost", "error", err)
		return s.failed
	}
	if sameTimings(&timings.BT, &h.timings.BT) {
		s.log.Debug("HDMI source change event with the same timings", "signal", h.signal.String())
		return nil
	}
	next := signalOf(&timings.BT)
	if (next.Width != s.mode.Width || next.Height != s.mode.Height) && !h.cfg.FollowSize {
		s.failed = fmt.Errorf("%s now sends %v, capture runs at %dx%d: %w", s.name, next, s.mode.Width, s.mode.Height, ErrSourceChanged)
		return s.failed
	}
	was := h.signal
	if err := s.stopStreaming(); err != nil {
		s.failed = err
		return err
	}
	code := s.format
	if err := s.negotiateHDMI(code); err != nil {
		s.failed = err
		return err
	}
	if err := s.startStreaming(s.mode.Buffers); err != nil {
		s.failed = err
		return err
	}
	s.log.Info("HDMI source changed its mode, capture follows", "from", was.String(), "to", h.signal.String())
	return nil
}

// swapUYVYRows copies the picture out of src into dst, dropping row
// padding and turning UYVY (U Y0 V Y1) into YUYV (Y0 U Y1 V): each pair of
// bytes swaps. Eight bytes go at a time.
func swapUYVYRows(dst, src []byte, p plane) []byte {
	n := 0
	for r := 0; r < p.rows; r++ {
		row := src[p.offset+r*p.stride:][:p.rowBytes]
		out := dst[n:][:p.rowBytes]
		i := 0
		for ; i+8 <= len(row); i += 8 {
			v := uint64(row[i]) | uint64(row[i+1])<<8 | uint64(row[i+2])<<16 | uint64(row[i+3])<<24 |
				uint64(row[i+4])<<32 | uint64(row[i+5])<<40 | uint64(row[i+6])<<48 | uint64(row[i+7])<<56
			v = (v&0x00ff00ff00ff00ff)<<8 | (v>>8)&0x00ff00ff00ff00ff
			out[i], out[i+1], out[i+2], out[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			out[i+4], out[i+5], out[i+6], out[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
		for ; i+1 < len(row); i += 2 {
			out[i], out[i+1] = row[i+1], row[i]
		}
		n += p.rowBytes
	}
	return dst[:n]
}

// NoSignalSource is a video source whose reads fail at once with the
// error it was made with: a pipeline started on it shows its slate,
// reports the error as the camera's problem and opens the bridge again on
// its usual schedule, as for a camera that failed while running. It is for
// an HDMI bridge without a signal when the box starts.
type NoSignalSource struct{ err error }

// NewNoSignalSource returns a NoSignalSource failing with err.
func NewNoSignalSource(err error) *NoSignalSource { return &NoSignalSource{err: err} }

// ReadVideo returns the error.
func (s *NoSignalSource) ReadVideo(context.Context) (media.VideoFrame, error) {
	return media.VideoFrame{}, s.err
}

// Close does nothing: there is no device behind it.
func (s *NoSignalSource) Close() error { return nil }
