package h264

import (
	"bytes"
	"testing"
)

func TestNextNAL(t *testing.T) {
	au := []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6}
	var types []int
	var payloads [][]byte
	for nal, rest := NextNAL(au); nal != nil; nal, rest = NextNAL(rest) {
		types = append(types, Type(nal))
		payloads = append(payloads, nal)
	}
	if len(types) != 3 || types[0] != TypeSPS || types[1] != TypePPS || types[2] != TypeIDR {
		t.Fatalf("types %v", types)
	}
	if !bytes.Equal(payloads[0], []byte{0x67, 1, 2}) || !bytes.Equal(payloads[2], []byte{0x65, 4, 5, 6}) {
		t.Fatalf("payloads %x", payloads)
	}
	info := Inspect(au)
	if !info.IDR || !info.SPS || !info.PPS || info.Slices != 1 {
		t.Fatalf("info %+v", info)
	}
	sps, pps := ParameterSets(au)
	if !bytes.Equal(sps, []byte{0x67, 1, 2}) || !bytes.Equal(pps, []byte{0x68, 3}) {
		t.Fatalf("sps %x pps %x", sps, pps)
	}
	if got := AppendAnnexB(nil, sps); !bytes.Equal(got, []byte{0, 0, 0, 1, 0x67, 1, 2}) {
		t.Fatalf("AppendAnnexB %x", got)
	}
}

func TestNextNALNoStartCode(t *testing.T) {
	for _, in := range [][]byte{nil, {}, {0, 0}, {1, 2, 3}, {0, 0, 0}} {
		if nal, _ := NextNAL(in); nal != nil {
			t.Fatalf("NextNAL(%x) = %x", in, nal)
		}
	}
}

func FuzzInspect(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65})
	f.Add([]byte{0, 0, 1, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		info := Inspect(data)
		n := 0
		for nal, rest := NextNAL(data); nal != nil; nal, rest = NextNAL(rest) {
			n++
			if n > len(data) {
				t.Fatal("NextNAL does not advance")
			}
		}
		if info.Slices > n {
			t.Fatalf("%d slices in %d NAL units", info.Slices, n)
		}
	})
}

func BenchmarkInspect(b *testing.B) {
	au := append([]byte{0, 0, 0, 1, 0x67}, make([]byte, 20)...)
	au = append(au, 0, 0, 0, 1, 0x68, 1, 2)
	au = append(au, 0, 0, 0, 1, 0x65)
	au = append(au, bytes.Repeat([]byte{0x55}, 10000)...)
	b.ReportAllocs()
	for b.Loop() {
		Inspect(au)
	}
}
