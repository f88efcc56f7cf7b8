package v4l2m2m

import (
	"bytes"
	"testing"

	"github.com/onair/onair/media/h264"
)

func TestBitWriter(t *testing.T) {
	var w bitWriter
	w.ue(0)  // 1
	w.ue(1)  // 010
	w.ue(2)  // 011
	w.ue(3)  // 00100
	w.se(1)  // 010
	w.se(-1) // 011
	w.trailingBits()
	// 1 010 011 0 | 0100 010 0 | 11 1 00000
	if want := []byte{0b10100110, 0b01000100, 0b11100000}; !bytes.Equal(w.buf, want) {
		t.Fatalf("bits %08b, want %08b", w.buf, want)
	}
}

func TestEmulationPrevention(t *testing.T) {
	h := &fakeH264{}
	h.begin()
	h.bw.buf = append(h.bw.buf, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0x80)
	// Every 00 00 followed by a byte up to 3 gets a 03 between; finish
	// then adds the stop bit's byte, which the prefix leaves out.
	got := h.finish(nil, 3, 5)
	want := []byte{0, 0, 0, 1, 0x65, 0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 3, 0x80}
	if !bytes.HasPrefix(got, want) {
		t.Fatalf("NAL % x, want prefix % x", got, want)
	}
}

func TestFakeH264Structure(t *testing.T) {
	h := newFakeH264(1920, 1080, profileHigh, Level4_0)
	idr := append([]byte(nil), h.idr(true)...)
	info := h264.Inspect(idr)
	if !info.IDR || !info.SPS || !info.PPS || info.Slices != 1 {
		t.Fatalf("IDR access unit: %+v", info)
	}
	sps, _ := h264.ParameterSets(idr)
	if sps[1] != 100 || sps[3] != 40 {
		t.Fatalf("SPS profile_idc %d level_idc %d", sps[1], sps[3])
	}
	p := h.p()
	if info := h264.Inspect(p); info.IDR || info.Slices != 1 || info.SPS {
		t.Fatalf("P access unit: %+v", info)
	}
	cb := newFakeH264(640, 480, profileConstrainedBaseline, Level3_0)
	sps, _ = h264.ParameterSets(cb.idr(true))
	if sps[1] != 66 || sps[2]&0xc0 != 0xc0 || sps[3] != 30 {
		t.Fatalf("constrained baseline SPS % x", sps[:4])
	}
}
