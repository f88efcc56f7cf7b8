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

func TestMatchDevice(t *testing.T) {
	devices := []DeviceInfo{
		{Name: "Default ALSA Output (currently PipeWire Media Server)", ID: "default", Default: true},
		{Name: "bcm2835 Headphones, bcm2835 Headphones", ID: ":0,0"},
		{Name: "USB PnP Sound Device, USB Audio", ID: ":1,0"},
		{Name: "Scarlett 2i2 USB, USB Audio", ID: ":2,0"},
		{Name: "Scarlett 2i2 USB, USB Audio #1", ID: ":2,1"},
	}
	for _, tc := range []struct {
		want   string
		wantID string // "" with ok false: ALSA default
	}{
		{"", ""},
		{"  ", ""},
		{"default", "default"},
		{":1,0", ":1,0"},
		{"1", ":1,0"},
		{"hw:2", ":2,0"},
		{"hw:2,1", ":2,1"},
		{"plughw:1,0", ":1,0"},
		{"usb pnp", ":1,0"},
		{"Scarlett", ":2,0"},
	} {
		got, ok, err := matchDevice(tc.want, devices)
		if err != nil {
			t.Errorf("%q: %v", tc.want, err)
			continue
		}
		if ok != (tc.wantID != "") || got.ID != tc.wantID {
			t.Errorf("%q matched %v (ok %v), want %q", tc.want, got, ok, tc.wantID)
		}
	}
	for _, want := range []string{"Blue Yeti", "7", "hw:1,5", "hw:x"} {
		_, _, err := matchDevice(want, devices)
		if !errors.Is(err, ErrNoDevice) {
			t.Errorf("%q: error %v, want ErrNoDevice", want, err)
			continue
		}
		if !strings.Contains(err.Error(), `"USB PnP Sound Device, USB Audio" (:1,0)`) {
			t.Errorf("%q: error %q does not list the devices", want, err)
		}
	}
	if _, _, err := matchDevice("x", nil); err == nil || !strings.Contains(err.Error(), "capture devices: none") {
		t.Errorf("no devices: error %v, want one saying none", err)
	}
}

func FuzzParseCardIndex(f *testing.F) {
	for _, s := range []string{"1", "hw:1", "hw:1,0", "plughw:0,3", "hw:", ",", "-1", "hw:1,-2", "USB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		card, dev, ok := parseCardIndex(s)
		if ok && (card < 0 || dev < 0) {
			t.Fatalf("%q parsed to card %d device %d", s, card, dev)
		}
	})
}
