package v4l2m2m

import "math/bits"

// fakeH264 writes the smallest valid H.264 stream of a given size: what
// FakeDevice's "firmware" produces. It is pure Go so the fake runs the same
// everywhere (CGO_ENABLED=0, under qemu), and the package keeps to the
// project's rule that only the cgo edges (encoder/x264) link C.
//
// The pictures carry no image: an IDR picture codes every macroblock as
// Intra 16x16 with DC prediction and no residual (mid-grey), a P picture
// skips every macroblock. That is still a conforming stream which any
// decoder must decode without error, with real SPS, PPS, IDR and P slices
// whose profile, level, size, frame_num and idr_pic_id follow the encoder's
// settings. The raw pictures themselves are checked where they are handed
// over (FakeDevice keeps them), not through a lossy codec.
type fakeH264 struct {
	width, height int
	profileIDC    int
	constraints   uint32 // constraint_set0..5 flags, set0 in the top bit
	levelIDC      int

	frameNum int // of the next picture, since the last IDR
	idrPicID int

	bw  bitWriter
	out []byte
}

// log2MaxFrameNum is log2_max_frame_num_minus4 + 4: frame_num counts mod 16.
const log2MaxFrameNum = 4

func newFakeH264(width, height int, profile int32, level Level) *fakeH264 {
	h := &fakeH264{width: width, height: height, levelIDC: level.IDC()}
	switch profile {
	case profileMain:
		h.profileIDC, h.constraints = 77, 0b010000
	case profileHigh:
		h.profileIDC = 100
	case profileBaseline:
		h.profileIDC, h.constraints = 66, 0b100000
	default: // constrained baseline: baseline with constraint_set0 and 1
		h.profileIDC, h.constraints = 66, 0b110000
	}
	if h.levelIDC == 0 {
		h.levelIDC = 40
	}
	return h
}

// idr returns an IDR access unit, with SPS and PPS in front when headers
// is set. The slice is reused by the next call.
func (h *fakeH264) idr(headers bool) []byte {
	h.out = h.out[:0]
	if headers {
		h.out = h.appendSPS(h.out)
		h.out = h.appendPPS(h.out)
	}
	mbs := h.macroblocks()
	w := h.begin()
	w.ue(0)                 // first_mb_in_slice
	w.ue(7)                 // slice_type: I, and all slices of the picture
	w.ue(0)                 // pic_parameter_set_id
	w.u(log2MaxFrameNum, 0) // frame_num
	w.ue(uint32(h.idrPicID))
	w.u(1, 0) // no_output_of_prior_pics_flag
	w.u(1, 0) // long_term_reference_flag
	w.se(0)   // slice_qp_delta
	w.ue(1)   // disable_deblocking_filter_idc: off
	for i := 0; i < mbs; i++ {
		// I_16x16_2_0_0 (DC prediction, no coded residual), chroma DC
		// prediction, mb_qp_delta 0, and the always-present luma DC block
		// with no coefficients (coeff_token "1" as nC is 0 everywhere).
		w.u(8, 0b00100_1_1_1)
	}
	h.out = h.finish(h.out, 3, 5)
	h.idrPicID = (h.idrPicID + 1) % 2
	h.frameNum = 1
	return h.out
}

// p returns a P access unit that repeats the previous picture.
func (h *fakeH264) p() []byte {
	h.out = h.out[:0]
	w := h.begin()
	w.ue(0) // first_mb_in_slice
	w.ue(5) // slice_type: P, and all slices of the picture
	w.ue(0) // pic_parameter_set_id
	w.u(log2MaxFrameNum, uint32(h.frameNum))
	w.u(1, 0) // num_ref_idx_active_override_flag
	w.u(1, 0) // ref_pic_list_modification_flag_l0
	w.u(1, 0) // adaptive_ref_pic_marking_mode_flag
	w.se(0)   // slice_qp_delta
	w.ue(1)   // disable_deblocking_filter_idc
	w.ue(uint32(h.macroblocks()))
	h.out = h.finish(h.out, 2, 1)
	h.frameNum = (h.frameNum + 1) % (1 << log2MaxFrameNum)
	return h.out
}

func (h *fakeH264) macroblocks() int { return macroblocks(h.width) * macroblocks(h.height) }

func (h *fakeH264) appendSPS(dst []byte) []byte {
	w := h.begin()
	w.u(8, uint32(h.profileIDC))
	w.u(6, h.constraints)
	w.u(2, 0)
	w.u(8, uint32(h.levelIDC))
	w.ue(0) // seq_parameter_set_id
	if h.profileIDC == 100 {
		w.ue(1)   // chroma_format_idc: 4:2:0
		w.ue(0)   // bit_depth_luma_minus8
		w.ue(0)   // bit_depth_chroma_minus8
		w.u(1, 0) // qpprime_y_zero_transform_bypass_flag
		w.u(1, 0) // seq_scaling_matrix_present_flag
	}
	w.ue(log2MaxFrameNum - 4)
	w.ue(2) // pic_order_cnt_type 2: output order is decoding order
	w.ue(1) // max_num_ref_frames
	w.u(1, 0)
	mbW, mbH := macroblocks(h.width), macroblocks(h.height)
	w.ue(uint32(mbW - 1))
	w.ue(uint32(mbH - 1))
	w.u(1, 1) // frame_mbs_only_flag
	w.u(1, 1) // direct_8x8_inference_flag
	cropRight, cropBottom := (mbW*16-h.width)/2, (mbH*16-h.height)/2
	if cropRight > 0 || cropBottom > 0 {
		w.u(1, 1)
		w.ue(0)
		w.ue(uint32(cropRight))
		w.ue(0)
		w.ue(uint32(cropBottom))
	} else {
		w.u(1, 0)
	}
	w.u(1, 0) // vui_parameters_present_flag
	return h.finish(dst, 3, 7)
}

func (h *fakeH264) appendPPS(dst []byte) []byte {
	w := h.begin()
	w.ue(0)   // pic_parameter_set_id
	w.ue(0)   // seq_parameter_set_id
	w.u(1, 0) // entropy_coding_mode_flag: CAVLC
	w.u(1, 0) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)   // num_slice_groups_minus1
	w.ue(0)   // num_ref_idx_l0_default_active_minus1
	w.ue(0)   // num_ref_idx_l1_default_active_minus1
	w.u(1, 0) // weighted_pred_flag
	w.u(2, 0) // weighted_bipred_idc
	w.se(0)   // pic_init_qp_minus26
	w.se(0)   // pic_init_qs_minus26
	w.se(0)   // chroma_qp_index_offset
	w.u(1, 1) // deblocking_filter_control_present_flag
	w.u(1, 0) // constrained_intra_pred_flag
	w.u(1, 0) // redundant_pic_cnt_present_flag
	return h.finish(dst, 3, 8)
}

func (h *fakeH264) begin() *bitWriter {
	h.bw.buf = h.bw.buf[:0]
	h.bw.cur, h.bw.n = 0, 0
	return &h.bw
}

// finish ends the RBSP and appends it to dst as a NAL unit with a start
// code, inserting emulation prevention bytes.
func (h *fakeH264) finish(dst []byte, refIDC, nalType byte) []byte {
	h.bw.trailingBits()
	dst = append(dst, 0, 0, 0, 1, refIDC<<5|nalType)
	zeros := 0
	for _, b := range h.bw.buf {
		if zeros == 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// bitWriter writes an RBSP most significant bit first.
type bitWriter struct {
	buf []byte
	cur byte
	n   uint8
}

func (w *bitWriter) u(n int, v uint32) {
	for i := n - 1; i >= 0; i-- {
		w.cur = w.cur<<1 | byte(v>>uint(i)&1)
		w.n++
		if w.n == 8 {
			w.buf = append(w.buf, w.cur)
			w.cur, w.n = 0, 0
		}
	}
}

// ue writes Exp-Golomb ue(v).
func (w *bitWriter) ue(v uint32) {
	x := uint64(v) + 1
	n := bits.Len64(x)
	w.u(n-1, 0)
	for i := n - 1; i >= 0; i-- {
		w.u(1, uint32(x>>uint(i)&1))
	}
}

// se writes signed Exp-Golomb se(v).
func (w *bitWriter) se(v int32) {
	if v > 0 {
		w.ue(uint32(2*v - 1))
	} else {
		w.ue(uint32(-2 * v))
	}
}

func (w *bitWriter) trailingBits() {
	w.u(1, 1)
	for w.n != 0 {
		w.u(1, 0)
	}
}
