// Package h264 reads the NAL unit structure of H.264 Annex-B access units:
// enough to find keyframes and parameter sets without decoding anything.
package h264

// NAL unit types used by the box.
const (
	TypeSlice = 1
	TypeIDR   = 5
	TypeSEI   = 6
	TypeSPS   = 7
	TypePPS   = 8
	TypeAUD   = 9
)

// NextNAL returns the first NAL unit in data (without its start code) and
// the rest after it. It allocates nothing. nal is nil when data holds no
// further NAL unit.
func NextNAL(data []byte) (nal, rest []byte) {
	start := startCodeEnd(data, 0)
	if start < 0 {
		return nil, nil
	}
	for i := start; i+2 < len(data); i++ {
		if data[i] == 0 && data[i+1] == 0 && (data[i+2] == 1 || (data[i+2] == 0 && i+3 < len(data) && data[i+3] == 1)) {
			end := i
			return data[start:end], data[end:]
		}
	}
	return data[start:], nil
}

// startCodeEnd returns the index after the first start code at or after
// from, or -1.
func startCodeEnd(data []byte, from int) int {
	for i := from; i+2 < len(data); i++ {
		if data[i] == 0 && data[i+1] == 0 {
			if data[i+2] == 1 {
				return i + 3
			}
			if data[i+2] == 0 && i+3 < len(data) && data[i+3] == 1 {
				return i + 4
			}
		}
	}
	return -1
}

// Type is the NAL unit type of a NAL unit (without start code).
func Type(nal []byte) int {
	if len(nal) == 0 {
		return 0
	}
	return int(nal[0] & 0x1f)
}

// Info is what an access unit contains.
type Info struct {
	IDR, SPS, PPS bool
	// Slices counts coded slice NAL units (IDR or not).
	Slices int
}

// Inspect reports the NAL unit types in an Annex-B access unit.
func Inspect(au []byte) Info {
	var info Info
	for nal, rest := NextNAL(au); nal != nil; nal, rest = NextNAL(rest) {
		switch Type(nal) {
		case TypeIDR:
			info.IDR = true
			info.Slices++
		case TypeSlice:
			info.Slices++
		case TypeSPS:
			info.SPS = true
		case TypePPS:
			info.PPS = true
		}
	}
	return info
}

// ParameterSets returns the last SPS and PPS NAL units in an access unit
// (slices of au, nil when absent).
func ParameterSets(au []byte) (sps, pps []byte) {
	for nal, rest := NextNAL(au); nal != nil; nal, rest = NextNAL(rest) {
		switch Type(nal) {
		case TypeSPS:
			sps = nal
		case TypePPS:
			pps = nal
		}
	}
	return sps, pps
}

// AppendAnnexB appends a NAL unit with a 4-byte start code to dst.
func AppendAnnexB(dst, nal []byte) []byte {
	return append(append(dst, 0, 0, 0, 1), nal...)
}
