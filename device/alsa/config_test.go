package alsa

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SampleRate != 48000 || cfg.Channels != 1 || cfg.QueueBuffers != DefaultQueueBuffers ||
		cfg.StallTimeout != DefaultStallTimeout || cfg.Logger == nil || cfg.bufferFrames() != 960 {
		t.Fatalf("defaults = %+v", cfg)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{SampleRate: 44000 + 7}, "sample rate"},
		{Config{SampleRate: 4000}, "sample rate"},
		{Config{Channels: 3}, "channels 3"},
		{Config{QueueBuffers: 1}, "queue"},
		{Config{StallTimeout: -time.Second}, "stall timeout"},
	} {
		if _, err := tc.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

// procCards is /proc/asound/cards from a Pi 4 with a USB microphone and a
// Logitech webcam, whose card id appears nowhere in the ALSA hints.
const procCards = ` 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones
                      bcm2835 Headphones
 1 [Device         ]: USB-Audio - USB PnP Sound Device
                      C-Media Electronics Inc. USB PnP Sound Device at usb-0000:01:00.0-1.3, full speed
 2 [U0x46d0x825    ]: USB-Audio - USB Device 0x46d:0x825
                      USB Device 0x46d:0x825 at usb-0000:01:00.0-1.4, high speed
`

func TestParseCards(t *testing.T) {
	got := parseCards(procCards)
	want := []card{
		{0, "Headphones", "bcm2835 Headphones"},
		{1, "Device", "USB PnP Sound Device"},
		{2, "U0x46d0x825", "USB Device 0x46d:0x825"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseCards = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("card %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := parseCards("--- no soundcards ---\n"); len(got) != 0 {
		t.Errorf("no soundcards parsed to %+v", got)
	}
}

func TestMatchDevice(t *testing.T) {
	devices := []DeviceInfo{
		{Name: "Default ALSA Output (currently PipeWire Media Server)", ID: "default", Default: true},
		{Name: "bcm2835 Headphones, bcm2835 Headphones", ID: ":0,0"},
		{Name: "USB PnP Sound Device, USB Audio", ID: ":1,0"},
		{Name: "USB Device 0x46d:0x825, USB Audio", ID: ":2,0"},
		{Name: "Scarlett 2i2 USB, USB Audio", ID: ":3,0"},
		{Name: "Scarlett 2i2 USB, USB Audio #1", ID: ":3,1"},
	}
	cards := parseCards(procCards)
	for _, tc := range []struct {
		want   string
		wantID string // "" with ok false: ALSA default
	}{
		{"", ""},
		{"  ", ""},
		{"default", "default"},
		{":1,0", ":1,0"},
		{"1", ":1,0"},
		{"hw:3", ":3,0"},
		{"hw:3,1", ":3,1"},
		{"plughw:1,0", ":1,0"},
		{"hw:CARD=U0x46d0x825,DEV=0", ":2,0"},
		{"hw:CARD=Device", ":1,0"},
		{"u0x46d0x825", ":2,0"},
		{"usb pnp", ":1,0"},
		{"Scarlett", ":3,0"},
	} {
		got, ok, err := matchDevice(tc.want, devices, cards)
		if err != nil {
			t.Errorf("%q: %v", tc.want, err)
			continue
		}
		if ok != (tc.wantID != "") || got.ID != tc.wantID {
			t.Errorf("%q matched %v (ok %v), want %q", tc.want, got, ok, tc.wantID)
		}
	}
	for _, want := range []string{"Blue Yeti", "7", "hw:1,5", "hw:x", "hw:CARD=Nope", "hw:CARD=Device,0"} {
		_, _, err := matchDevice(want, devices, cards)
		if !errors.Is(err, ErrNoDevice) {
			t.Errorf("%q: error %v, want ErrNoDevice", want, err)
			continue
		}
		for _, listed := range []string{`"USB PnP Sound Device, USB Audio" (:1,0)`, "2 [U0x46d0x825] USB Device 0x46d:0x825"} {
			if !strings.Contains(err.Error(), listed) {
				t.Errorf("%q: error %q does not list %s", want, err, listed)
			}
		}
	}
	if _, _, err := matchDevice("x", nil, nil); err == nil || !strings.HasSuffix(err.Error(), "capture devices: none") {
		t.Errorf("no devices: error %v, want one saying none", err)
	}
}

func TestHardware(t *testing.T) {
	for id, want := range map[string]bool{
		":1,0": true, ":0,3": true, "default": false, "null": false, "onairtest": false, ":": false, ":x,0": false,
	} {
		if got := (DeviceInfo{ID: id}).Hardware(); got != want {
			t.Errorf("DeviceInfo{ID: %q}.Hardware() = %v, want %v", id, got, want)
		}
	}
}

func FuzzParseCardRef(f *testing.F) {
	cards := parseCards(procCards)
	for _, s := range []string{"1", "hw:1", "hw:1,0", "plughw:0,3", "hw:", ",", "-1", "hw:1,-2", "USB", "hw:CARD=Device,DEV=1", "CARD=,DEV="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		card, dev, ok := parseCardRef(s, cards)
		if ok && (card < 0 || dev < 0) {
			t.Fatalf("%q parsed to card %d device %d", s, card, dev)
		}
	})
}
