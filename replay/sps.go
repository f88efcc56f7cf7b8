package replay

import "errors"

// spsInfo is what the MP4 sample entry needs from an H.264 sequence
// parameter set: the picture size for tkhd/avc1 and, for the High profiles,
// the chroma format and bit depths that avcC repeats.
type spsInfo struct {
	profile, constraints, level  byte
	chromaFormat                 uint32 // chroma_format_idc, 1 (4:2:0) unless the SPS says otherwise
	bitDepthLuma, bitDepthChroma uint32 // minus 8, as coded
	width, height                int
}

var errBadSPS = errors.New("malformed H.264 sequence parameter set")

// highProfile tells whether an SPS of this profile_idc carries chroma format
// and bit depth (H.264 7.3.2.1.1), which avcC then repeats.
func highProfile(profile byte) bool {
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// parseSPS reads an SPS NAL unit (header byte included, no start code). It
// reads untrusted bytes: every loop is bounded and every read checked.
func parseSPS(nal []byte) (spsInfo, error) {
	var s spsInfo
	if len(nal) < 4 || nal[0]&0x1f != 7 {
		return s, errBadSPS
	}
	s.profile, s.constraints, s.level = nal[1], nal[2], nal[3]
	s.chromaFormat = 1
	r := bitReader{data: nal[4:]}
	r.ue() // seq_parameter_set_id
	separatePlanes := false
	if highProfile(s.profile) {
		s.chromaFormat = r.ue()
		if s.chromaFormat > 3 {
			return s, errBadSPS
		}
		if s.chromaFormat == 3 {
			separatePlanes = r.bit() == 1
		}
		s.bitDepthLuma = r.ue()
		s.bitDepthChroma = r.ue()
		if s.bitDepthLuma > 6 || s.bitDepthChroma > 6 {
			return s, errBadSPS
		}
		r.bit() // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 {
			lists := 8
			if s.chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bit() == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(&r, size)
				}
			}
		}
	}
	r.ue() // log2_max_frame_num_minus4
	switch r.ue() {
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bit() // delta_pic_order_always_zero_flag
		r.se()  // offset_for_non_ref_pic
		r.se()  // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return s, errBadSPS
		}
		for range n {
			r.se()
		}
	}
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_value_allowed_flag
	widthMBs := r.ue() + 1
	heightUnits := r.ue() + 1
	frameMBsOnly := r.bit()
	if frameMBsOnly == 0 {
		r.bit() // mb_adaptive_frame_field_flag
	}
	r.bit() // direct_8x8_inference_flag
	var cropLeft, cropRight, cropTop, cropBottom uint32
	if r.bit() == 1 {
		cropLeft, cropRight, cropTop, cropBottom = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err || widthMBs > 1024 || heightUnits > 1024 {
		return s, errBadSPS
	}
	cropX, cropY := uint32(1), 2-frameMBsOnly
	if s.chromaFormat != 0 && !separatePlanes {
		if s.chromaFormat != 3 {
			cropX = 2
		}
		if s.chromaFormat == 1 {
			cropY *= 2
		}
	}
	width := widthMBs * 16
	height := (2 - frameMBsOnly) * heightUnits * 16
	if (uint64(cropLeft)+uint64(cropRight))*uint64(cropX) >= uint64(width) ||
		(uint64(cropTop)+uint64(cropBottom))*uint64(cropY) >= uint64(height) {
		return s, errBadSPS
	}
	s.width = int(width - cropX*(cropLeft+cropRight))
	s.height = int(height - cropY*(cropTop+cropBottom))
	return s, nil
}

func skipScalingList(r *bitReader, size int) {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err {
			return
		}
	}
}

// bitReader reads an RBSP bit by bit, dropping emulation prevention bytes
// (00 00 03) on the way so that no copy of the NAL unit is needed. Reading
// past the end sets err and yields zeros.
type bitReader struct {
	data  []byte
	pos   int   // next byte
	zeros int   // zero bytes just read, for emulation prevention
	cur   byte  // current byte
	left  uint8 // bits left in cur
	err   bool
}

func (r *bitReader) bit() uint32 {
	if r.left == 0 {
		if r.pos >= len(r.data) {
			r.err = true
			return 0
		}
		b := r.data[r.pos]
		r.pos++
		if r.zeros >= 2 && b == 3 {
			r.zeros = 0
			if r.pos >= len(r.data) {
				r.err = true
				return 0
			}
			b = r.data[r.pos]
			r.pos++
		}
		if b == 0 {
			r.zeros++
		} else {
			r.zeros = 0
		}
		r.cur, r.left = b, 8
	}
	r.left--
	return uint32(r.cur>>r.left) & 1
}

// ue reads an unsigned Exp-Golomb number; values beyond 32 bits are errors.
func (r *bitReader) ue() uint32 {
	n := 0
	for r.bit() == 0 {
		if r.err || n >= 31 {
			r.err = true
			return 0
		}
		n++
	}
	v := uint32(1)
	for range n {
		v = v<<1 | r.bit()
	}
	return v - 1
}

// se reads a signed Exp-Golomb number.
func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32(v/2) + 1
	}
	return -int32(v / 2)
}
