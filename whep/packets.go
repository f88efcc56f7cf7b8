package whep

import (
	"sync"
	"time"

	"github.com/onair/onair/internal/rtppack"
	"github.com/onair/onair/media"
)

// frame is one video sample cut into RTP payloads, once for every viewer:
// each viewer sends the same payloads under its own RTP header (SSRC,
// payload type, sequence number, timestamp), and answers NACKs from them
// too, so neither the packetizing nor the retransmission history is paid
// per viewer. A frame is immutable once made.
type frame struct {
	capture time.Duration
	buf     []byte   // the payloads back to back
	ends    []uint32 // payload i is buf[ends[i-1]:ends[i]]
	// the last payload carries the marker bit (rtppack marks nothing else)
	marker bool
}

func (f *frame) len() int { return len(f.ends) }

func (f *frame) payload(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = f.ends[i-1]
	}
	return f.buf[start:f.ends[i]]
}

// SendRTP collects one payload (rtppack.Sender).
func (f *frame) SendRTP(payload []byte, marker bool) error {
	f.buf = append(f.buf, payload...)
	f.ends = append(f.ends, uint32(len(f.buf)))
	f.marker = marker
	return nil
}

// packetCache hands out the frame of a video sample, packetizing it the
// first time any viewer asks. The viewers' queues hold the very same
// samples (the hub fans out one media.Sample to every sink), so a sample is
// known by where its data lives, its size and its capture time.
type packetCache struct {
	mu     sync.Mutex
	h264   rtppack.H264
	recent [32]cachedFrame // a second of video: viewers far behind packetize again
	next   int
}

type cachedFrame struct {
	data *byte // the sample's first byte; nil for an empty slot
	size int
	f    *frame
}

func (c *packetCache) get(s media.Sample) *frame {
	if len(s.Data) == 0 {
		return &frame{capture: s.Capture}
	}
	data := &s.Data[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	// Newest first: viewers that keep up ask for the latest sample.
	for k := 1; k <= len(c.recent); k++ {
		e := &c.recent[(c.next-k+len(c.recent))%len(c.recent)]
		if e.data == nil {
			break
		}
		if e.data == data && e.size == len(s.Data) && e.f.capture == s.Capture {
			return e.f
		}
	}
	n := len(s.Data)/(rtppack.MTU-2) + 4
	f := &frame{capture: s.Capture, buf: make([]byte, 0, len(s.Data)+2*n), ends: make([]uint32, 0, n)}
	_ = c.h264.Packetize(s.Data, f) // f.SendRTP never fails
	c.recent[c.next] = cachedFrame{data: data, size: len(s.Data), f: f}
	c.next = (c.next + 1) % len(c.recent)
	return f
}
