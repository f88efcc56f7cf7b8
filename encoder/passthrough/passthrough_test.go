package passthrough

import (
	"bytes"
	"testing"

	"github.com/onair/onair/media"
	"github.com/onair/onair/media/h264"
)

func TestPassthrough(t *testing.T) {
	e := New(30)
	var idr []byte
	idr = h264.AppendAnnexB(idr, []byte{0x67, 1})
	idr = h264.AppendAnnexB(idr, []byte{0x68, 2})
	idr = h264.AppendAnnexB(idr, []byte{0x65, 3})
	s, ok, err := e.Encode(media.VideoFrame{Format: media.H264, Data: idr}, false)
	if err != nil || !ok || !s.Keyframe || !bytes.Equal(s.Data, idr) {
		t.Fatalf("IDR: %+v %v %v", s, ok, err)
	}
	idr[len(idr)-1] = 9 // the sample owns a copy
	if s.Data[len(s.Data)-1] != 3 {
		t.Fatal("sample shares the camera's buffer")
	}
	s, ok, err = e.Encode(media.VideoFrame{Format: media.H264, Data: h264.AppendAnnexB(nil, []byte{0x41, 3})}, true)
	if err != nil || !ok || s.Keyframe {
		t.Fatalf("P frame: %+v %v %v", s, ok, err)
	}
	if _, ok, err = e.Encode(media.VideoFrame{Format: media.H264, Data: h264.AppendAnnexB(nil, []byte{0x67, 1})}, false); ok || err != nil {
		t.Fatalf("SPS alone: ok=%v err=%v", ok, err)
	}
	if _, _, err = e.Encode(media.VideoFrame{Format: media.YUYV, Data: idr}, false); err == nil {
		t.Fatal("YUYV accepted")
	}
	if e.SetBitrate(1000) == nil {
		t.Fatal("SetBitrate must say it cannot")
	}
}
