package v4l2m2m

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

// Options tune the hardware encoder beyond encoder.VideoParams.
type Options struct {
	// Format is the raw format the frames arrive in: I420 (default), NV12
	// or YUYV, as the camera delivers them. A frame in another format (the
	// slate after a camera loss) makes the encoder set itself up again.
	Format media.PixelFormat
	// RateControl is VBR (default) or CBR.
	RateControl RateControl
	// MaxBitrateKbps is the highest bitrate SetBitrate will be asked for
	// (the uplink's ceiling); the H.264 level, fixed while streaming, is
	// computed to hold it. Default: the configured bitrate.
	MaxBitrateKbps int
	// OutputBuffers and CaptureBuffers are how many raw and coded buffers
	// to ask the driver for (defaults 3 and 4); it may give more.
	OutputBuffers, CaptureBuffers int
	// Timeout bounds every wait for the hardware (default 1s): a firmware
	// that stops producing becomes an error, not a hang.
	Timeout time.Duration
	// Delay is how many pictures the hardware may hold before their coded
	// buffers come out; Encode returns ok=false while it fills. The Pi's
	// encoder (no B-frames, no look-ahead) holds none: 0, the default,
	// makes Encode wait for each picture's own access unit.
	Delay int
	// Logger receives what the encoder handles itself (dropped corrupt
	// pictures, set-ups); default slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Format == 0 {
		o.Format = media.I420
	}
	if o.OutputBuffers <= 0 {
		o.OutputBuffers = 3
	}
	if o.CaptureBuffers <= 0 {
		o.CaptureBuffers = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Info is what the encoder negotiated with the driver, for logs and status.
type Info struct {
	Path, Card    string
	Format        media.PixelFormat
	Width, Height int
	// BytesPerLine is the driver's row stride of the raw buffers.
	BytesPerLine int
	// RawMemory is how pictures reach the hardware: "dmabuf" when it reads
	// the camera's buffers (no copy), "mmap" when they are copied into
	// the encoder's own.
	RawMemory   string
	Level       Level
	Profile     string
	RateControl RateControl
	BitrateKbps int
	// OutputBuffers and CaptureBuffers are the counts the driver gave;
	// CodedBufferSize is the size of each coded (CAPTURE) buffer.
	OutputBuffers, CaptureBuffers int
	CodedBufferSize               int
}

// Encoder drives a V4L2 stateful H.264 encoder (the Pi's bcm2835-codec) and
// implements encoder.VideoEncoder. Like every VideoEncoder it is used by one
// goroutine; it starts none of its own.
type Encoder struct {
	open   Opener
	path   string
	params encoder.VideoParams
	opt    Options
	level  Level
	log    *slog.Logger
	// format is the raw format the encoder is (or is to be) set up for.
	format media.PixelFormat

	s *session
	// err is the device error that stopped the encoder; Encode returns it
	// until Reset or Close.
	err    error
	closed bool
	// forceKey makes the next picture a keyframe (after corrupt output).
	forceKey bool
	// paramSets is the latest SPS and PPS (Annex-B), put in front of a
	// keyframe that comes without them.
	paramSets []byte
	// badFrames counts corrupt coded buffers in a row.
	badFrames int
	// info is what the latest session negotiated.
	info Info
	// importRefused is why the driver would not read the camera's
	// dma-bufs; once set, every picture is copied.
	importRefused error
}

// maxBadFrames is how many corrupt coded buffers in a row make the encoder
// give up (the caller restarts it).
const maxBadFrames = 30

// Open opens the encoder node at path (from Find) and sets it up for p;
// the encoder is streaming, ready for the first picture, when Open returns.
func Open(path string, p encoder.VideoParams, opt Options) (*Encoder, error) {
	return New(OpenNode, path, p, opt)
}

// New is Open with a given opener: tests pass one that returns a FakeDevice.
// The opener is used again by Reset and when the frame format changes.
func New(open Opener, path string, p encoder.VideoParams, opt Options) (*Encoder, error) {
	opt.defaults()
	if p.Profile == "" {
		p.Profile = "constrained_baseline"
	}
	if fourccOf(opt.Format) == 0 {
		return nil, fmt.Errorf("v4l2m2m %s: the hardware encoder takes I420, NV12 or YUYV, not %s", path, opt.Format)
	}
	if err := Validate(p, opt.RateControl); err != nil {
		return nil, fmt.Errorf("v4l2m2m %s: %w", path, err)
	}
	if opt.MaxBitrateKbps > MaxBitrateKbps {
		return nil, fmt.Errorf("v4l2m2m %s: maximum bitrate %d kbps: the hardware encoder takes at most %d kbps",
			path, opt.MaxBitrateKbps, MaxBitrateKbps)
	}
	p.BitrateKbps = roundBitrate(p.BitrateKbps)
	level, err := LevelFor(p.Width, p.Height, p.FPS, max(p.BitrateKbps, opt.MaxBitrateKbps), p.Profile)
	if err != nil {
		return nil, fmt.Errorf("v4l2m2m %s: %w", path, err)
	}
	e := &Encoder{open: open, path: path, params: p, opt: opt, level: level, log: opt.Logger, format: opt.Format}
	if e.s, err = e.start(opt.Format, p.Width, p.Height, 0); err != nil {
		return nil, err
	}
	return e, nil
}

// roundBitrate rounds to the BITRATE control's 25 kbit/s steps, as the
// driver would, so that what the encoder reports is what the hardware does.
func roundBitrate(kbps int) int {
	r := (kbps + bitrateStepKbps/2) / bitrateStepKbps * bitrateStepKbps
	return min(max(r, MinBitrateKbps), MaxBitrateKbps)
}

// Info reports what was negotiated with the driver (for the latest set-up;
// it stays readable after Close).
func (e *Encoder) Info() Info {
	info := e.info
	info.Path, info.Level, info.Profile = e.path, e.level, e.params.Profile
	info.RateControl, info.BitrateKbps = e.opt.RateControl, e.params.BitrateKbps
	info.Width, info.Height = e.params.Width, e.params.Height
	return info
}

// Encode hands one picture to the hardware and returns the oldest access
// unit it has finished, normally this picture's: the Pi encodes a picture
// in well under a frame interval and never reorders. ok is false when the
// hardware reported the picture's output corrupt (the next picture is then
// forced to be a keyframe). An error means the device failed: the caller
// calls Reset (or Close and Open) to carry on.
//
// A frame that carries a dma-buf (media.DMABuf) is not copied: the
// hardware reads the camera's buffer (V4L2_MEMORY_DMABUF on the OUTPUT
// queue; the first such frame sets the encoder up for it). Encode then
// returns only once the hardware has given the buffer back, error or not,
// so the camera may refill it as soon as the caller reads the next frame.
// If the driver refuses the import (memory it cannot map, a row stride it
// cannot take), the encoder says why once and copies from then on.
func (e *Encoder) Encode(frame media.VideoFrame, forceKeyframe bool) (media.Sample, bool, error) {
	if e.closed {
		return media.Sample{}, false, errors.New("v4l2m2m: encoder is closed")
	}
	if e.err != nil {
		return media.Sample{}, false, e.err
	}
	if e.s == nil {
		return media.Sample{}, false, fmt.Errorf("v4l2m2m %s: encoder is not set up (Reset failed)", e.path)
	}
	if l := e.s.layout; frame.Format != l.format || frame.Width != l.width || frame.Height != l.height {
		if err := e.reconfigure(frame); err != nil {
			return media.Sample{}, false, err
		}
	}
	if need := frameBytes(frame.Format, frame.Width, frame.Height); len(frame.Data) < need {
		return media.Sample{}, false, fmt.Errorf("v4l2m2m %s: %dx%d %s picture needs %d bytes, frame has %d",
			e.path, frame.Width, frame.Height, frame.Format, need, len(frame.Data))
	}
	if stride := e.importStride(frame); stride != e.s.importStride {
		if err := e.switchMemory(stride); err != nil {
			return media.Sample{}, false, err
		}
	}
	s := e.s
	err := s.queueFrame(frame, forceKeyframe || e.forceKey, e.opt.Timeout)
	if refused := asRefusal(err); refused != nil {
		e.refuseImport(refused)
		if err := e.switchMemory(0); err != nil {
			return media.Sample{}, false, err
		}
		s = e.s
		err = s.queueFrame(frame, forceKeyframe || e.forceKey, e.opt.Timeout)
	}
	if err != nil {
		return media.Sample{}, false, e.fail(err)
	}
	e.forceKey = false
	sample, ok, err := s.awaitSample(e.opt.Delay, e.opt.Timeout)
	if err == nil {
		err = s.awaitOutput(e.opt.Timeout)
	}
	if err != nil {
		return media.Sample{}, false, e.fail(err)
	}
	if s.corrupt > 0 {
		e.badFrames += s.corrupt
		e.forceKey = true
		e.log.Warn("hardware encoder returned a corrupt picture; forcing a keyframe", "device", e.path, "in_a_row", e.badFrames)
		if e.badFrames >= maxBadFrames {
			return media.Sample{}, false, e.fail(fmt.Errorf("%d corrupt pictures in a row", e.badFrames))
		}
	}
	if !ok {
		return media.Sample{}, false, nil
	}
	if s.corrupt == 0 {
		e.badFrames = 0
	}
	sample.Duration = time.Second / time.Duration(e.params.FPS)
	e.withParameterSets(&sample)
	return sample, true, nil
}

// withParameterSets keeps the latest SPS/PPS and puts them in front of a
// keyframe that lacks them, so every keyframe decodes on its own even if
// REPEAT_SEQ_HEADER were ignored.
func (e *Encoder) withParameterSets(sample *media.Sample) {
	if !sample.Keyframe {
		return
	}
	sps, pps := h264.ParameterSets(sample.Data)
	if sps != nil && pps != nil {
		e.paramSets = h264.AppendAnnexB(h264.AppendAnnexB(e.paramSets[:0], sps), pps)
		return
	}
	if len(e.paramSets) == 0 {
		return
	}
	data := make([]byte, 0, len(e.paramSets)+len(sample.Data))
	sample.Data = append(append(data, e.paramSets...), sample.Data...)
}

// fail makes err the encoder's sticky device error. A session that still
// holds the camera's buffer is torn down at once (STREAMOFF gives every
// buffer back), since the caller reads the next frame after this returns.
func (e *Encoder) fail(err error) error {
	e.err = fmt.Errorf("v4l2m2m %s: %w", e.path, err)
	if e.s != nil && e.s.lent >= 0 {
		e.s.teardown(false, e.opt.Timeout)
		e.s = nil
	}
	return e.err
}

// importStride is the row stride of the frame's dma-buf when the hardware
// is to read it, 0 when the frame is to be copied.
func (e *Encoder) importStride(frame media.VideoFrame) int {
	if e.importRefused != nil || frame.DMABuf.Size <= 0 || frame.DMABuf.Stride <= 0 {
		return 0
	}
	return frame.DMABuf.Stride
}

// switchMemory sets the encoder up again with the OUTPUT queue importing
// dma-bufs of the given row stride, or (0) holding buffers to copy into.
// The stateful encoder interface fixes the memory type at REQBUFS, on a
// stopped queue whose buffers are freed, and the stride with the raw
// format before that; a new session on a new file handle does both, as a
// format change does. Pictures the hardware still holds (Options.Delay
// above 0) are dropped; with the default there are none between frames.
func (e *Encoder) switchMemory(stride int) error {
	l := e.s.layout
	e.s.teardown(false, e.opt.Timeout)
	e.s = nil
	s, err := e.startSession(l.format, l.width, l.height, stride)
	if err != nil {
		e.err = err // start's error names the device already
		return err
	}
	e.s = s
	return nil
}

// startSession starts a session importing dma-bufs of the given stride
// (when above 0), or copying when the driver refuses that.
func (e *Encoder) startSession(format media.PixelFormat, width, height, stride int) (*session, error) {
	if stride > 0 {
		s, err := e.start(format, width, height, stride)
		refused := asRefusal(err)
		if refused == nil {
			return s, err
		}
		e.refuseImport(refused)
	}
	return e.start(format, width, height, 0)
}

// asRefusal returns the import refusal err wraps, if any. It looks only
// at a non-nil err: errors.As would allocate on every picture.
func asRefusal(err error) *importRefusal {
	if err == nil {
		return nil
	}
	var refused *importRefusal
	if errors.As(err, &refused) {
		return refused
	}
	return nil
}

// refuseImport makes the encoder copy every picture from now on, and says
// why, once.
func (e *Encoder) refuseImport(refused *importRefusal) {
	e.importRefused = refused.err
	e.log.Warn("hardware encoder cannot read the camera's buffers; copying every picture instead",
		"device", e.path, "reason", refused.err.Error())
}

// reconfigure sets the encoder up again for a frame of another format or
// size (the slate replacing a camera): a new session on a new file handle.
func (e *Encoder) reconfigure(frame media.VideoFrame) error {
	if fourccOf(frame.Format) == 0 {
		return fmt.Errorf("v4l2m2m %s: the hardware encoder takes I420, NV12 or YUYV, not %s", e.path, frame.Format)
	}
	p := e.params
	p.Width, p.Height = frame.Width, frame.Height
	if err := Validate(p, e.opt.RateControl); err != nil {
		return fmt.Errorf("v4l2m2m %s: new picture format: %w", e.path, err)
	}
	level, err := LevelFor(p.Width, p.Height, p.FPS, max(p.BitrateKbps, e.opt.MaxBitrateKbps), p.Profile)
	if err != nil {
		return fmt.Errorf("v4l2m2m %s: %w", e.path, err)
	}
	e.log.Info("hardware encoder: picture format changed, setting up again", "device", e.path,
		"from", fmt.Sprintf("%s %dx%d", e.s.layout.format, e.s.layout.width, e.s.layout.height),
		"to", fmt.Sprintf("%s %dx%d", frame.Format, frame.Width, frame.Height))
	e.s.teardown(false, e.opt.Timeout)
	e.s = nil
	e.params, e.level, e.format = p, level, frame.Format
	if e.s, err = e.startSession(frame.Format, p.Width, p.Height, e.importStride(frame)); err != nil {
		e.err = err // start's error names the device already
		return err
	}
	return nil
}

// SetBitrate changes the target bitrate while streaming (the driver passes
// it to the running firmware). It is rounded to the control's 25 kbit/s
// steps.
func (e *Encoder) SetBitrate(kbps int) error {
	if e.closed {
		return errors.New("v4l2m2m: encoder is closed")
	}
	if kbps < MinBitrateKbps || kbps > MaxBitrateKbps {
		return fmt.Errorf("v4l2m2m %s: bitrate %d kbps: the hardware encoder takes %d to %d kbps",
			e.path, kbps, MinBitrateKbps, MaxBitrateKbps)
	}
	kbps = roundBitrate(kbps)
	if limit, ok := levelLimitsOf(e.level); ok && !limit.fits(e.params.Width, e.params.Height, e.params.FPS, kbps, profileOf(e.params.Profile)) {
		return fmt.Errorf("v4l2m2m %s: bitrate %d kbps is above what level %s holds at %dx%d; raise the maximum bitrate so the encoder opens at a higher level",
			e.path, kbps, e.level, e.params.Width, e.params.Height)
	}
	if e.s != nil && e.err == nil {
		if err := e.s.setControl(cidBitrate, int32(kbps*1000)); err != nil {
			return fmt.Errorf("v4l2m2m %s: set bitrate %d kbps: %w", e.path, kbps, err)
		}
	}
	e.params.BitrateKbps = kbps
	return nil
}

// Reset tears the device session down and sets it up again on a newly
// opened node: what the caller does after Encode failed. The first picture
// after it is a keyframe.
func (e *Encoder) Reset() error {
	if e.closed {
		return errors.New("v4l2m2m: encoder is closed")
	}
	if e.s != nil {
		e.s.teardown(false, e.opt.Timeout)
		e.s = nil
	}
	e.err, e.badFrames, e.forceKey = nil, 0, false
	s, err := e.start(e.format, e.params.Width, e.params.Height, 0)
	if err != nil {
		return err
	}
	e.s = s
	return nil
}

// Close drains the encoder (V4L2_ENC_CMD_STOP, then the coded buffers up
// to the one marked last), stops streaming, unmaps and frees the buffers
// and closes the node. What the drain yields is discarded: a closing
// pipeline has nobody to send it to. Close is safe to call more than once.
func (e *Encoder) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.s == nil {
		return nil
	}
	err := e.s.teardown(e.err == nil, e.opt.Timeout)
	e.s = nil
	if err != nil && e.err == nil {
		return fmt.Errorf("v4l2m2m %s: close: %w", e.path, err)
	}
	return nil
}

var _ encoder.VideoEncoder = (*Encoder)(nil)

// isAgain reports EAGAIN: nothing to dequeue yet.
func isAgain(err error) bool { return errors.Is(err, unix.EAGAIN) }
