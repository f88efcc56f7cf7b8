// Package testsrc provides the built-in test sources: a moving test pattern
// with a frame counter and the wall-clock time drawn in, so a freeze or a
// delay is visible on any screen, and a tone. They stand in for a camera and
// a microphone on a developer's PC and when the box has none.
package testsrc

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// Pattern is a moving I420 test pattern paced at a fixed frame rate.
type Pattern struct {
	width, height int
	interval      time.Duration
	clock         *device.Clock
	wallClock     func() time.Time

	background []byte // colour bars, drawn once
	frame      []byte // the frame handed out, reused
	count      int64
	next       time.Duration // capture time of the next frame
	noise      bool
	rng        uint64
}

// WithNoise makes the lower third of the picture fresh noise in every frame,
// which no encoder can compress: the stream then runs at its full bitrate,
// as a busy camera picture would, for measurements.
func (p *Pattern) WithNoise() *Pattern {
	p.noise = true
	p.rng = 0x9e3779b97f4a7c15
	return p
}

// NewPattern makes a width x height pattern at fps frames per second on the
// given capture clock. wallClock supplies the time printed on the picture
// (display only); nil means time.Now.
func NewPattern(width, height, fps int, clock *device.Clock, wallClock func() time.Time) (*Pattern, error) {
	if width < 16 || height < 16 || width%2 != 0 || height%2 != 0 {
		return nil, fmt.Errorf("test pattern: size %dx%d must be even and at least 16x16", width, height)
	}
	if fps < 1 {
		return nil, fmt.Errorf("test pattern: fps %d must be at least 1", fps)
	}
	if wallClock == nil {
		wallClock = time.Now
	}
	p := &Pattern{
		width: width, height: height,
		interval:  time.Second / time.Duration(fps),
		clock:     clock,
		wallClock: wallClock,
		frame:     make([]byte, width*height*3/2),
		next:      clock.Now(),
	}
	p.background = p.drawBars()
	return p, nil
}

// bars are the Y, U, V values of the classic colour bars.
var bars = [][3]byte{
	{180, 128, 128}, // white (75 %)
	{162, 44, 142},  // yellow
	{131, 156, 44},  // cyan
	{112, 72, 58},   // green
	{84, 184, 198},  // magenta
	{65, 100, 212},  // red
	{35, 212, 114},  // blue
}

func (p *Pattern) drawBars() []byte {
	buf := make([]byte, len(p.frame))
	w, h := p.width, p.height
	y, u, v := buf[:w*h], buf[w*h:w*h+w*h/4], buf[w*h+w*h/4:]
	for row := 0; row < h; row++ {
		for col := 0; col < w; col++ {
			y[row*w+col] = bars[col*len(bars)/w][0]
		}
	}
	for row := 0; row < h/2; row++ {
		for col := 0; col < w/2; col++ {
			b := bars[col*2*len(bars)/w]
			u[row*w/2+col] = b[1]
			v[row*w/2+col] = b[2]
		}
	}
	return buf
}

// ReadVideo waits for the next frame time and returns the next picture. The
// frame's Data is reused by the next call.
func (p *Pattern) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	if wait := p.next - p.clock.Now(); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return media.VideoFrame{}, ctx.Err()
		case <-t.C:
		}
	} else if late := -wait; late > 4*p.interval {
		// We fell far behind (a stalled consumer): skip ahead rather than
		// burst out stale frames.
		p.next += late / p.interval * p.interval
	}
	capture := p.next
	p.next += p.interval
	p.render()
	p.count++
	return media.VideoFrame{
		Format: media.I420, Width: p.width, Height: p.height,
		Data: p.frame, Capture: capture,
	}, nil
}

// Frames is how many frames the pattern has produced.
func (p *Pattern) Frames() int64 { return p.count }

func (p *Pattern) render() {
	copy(p.frame, p.background)
	w, h := p.width, p.height
	// A white box moves across one bar height; a freeze stops it.
	box := h / 6
	travel := w - box
	pos := int(p.count*int64(w)/int64(2*30)) % (2 * travel)
	if pos > travel {
		pos = 2*travel - pos
	}
	p.fillY(pos, h-box-h/12, box, box, 235)
	if p.noise {
		p.fillNoise(h * 2 / 3)
	}
	// Text: frame counter and wall clock, large enough to read on a phone.
	scale := max(1, h/120)
	text := fmt.Sprintf("#%07d", p.count)
	p.text(w/20, h/12, scale, text)
	p.text(w/20, h/12+10*scale, scale, p.wallClock().Format("15:04:05.000"))
	p.text(w/20, h/12+20*scale, scale, "ONAIR TEST")
}

func (p *Pattern) fillY(x, y, bw, bh int, value byte) {
	w := p.width
	for row := max(0, y); row < min(p.height, y+bh); row++ {
		line := p.frame[row*w:]
		for col := max(0, x); col < min(w, x+bw); col++ {
			line[col] = value
		}
	}
}

// fillNoise writes pseudo-random luma from row top down (xorshift: cheap,
// and no two frames alike).
func (p *Pattern) fillNoise(top int) {
	y := p.frame[top*p.width : p.width*p.height]
	x := p.rng
	for i := 0; i+8 <= len(y); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(y[i:], x)
	}
	p.rng = x
}

// text draws white glyphs on a black box into the Y plane and greys the
// chroma under it, so the text reads on every bar.
func (p *Pattern) text(x, y, scale int, s string) {
	cw := (glyphWidth + 1) * scale
	bw, bh := len(s)*cw+2*scale, (glyphHeight+2)*scale
	p.fillY(x-scale, y-scale, bw, bh, 16)
	p.neutralChroma(x-scale, y-scale, bw, bh)
	for i := 0; i < len(s); i++ {
		g := glyphs[s[i]]
		for gy := 0; gy < glyphHeight; gy++ {
			for gx := 0; gx < glyphWidth; gx++ {
				if g[gy]&(0x10>>gx) != 0 {
					p.fillY(x+i*cw+gx*scale, y+gy*scale, scale, scale, 235)
				}
			}
		}
	}
}

func (p *Pattern) neutralChroma(x, y, bw, bh int) {
	w, h := p.width, p.height
	u, v := p.frame[w*h:w*h+w*h/4], p.frame[w*h+w*h/4:]
	for row := max(0, y/2); row < min(h/2, (y+bh+1)/2); row++ {
		for col := max(0, x/2); col < min(w/2, (x+bw+1)/2); col++ {
			u[row*w/2+col] = 128
			v[row*w/2+col] = 128
		}
	}
}

// Close releases nothing; it exists to satisfy device.VideoSource.
func (p *Pattern) Close() error { return nil }

var _ device.VideoSource = (*Pattern)(nil)
