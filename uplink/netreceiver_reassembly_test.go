package uplink

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The test receiver behaves as a browser at a gap: a complete keyframe
// behind it is shown once the gap is keyframeWait old, without a keyframe
// request; without a keyframe, the gap is waited for lossWait, then given up
// with a request.
func TestReassemblerKeyframeBehindGap(t *testing.T) {
	var pictures, keys, gaveUp, skippedLost, drops int
	r := &reassembler{
		picture: func(au []byte, decodable bool, _ int) {
			if !decodable {
				drops++
				return
			}
			pictures++
		},
		gaveUp:  func() { gaveUp++ },
		nack:    func([]uint16) {},
		skipped: func(lost int) { skippedLost += lost; drops++ },
	}
	packet := func(seq uint16, marker bool, nal ...byte) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Marker: marker}, Payload: nal}
	}
	t0 := time.Unix(0, 0)
	keyframe := func(seq uint16) []*rtp.Packet {
		return []*rtp.Packet{packet(seq, false, 0x67, 0x42, 0xe0, 0x1f), packet(seq+1, false, 0x68, 0xce, 0x3c, 0x80),
			packet(seq+2, true, 0x65, 0x88, 0x84)}
	}
	for _, p := range keyframe(100) {
		r.push(p, t0)
	}
	r.push(packet(103, true, 0x41, 0x9a), t0) // a picture
	r.flush(t0)
	keys = pictures // the keyframe and the picture after it
	// 104 is lost; 105 is the next picture, then a whole keyframe.
	r.push(packet(105, true, 0x41, 0x9b), t0)
	for _, p := range keyframe(106) {
		r.push(p, t0)
	}
	r.flush(t0.Add(keyframeWait / 2))
	if pictures != keys || gaveUp+skippedLost != 0 {
		t.Fatalf("before keyframeWait: %d more pictures, %d packets given up; want none yet", pictures-keys, gaveUp+skippedLost)
	}
	r.flush(t0.Add(keyframeWait))
	if pictures != keys+1 || skippedLost != 1 || gaveUp != 0 || drops != 1 {
		t.Fatalf("at keyframeWait: %d more pictures, %d skipped, %d given up with a keyframe request, %d dropped; "+
			"want the keyframe, the lost packet skipped without a request, the broken picture dropped", pictures-keys, skippedLost, gaveUp, drops)
	}
	// A gap with no keyframe behind it waits lossWait.
	r.push(packet(111, true, 0x41, 0x9c), t0.Add(time.Second)) // 109 and 110 lost
	r.flush(t0.Add(time.Second + keyframeWait))
	if gaveUp != 0 {
		t.Fatalf("a gap without a keyframe behind it given up after %s", keyframeWait)
	}
	r.flush(t0.Add(time.Second + lossWait))
	if gaveUp != 2 {
		t.Fatalf("a gap without a keyframe behind it not given up after %s (%d)", lossWait, gaveUp)
	}
}
