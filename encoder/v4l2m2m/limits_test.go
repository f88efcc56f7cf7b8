package v4l2m2m

import (
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/encoder"
)

func TestValidate(t *testing.T) {
	p := func(w, h, fps, kbps int, profile string) encoder.VideoParams {
		return encoder.VideoParams{Width: w, Height: h, FPS: fps, BitrateKbps: kbps, Profile: profile, KeyframeInterval: time.Second}
	}
	tests := []struct {
		name string
		p    encoder.VideoParams
		rc   RateControl
		want string // "" for valid
	}{
		{"720p30", p(1280, 720, 30, 2500, ""), VBR, ""},
		{"1080p30 20M", p(1920, 1080, 30, 20000, "high"), VBR, ""},
		{"720p60", p(1280, 720, 60, 4000, "main"), VBR, ""},
		{"portrait 1080x1920", p(1080, 1920, 30, 4000, ""), VBR, ""},
		{"small odd-ish", p(34, 32, 30, 100, ""), CBR, ""},
		{"1080p60", p(1920, 1080, 60, 8000, ""), VBR, "30 fps"},
		{"1440p", p(2560, 1440, 30, 8000, ""), VBR, "32 to 1920 pixels"},
		{"too small", p(16, 16, 30, 100, ""), VBR, "32 to 1920 pixels"},
		{"1920x1200", p(1920, 1200, 25, 8000, ""), VBR, "at most 1920x1080"},
		{"odd width", p(641, 480, 30, 1000, ""), VBR, "even"},
		{"21 Mbit/s", p(1280, 720, 30, 21000, "high"), VBR, "25 to 20000 kbps"},
		{"10 kbit/s", p(320, 240, 30, 10, ""), VBR, "25 to 20000 kbps"},
		{"CBR main", p(1280, 720, 30, 2500, "main"), CBR, "CABAC"},
		{"CBR high", p(1280, 720, 30, 2500, "high"), CBR, "CABAC"},
		{"CBR baseline", p(1280, 720, 30, 2500, "constrained_baseline"), CBR, ""},
		{"bad rate control", p(1280, 720, 30, 2500, ""), RateControl(7), "want vbr or cbr"},
		{"bad profile", p(1280, 720, 30, 2500, "extended"), VBR, "profile"},
	}
	for _, tt := range tests {
		err := Validate(tt.p, tt.rc)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

func TestLevelFor(t *testing.T) {
	tests := []struct {
		w, h, fps, kbps int
		profile         string
		want            Level
	}{
		{320, 240, 30, 500, "", Level3_0}, // 1.3 by the table; 3.0 is the floor
		{640, 480, 30, 2500, "", Level3_0},
		{640, 480, 30, 12000, "", Level3_1}, // bitrate above 3.0's 10 Mbit/s
		{640, 480, 60, 2500, "", Level3_1},
		{1280, 720, 30, 2500, "", Level3_1},
		{1280, 720, 60, 4000, "", Level3_2},
		{1280, 720, 30, 16000, "", Level3_2},
		{1920, 1080, 30, 8000, "", Level4_0},
		{1920, 1080, 30, 20000, "", Level4_0},
		{1920, 1080, 30, 24000, "high", Level4_0}, // high: MaxBR x 1.25
		{1920, 1080, 30, 24000, "main", Level4_1},
		{1080, 1920, 30, 4000, "", Level4_0},
		{2048, 1088, 30, 4000, "", Level4_2},
	}
	for _, tt := range tests {
		got, err := LevelFor(tt.w, tt.h, tt.fps, tt.kbps, tt.profile)
		if err != nil || got != tt.want {
			t.Errorf("LevelFor(%dx%d@%d, %d kbps, %q) = %v, %v; want %v", tt.w, tt.h, tt.fps, tt.kbps, tt.profile, got, err, tt.want)
		}
	}
	if _, err := LevelFor(7680, 4320, 60, 100000, ""); err == nil {
		t.Error("8K60 got a level")
	}
	if Level3_1.String() != "3.1" || Level3_1.IDC() != 31 || Level(99).IDC() != 0 || Level(99).String() != "Level(99)" {
		t.Error("Level names")
	}
	if CBR.String() != "cbr" || VBR.String() != "vbr" {
		t.Error("RateControl names")
	}
}

func TestRoundBitrate(t *testing.T) {
	for in, want := range map[int]int{2500: 2500, 2512: 2500, 2513: 2525, 1: 25, 30000: 20000} {
		if got := roundBitrate(in); got != want {
			t.Errorf("roundBitrate(%d) = %d, want %d", in, got, want)
		}
	}
}
