package uplink

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// The guard lets media through whatever the budget, and retransmissions
// only as far as a quarter of the video bitrate allows, refilled with time,
// and at most three copies of any one packet.
func TestRTXGuardBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	kbps := 1000
	g, err := rtxGuardFactory{videoKbps: func() int { return kbps }, now: func() time.Time { return now }}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	var sent []uint32
	w := g.BindLocalStream(&interceptor.StreamInfo{SSRC: 1, SSRCRetransmission: 2},
		interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
			sent = append(sent, h.SSRC)
			return 0, nil
		}))
	payload := make([]byte, 1188) // 1200 bytes with the header
	var seq uint16
	send := func(ssrc uint32, original uint16) bool {
		before := len(sent)
		payload[0], payload[1] = byte(original>>8), byte(original)
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: ssrc}, payload, nil); err != nil {
			t.Fatal(err)
		}
		return len(sent) > before
	}
	write := func(ssrc uint32, n int) (passed int) {
		for range n {
			seq++
			if send(ssrc, seq) {
				passed++
			}
		}
		return passed
	}
	if got := write(1, 100); got != 100 {
		t.Errorf("%d of 100 media packets passed, want all", got)
	}
	// 1000 kbps: 31 250 bytes/s for retransmissions, 7 812 bytes of
	// burst; the first burst is the minimum, 3 000 bytes: two packets.
	if got := write(2, 10); got != 2 {
		t.Errorf("%d of 10 retransmissions passed at once, want 2", got)
	}
	now = now.Add(time.Second) // refills up to the burst: six packets
	if got := write(2, 10); got != 6 {
		t.Errorf("%d of 10 retransmissions passed after a second, want 6 (the burst)", got)
	}
	now = now.Add(100 * time.Millisecond) // 612 + 3 125 bytes: three packets
	if got := write(2, 10); got != 3 {
		t.Errorf("%d of 10 retransmissions passed after 100 ms, want 3", got)
	}
	// One packet asked for again and again goes out three times.
	copies := 0
	for range 10 {
		now = now.Add(time.Second)
		if send(2, 7) {
			copies++
		}
	}
	if copies != rtxMaxPerPacket {
		t.Errorf("one packet sent again %d times, want %d", copies, rtxMaxPerPacket)
	}
	// No bitrate: what is left of the minimum burst, then nothing more.
	kbps = 0
	now = now.Add(time.Second)
	if got := write(2, 10); got != 2 {
		t.Errorf("%d retransmissions passed with no bitrate to share, want the 2 of the minimum burst", got)
	}
	now = now.Add(time.Second)
	if got := write(2, 10); got != 0 {
		t.Errorf("%d retransmissions passed a second later with no bitrate to share", got)
	}
	if got := write(1, 10); got != 10 {
		t.Errorf("%d of 10 media packets passed with no budget, want all", got)
	}
	// A stream without retransmissions is left alone.
	plain := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
	if got := g.BindLocalStream(&interceptor.StreamInfo{SSRC: 3}, plain); got == nil {
		t.Error("no writer for a stream without RTX")
	}
}
