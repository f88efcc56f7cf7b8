package uplink

import "time"

// Tuning of the bitrate controller. The estimators measure what the whole
// connection may send; the encoder gets a share of it, leaving room for the
// audio track, RTP/SRTP headers and retransmissions.
const (
	// videoShare is the part of a congestion estimate given to video.
	videoShare = 0.85
	// upInterval spaces increases: a network that just recovered is given
	// time to show whether it holds before the encoder asks for more.
	upInterval = time.Second
	// upStep is the largest increase per upInterval (as a fraction).
	upStep = 0.12
	// changeThreshold ignores changes too small to matter, so the encoder
	// is not reconfigured on every estimate.
	changeThreshold = 0.03
	// Receiver-report loss above lossDown cuts the bitrate, loss between
	// lossHold and lossDown holds it (RFC 8836-style thresholds, as in GCC).
	lossDown = 0.10
	lossHold = 0.02
	// rembMaxAge forgets a REMB the server stopped sending.
	rembMaxAge = 5 * time.Second
	// A target below steepFall of the bitrate in force when the fall began
	// is a steep fall: the path lost most of its capacity at once (a rate
	// cap, a handover), its queue overflows, and the pictures in flight are
	// mostly lost. A fall is the decreases that follow each other within
	// steepWindow: GCC may take a cap in several steps of one feedback
	// each (3751, 1880, 1476, 1243, 838 kbit/s within 0.3 s, seen at a
	// 1000 kbit/s cap), none of them under half the one before.
	// The encoder then gets steepMargin of the target: the first estimate
	// after such a fall is measured over a window that still holds traffic
	// from before it, and overstates what is left (GCC said 1570 kbit/s
	// of a link just capped at 1000, twice); under it, the queue drains,
	// and the usual climb finds the rest within seconds. The session also
	// pauses video and restarts it with a keyframe (drainPause).
	steepFall   = 0.5
	steepMargin = 0.6
	steepWindow = time.Second
	// maxFrameDivisor is the lowest frame rate the uplink asks for: a
	// quarter of the camera's (7.5 fps from 30). Below it the picture would
	// be a slide show; the bitrate floor then holds and packets queue.
	maxFrameDivisor = 4
)

// signals are the congestion feedback of one connection at one moment;
// zero values mean "no such feedback".
type signals struct {
	// twccKbps is the send-side (GCC) estimate from TWCC feedback.
	twccKbps int
	// rembKbps is the receiver's REMB estimate.
	rembKbps int
	// loss is the fraction of video packets lost from the latest receiver
	// report, negative when there is none.
	loss float64
}

// controller turns congestion feedback into an encoder bitrate between min
// and max: down at once, up in steps of at most upStep per upInterval.
type controller struct {
	minKbps, maxKbps int
	chosenKbps       int
	lastChange       time.Time
	// divisor sends every divisor-th picture: when even minKbps does not
	// fit, the frame rate goes down before the picture freezes (with the
	// bits per picture kept, each frame keeps its quality).
	divisor       int
	lastDivChange time.Time
	// The current fall (see steepWindow): the bitrate in force when it
	// began, its last decrease, and whether it was found steep already.
	fallFromKbps int
	lastFall     time.Time
	fallSteep    bool
}

func newController(minKbps, maxKbps, startKbps int) *controller {
	return &controller{minKbps: minKbps, maxKbps: maxKbps, chosenKbps: clamp(startKbps, minKbps, maxKbps), divisor: 1}
}

// target is the bitrate the feedback allows, before pacing the increase.
func (c *controller) target(s signals) int {
	return clamp(c.room(s), c.minKbps, c.maxKbps)
}

// room is what the feedback allows for video, not yet held within min and
// max: below min it sets the frame divisor.
func (c *controller) room(s signals) int {
	// What goes out now: fewer pictures at the same bits per picture.
	sending := float64(c.chosenKbps) / float64(c.divisor)
	if s.twccKbps <= 0 && s.rembKbps <= 0 && s.loss < 0 {
		// No feedback at all (yet): nothing says the path has room.
		return int(sending)
	}
	t := float64(c.maxKbps)
	if s.twccKbps > 0 {
		t = min(t, float64(s.twccKbps)*videoShare)
	}
	if s.rembKbps > 0 {
		t = min(t, float64(s.rembKbps)*videoShare)
	}
	// Receiver reports are the only feedback every WHIP server sends; they
	// steer the bitrate when the server offers neither TWCC nor REMB and
	// guard against heavy loss when it does.
	switch {
	case s.loss > lossDown:
		t = min(t, sending*(1-0.5*s.loss))
	case s.loss > lossHold:
		t = min(t, sending)
	}
	return int(t)
}

// frames returns how many pictures go out per picture sent (1 = all) and
// whether that changed: down at once when the room is under minKbps, back
// up one step per upInterval once the room is there again.
func (c *controller) frames(now time.Time, s signals) (divisor int, changed bool) {
	room := c.room(s)
	want := 1
	if room < c.minKbps {
		want = maxFrameDivisor
		if room > 0 {
			want = min(maxFrameDivisor, (c.minKbps+room-1)/room)
		}
	}
	next := c.divisor
	switch {
	case want > c.divisor:
		next = want
	case want < c.divisor && now.Sub(c.lastDivChange) >= upInterval:
		next = c.divisor - 1
	}
	if next == c.divisor {
		return c.divisor, false
	}
	c.divisor, c.lastDivChange = next, now
	return next, true
}

// update takes the latest feedback and returns the encoder bitrate, whether
// it changed, and whether that was a steep fall.
func (c *controller) update(now time.Time, s signals) (kbps int, changed, steep bool) {
	t := c.target(s)
	next := c.chosenKbps
	if t < c.chosenKbps {
		if c.lastFall.IsZero() || now.Sub(c.lastFall) > steepWindow {
			c.fallFromKbps, c.fallSteep = c.chosenKbps, false
		}
		c.lastFall = now
	}
	switch {
	case t < c.chosenKbps && !c.fallSteep && float64(t) < steepFall*float64(c.fallFromKbps):
		next, steep = max(c.minKbps, int(float64(t)*steepMargin)), true
		c.fallSteep = true
	case t < c.chosenKbps:
		next = t
	case t > c.chosenKbps && (c.lastChange.IsZero() || now.Sub(c.lastChange) >= upInterval):
		next = min(t, int(float64(c.chosenKbps)*(1+upStep))+1)
	}
	diff := next - c.chosenKbps
	if diff == 0 || (abs(diff) < int(float64(c.chosenKbps)*changeThreshold) && next != c.minKbps && next != c.maxKbps) {
		return c.chosenKbps, false, false
	}
	c.chosenKbps, c.lastChange = next, now
	return next, true, steep
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
