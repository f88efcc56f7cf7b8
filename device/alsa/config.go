package alsa

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Config.withDefaults.
const (
	// DefaultSampleRate is Opus's native rate; the encoder needs no resampler.
	DefaultSampleRate = 48000
	// DefaultQueueBuffers holds 500 ms of 20 ms buffers: enough to ride out
	// a garbage-collection pause or a busy encoder without dropping.
	DefaultQueueBuffers = 25
	// DefaultStallTimeout is how long a started device may deliver nothing
	// before ReadAudio reports it lost. A USB microphone that is unplugged
	// does not always get a stop notification from ALSA, so silence from the
	// device itself is the signal that never fails to arrive.
	DefaultStallTimeout = 2 * time.Second
)

// bufferDivisor cuts one second into 20 ms buffers: one Opus packet each.
const bufferDivisor = 50

// devicePeriods is how many 20 ms periods the ALSA ring holds. It also
// bounds how late a buffer can legitimately arrive: lateness up to the whole
// device ring is buffering, beyond it samples were lost (see captureTimer).
const devicePeriods = 4

// Errors callers can test for with errors.Is.
var (
	// ErrNoDevice means no capture device matched Config.Device; the error
	// text lists the devices that exist.
	ErrNoDevice = errors.New("no matching ALSA capture device")
	// ErrDeviceLost means the device stopped delivering audio after it had
	// started: unplugged, or stalled for Config.StallTimeout.
	ErrDeviceLost = errors.New("ALSA capture device lost")
	// ErrClosed is returned by ReadAudio after Close.
	ErrClosed = errors.New("ALSA source closed")
	// ErrNoCgo is returned by Open and List in builds without cgo.
	ErrNoCgo = errors.New("ALSA capture needs a build with cgo (CGO_ENABLED=1)")
)

// Config selects and sets up a microphone.
type Config struct {
	// Device is the ALSA capture device: "" for the default capture device;
	// a card index ("1", "hw:1", "hw:1,0"); a card's short id as in
	// /proc/asound/cards and `arecord -l` ("Device", "hw:CARD=Device,DEV=0");
	// the device's ALSA id as List reports it (":1,0", "default", a PCM
	// defined in asound.conf); or a part of its description or card name
	// ("USB"), compared without regard to case. The first match in that
	// order wins.
	Device string
	// SampleRate in Hz; 0 means DefaultSampleRate. It must be a multiple of
	// 50 so that buffers are exactly 20 ms.
	SampleRate int
	// Channels is 1 (mono) or 2 (stereo); 0 means 1.
	Channels int
	// QueueBuffers is how many 20 ms buffers wait for ReadAudio before the
	// oldest is dropped; 0 means DefaultQueueBuffers.
	QueueBuffers int
	// StallTimeout is how long the device may deliver nothing before
	// ReadAudio returns ErrDeviceLost; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// Logger receives the device choice and miniaudio's warnings; nil means
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults fills zero fields and checks the rest, so Open works on one
// validated value.
func (c Config) withDefaults() (Config, error) {
	if c.SampleRate == 0 {
		c.SampleRate = DefaultSampleRate
	}
	if c.Channels == 0 {
		c.Channels = 1
	}
	if c.QueueBuffers == 0 {
		c.QueueBuffers = DefaultQueueBuffers
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.SampleRate < 8000 || c.SampleRate > 192000 || c.SampleRate%bufferDivisor != 0:
		return c, fmt.Errorf("sample rate %d Hz: want 8000..192000 and a multiple of %d", c.SampleRate, bufferDivisor)
	case c.Channels != 1 && c.Channels != 2:
		return c, fmt.Errorf("channels %d: want 1 or 2", c.Channels)
	case c.QueueBuffers < 2:
		return c, fmt.Errorf("queue of %d buffers: want at least 2", c.QueueBuffers)
	case c.StallTimeout < 0:
		return c, fmt.Errorf("stall timeout %v: want a positive duration", c.StallTimeout)
	}
	return c, nil
}

// bufferFrames is the number of frames in one 20 ms buffer.
func (c Config) bufferFrames() int { return c.SampleRate / bufferDivisor }

// DeviceInfo describes one capture device as ALSA hints name it.
type DeviceInfo struct {
	// Name is the human description, such as "USB PnP Sound Device, USB
	// Audio".
	Name string
	// ID is what ALSA opens: ":1,0" for card 1 device 0 (miniaudio then
	// tries dsnoop, then hw), or a PCM name such as "default".
	ID string
	// Default is true for ALSA's "default" device.
	Default bool
}

// Hardware reports whether the device is a sound card's capture device
// (miniaudio's ":card,device" ids) rather than a PCM that ALSA always lists,
// such as "null" or "default". audio.source: auto takes any hardware capture
// device as "there is a microphone"; a Pi's own cards (headphones, HDMI) are
// playback only and never appear in the capture list.
func (d DeviceInfo) Hardware() bool {
	rest, ok := strings.CutPrefix(d.ID, ":")
	if !ok {
		return false
	}
	_, _, ok = parseCardRef(rest, nil)
	return ok
}

// String formats the device for logs and error messages.
func (d DeviceInfo) String() string {
	if d.Name == "" || d.Name == d.ID {
		return strconv.Quote(d.ID)
	}
	return fmt.Sprintf("%q (%s)", d.Name, d.ID)
}

// card is one sound card as /proc/asound/cards lists it. ALSA's device hints
// describe a card by its long name only, but people also know it by the short
// id that `arecord -l` and asound.conf use ("Device", "U0x46d0x825"), so the
// card list lets either name find the device.
type card struct {
	index int
	id    string // short id, as in hw:CARD=<id>
	name  string // long name
}

// parseCards reads the text of /proc/asound/cards: a header line per card,
// " 1 [Device         ]: USB-Audio - USB PnP Sound Device", followed by an
// indented line of detail that is skipped.
func parseCards(text string) []card {
	var cards []card
	for _, line := range strings.Split(text, "\n") {
		indexText, rest, ok := strings.Cut(strings.TrimSpace(line), " [")
		if !ok {
			continue
		}
		index, err := strconv.Atoi(indexText)
		if err != nil {
			continue
		}
		id, rest, ok := strings.Cut(rest, "]:")
		if !ok {
			continue
		}
		_, name, _ := strings.Cut(rest, " - ")
		cards = append(cards, card{index: index, id: strings.TrimSpace(id), name: strings.TrimSpace(name)})
	}
	return cards
}

// matchDevice picks the device that want names, trying the most exact forms
// first: the ALSA id, a card index or hw:CARD=<id>, a card's short id, a
// part of the device's description, a part of a card's long name. ok is
// false when want is empty (the caller opens ALSA's default). When nothing
// matches, the error wraps ErrNoDevice and lists what exists, so a crew member
// reading the log can copy a working name into the config.
func matchDevice(want string, devices []DeviceInfo, cards []card) (DeviceInfo, bool, error) {
	want = strings.TrimSpace(want)
	if want == "" {
		return DeviceInfo{}, false, nil
	}
	for _, d := range devices {
		if d.ID == want {
			return d, true, nil
		}
	}
	byCard := func(index, dev int) (DeviceInfo, bool) {
		id := fmt.Sprintf(":%d,%d", index, dev)
		for _, d := range devices {
			if d.ID == id {
				return d, true
			}
		}
		return DeviceInfo{}, false
	}
	if index, dev, ok := parseCardRef(want, cards); ok {
		if d, ok := byCard(index, dev); ok {
			return d, true, nil
		}
	}
	for _, c := range cards {
		if strings.EqualFold(c.id, want) {
			if d, ok := byCard(c.index, 0); ok {
				return d, true, nil
			}
		}
	}
	lower := strings.ToLower(want)
	for _, d := range devices {
		if strings.Contains(strings.ToLower(d.Name), lower) {
			return d, true, nil
		}
	}
	for _, c := range cards {
		if strings.Contains(strings.ToLower(c.name), lower) {
			if d, ok := byCard(c.index, 0); ok {
				return d, true, nil
			}
		}
	}
	return DeviceInfo{}, false, fmt.Errorf("%w for %q; capture devices: %s%s", ErrNoDevice, want, describe(devices), describeCards(cards))
}

// parseCardRef reads the card forms people write in configs: "1", "hw:1",
// "hw:1,0", "plughw:1,0", "hw:CARD=Device,DEV=0". USB cards enumerate in
// any order, so names are the safer choice, but an index is what
// `arecord -l` shows first.
func parseCardRef(s string, cards []card) (index, dev int, ok bool) {
	for _, prefix := range []string{"plughw:", "hw:"} {
		if rest, found := strings.CutPrefix(s, prefix); found {
			s = rest
			break
		}
	}
	cardText, devText, hasDev := strings.Cut(s, ",")
	if id, named := strings.CutPrefix(cardText, "CARD="); named {
		cardText = id
		for _, c := range cards {
			if c.id == id {
				cardText = strconv.Itoa(c.index)
			}
		}
		if hasDev {
			devText, hasDev = strings.CutPrefix(devText, "DEV=")
			if !hasDev {
				return 0, 0, false
			}
		}
	}
	index, err := strconv.Atoi(cardText)
	if err != nil || index < 0 {
		return 0, 0, false
	}
	if hasDev {
		dev, err = strconv.Atoi(devText)
		if err != nil || dev < 0 {
			return 0, 0, false
		}
	}
	return index, dev, true
}

// describeCards adds the card list to an error message, when there is one.
func describeCards(cards []card) string {
	if len(cards) == 0 {
		return ""
	}
	parts := make([]string, len(cards))
	for i, c := range cards {
		parts[i] = fmt.Sprintf("%d [%s] %s", c.index, c.id, c.name)
	}
	return "; sound cards: " + strings.Join(parts, ", ")
}

// describe lists devices in one line for an error message.
func describe(devices []DeviceInfo) string {
	if len(devices) == 0 {
		return "none"
	}
	parts := make([]string, len(devices))
	for i, d := range devices {
		parts[i] = d.String()
	}
	return strings.Join(parts, ", ")
}
