//go:build cgo

// Package x264 is the software H.264 encoder: a thin cgo wrapper around
// libx264. It exists beside pion/mediadevices' x264 codec because that one
// always applies the "high" profile, while the box must send constrained
// baseline (the profile every WebRTC browser decodes), tune for zero latency,
// force IDR pictures on request and carry capture timestamps through.
package x264

/*
#cgo pkg-config: x264
#include <stdlib.h>
#include <stdint.h>
#include <x264.h>

#ifdef __linux__
#include <sys/prctl.h>
#endif

// onair_open opens the encoder (x264_encoder_open is a macro that names the
// ABI version, which cgo cannot call). On Linux the threads x264 starts for
// its slices are named ThreadName: a thread takes its creator's name, so
// the caller's thread carries it while x264 opens, and gets its own back.
// top -H then shows the encoder apart, and bench/whepload counts its CPU
// apart from the daemon's per-viewer work.
static x264_t *onair_open(x264_param_t *p, const char *thread_name) {
#ifdef __linux__
	char own[16] = {0};
	int renamed = prctl(PR_GET_NAME, own) == 0 && prctl(PR_SET_NAME, thread_name) == 0;
	x264_t *h = x264_encoder_open(p);
	if (renamed) prctl(PR_SET_NAME, own);
	return h;
#else
	(void)thread_name;
	return x264_encoder_open(p);
#endif
}

static int onair_setup(x264_param_t *p, const char *preset, const char *profile,
	int width, int height, int fps, int kbps, int keyint, int threads) {
	if (x264_param_default_preset(p, preset, "zerolatency") < 0) return -1;
	p->i_width = width;
	p->i_height = height;
	p->i_csp = X264_CSP_I420;
	p->i_fps_num = fps;
	p->i_fps_den = 1;
	p->i_timebase_num = 1;
	p->i_timebase_den = 1000000; // pts in microseconds
	p->b_vfr_input = 0;          // rate control by fps, not by pts gaps
	p->i_keyint_max = keyint;
	p->i_keyint_min = 1;
	p->b_repeat_headers = 1;     // SPS/PPS before every keyframe
	p->b_annexb = 1;
	p->b_aud = 0;
	p->i_log_level = X264_LOG_ERROR;
	if (threads > 0) p->i_threads = threads;
	p->rc.i_rc_method = X264_RC_ABR;
	p->rc.i_bitrate = kbps;
	p->rc.i_vbv_max_bitrate = kbps;
	p->rc.i_vbv_buffer_size = kbps; // one second of buffer: steady for WebRTC
	return x264_param_apply_profile(p, profile);
}

static int onair_set_bitrate(x264_t *h, x264_param_t *p, int kbps, int vbv_ms) {
	p->rc.i_bitrate = kbps;
	p->rc.i_vbv_max_bitrate = kbps;
	int buffer_kbit = kbps * vbv_ms / 1000;
	p->rc.i_vbv_buffer_size = buffer_kbit > 0 ? buffer_kbit : 1;
	return x264_encoder_reconfig(h, p);
}

// onair_result is what one call of x264_encoder_encode gave: the access unit
// (NAL units back to back, valid until the next encode call), its size
// (0: no output, negative: error) and whether it is a keyframe.
typedef struct {
	uint8_t *payload;
	int size;
	int keyframe;
} onair_result;

// onair_encode encodes one I420 picture whose planes are the caller's
// memory (Go memory, passed as arguments). x264 copies the planes into a
// frame of its own at the start of x264_encoder_encode and keeps no pointer
// to them, so the planes are detached again before returning: no Go pointer
// outlives the call in C memory, as the cgo pointer rules require.
static onair_result onair_encode(x264_t *h, x264_picture_t *pic, uint8_t *y, uint8_t *u, uint8_t *v,
	int force_idr, int64_t pts) {
	onair_result r = {0};
	x264_nal_t *nals;
	int n_nals;
	x264_picture_t pic_out;
	pic->img.plane[0] = y;
	pic->img.plane[1] = u;
	pic->img.plane[2] = v;
	pic->i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
	pic->i_pts = pts;
	r.size = x264_encoder_encode(h, &nals, &n_nals, pic, &pic_out);
	pic->img.plane[0] = pic->img.plane[1] = pic->img.plane[2] = NULL;
	if (r.size > 0) {
		r.payload = nals[0].p_payload;
		r.keyframe = pic_out.b_keyframe;
	}
	return r;
}

// onair_picture describes I420 pictures of the given size without planes:
// onair_encode points them at each frame in turn.
static void onair_picture(x264_picture_t *pic, int width, int height) {
	x264_picture_init(pic);
	pic->img.i_csp = X264_CSP_I420;
	pic->img.i_plane = 3;
	pic->img.i_stride[0] = width;
	pic->img.i_stride[1] = width / 2;
	pic->img.i_stride[2] = width / 2;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/onair/onair/encoder"
	"github.com/onair/onair/media"
)

// Available tells that this build has the software encoder.
const Available = true

// Encoder is a running x264 encoder.
type Encoder struct {
	params  encoder.VideoParams
	param   *C.x264_param_t
	handle  *C.x264_t
	picture *C.x264_picture_t // describes the input; its planes are set per call
	scratch []byte            // YUYV conversion, reused
	frames  int64
}

// Options tune the software encoder beyond the common parameters.
type Options struct {
	// Preset is an x264 speed preset; default "veryfast".
	Preset string
	// Threads is the number of encoder threads; 0 lets x264 choose.
	Threads int
}

// New opens an encoder for the given parameters.
func New(p encoder.VideoParams, opt Options) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("x264: %w", err)
	}
	if opt.Preset == "" {
		opt.Preset = "veryfast"
	}
	profile := p.Profile
	if profile == "" || profile == "constrained_baseline" {
		profile = "baseline" // x264's baseline is constrained baseline
	}
	e := &Encoder{params: p}
	e.param = (*C.x264_param_t)(C.calloc(1, C.sizeof_x264_param_t))
	cPreset, cProfile := C.CString(opt.Preset), C.CString(profile)
	defer C.free(unsafe.Pointer(cPreset))
	defer C.free(unsafe.Pointer(cProfile))
	if C.onair_setup(e.param, cPreset, cProfile, C.int(p.Width), C.int(p.Height), C.int(p.FPS),
		C.int(p.BitrateKbps), C.int(p.KeyframeIntervalFrames()), C.int(opt.Threads)) < 0 {
		e.Close()
		return nil, fmt.Errorf("x264: preset %q or profile %q refused", opt.Preset, profile)
	}
	cThreadName := C.CString(ThreadName)
	defer C.free(unsafe.Pointer(cThreadName))
	e.handle = C.onair_open(e.param, cThreadName)
	if e.handle == nil {
		e.Close()
		return nil, fmt.Errorf("x264: open encoder %dx%d@%d", p.Width, p.Height, p.FPS)
	}
	e.picture = (*C.x264_picture_t)(C.calloc(1, C.sizeof_x264_picture_t))
	if e.picture == nil {
		e.Close()
		return nil, errors.New("x264: allocate picture")
	}
	C.onair_picture(e.picture, C.int(p.Width), C.int(p.Height))
	return e, nil
}

// Encode encodes one picture; see encoder.VideoEncoder.
func (e *Encoder) Encode(f media.VideoFrame, forceKeyframe bool) (media.Sample, bool, error) {
	if e.handle == nil {
		return media.Sample{}, false, errors.New("x264: encoder is closed")
	}
	if f.Width != e.params.Width || f.Height != e.params.Height {
		return media.Sample{}, false, fmt.Errorf("x264: frame is %dx%d, encoder %dx%d", f.Width, f.Height, e.params.Width, e.params.Height)
	}
	src, err := e.i420(f)
	if err != nil {
		return media.Sample{}, false, err
	}
	w, h := e.params.Width, e.params.Height
	force := C.int(0)
	if forceKeyframe {
		force = 1
	}
	// x264 reads the planes straight from the frame (it copies them into
	// its own picture anyway); copying them into a picture of ours first
	// cost a second pass over 1.4 MB per 720p frame.
	r := C.onair_encode(e.handle, e.picture,
		(*C.uint8_t)(unsafe.Pointer(&src[0])),
		(*C.uint8_t)(unsafe.Pointer(&src[w*h])),
		(*C.uint8_t)(unsafe.Pointer(&src[w*h+w*h/4])),
		force, C.int64_t(f.Capture/time.Microsecond))
	switch {
	case r.size < 0:
		return media.Sample{}, false, fmt.Errorf("x264: encode frame %d failed", e.frames)
	case r.size == 0:
		return media.Sample{}, false, nil
	}
	e.frames++
	// Owned by the sample (consumers share it read-only); x264 reuses its
	// buffer at the next call.
	data := make([]byte, int(r.size))
	copy(data, unsafe.Slice((*byte)(unsafe.Pointer(r.payload)), int(r.size)))
	return media.Sample{
		Kind: media.Video, Data: data, Capture: f.Capture,
		Duration: time.Second / time.Duration(e.params.FPS), Keyframe: r.keyframe != 0,
	}, true, nil
}

// i420 returns the frame's pixels as one I420 buffer: the frame's own
// memory when it is I420, else a conversion into e.scratch.
func (e *Encoder) i420(f media.VideoFrame) ([]byte, error) {
	w, h := e.params.Width, e.params.Height
	src := f.Data
	switch f.Format {
	case media.I420:
	case media.YUYV:
		if len(e.scratch) != w*h*3/2 {
			e.scratch = make([]byte, w*h*3/2)
		}
		if err := encoder.YUYVToI420(e.scratch, f.Data, w, h); err != nil {
			return nil, fmt.Errorf("x264: %w", err)
		}
		src = e.scratch
	default:
		return nil, fmt.Errorf("x264: cannot encode %s pictures", f.Format)
	}
	if len(src) < w*h*3/2 {
		return nil, fmt.Errorf("x264: frame has %d bytes, %dx%d I420 needs %d", len(src), w, h, w*h*3/2)
	}
	return src, nil
}

// steeredVBV is the VBV buffer, in time at the bitrate, once the bitrate
// is steered (SetBitrate: the uplink's congestion control, a fleet
// setting). The one second New starts with lets x264 go on spending the
// buffer it saved at the old rate: cut from 3960 to 1332 kbit/s on a busy
// picture, it kept sending pictures of the old size for about 12 frames
// (0.4 s), enough to overflow the queue of the link that had just shrunk;
// with 250 ms, 2 to 3 frames. Keyframes then get at most a quarter second
// of the bitrate: 41 KB at 1332 kbit/s, twice what x264 made of a noise
// picture at that rate.
const steeredVBV = 250 * time.Millisecond

// SetBitrate changes the target bitrate at once, with a VBV buffer of
// steeredVBV so that the output follows the new rate within a few pictures.
func (e *Encoder) SetBitrate(kbps int) error {
	if e.handle == nil {
		return errors.New("x264: encoder is closed")
	}
	if kbps <= 0 {
		return fmt.Errorf("x264: bitrate %d kbps: want at least 1", kbps)
	}
	if C.onair_set_bitrate(e.handle, e.param, C.int(kbps), C.int(steeredVBV/time.Millisecond)) < 0 {
		return fmt.Errorf("x264: set bitrate %d kbps refused", kbps)
	}
	e.params.BitrateKbps = kbps
	return nil
}

// Close frees the encoder; it is safe to call more than once.
func (e *Encoder) Close() error {
	if e.handle != nil {
		C.x264_encoder_close(e.handle)
		e.handle = nil
	}
	if e.picture != nil {
		C.free(unsafe.Pointer(e.picture))
		e.picture = nil
	}
	if e.param != nil {
		C.free(unsafe.Pointer(e.param))
		e.param = nil
	}
	return nil
}

var _ encoder.VideoEncoder = (*Encoder)(nil)
