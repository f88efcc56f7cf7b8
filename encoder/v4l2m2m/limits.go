package v4l2m2m

import (
	"fmt"

	"github.com/onair/onair/encoder"
)

// RateControl is the encoder's bitrate mode.
type RateControl int

// Rate control modes (V4L2_CID_MPEG_VIDEO_BITRATE_MODE).
const (
	// VBR lets the bitrate follow the picture around the target: the
	// driver's default, and what the box uses unless told otherwise.
	VBR RateControl = iota
	// CBR holds the bitrate steady. The Pi's encoder cannot combine it with
	// CABAC, so it needs the constrained_baseline profile.
	CBR
)

// String returns "vbr" or "cbr".
func (r RateControl) String() string {
	switch r {
	case VBR:
		return "vbr"
	case CBR:
		return "cbr"
	default:
		return fmt.Sprintf("RateControl(%d)", int(r))
	}
}

// Limits of the Pi's H.264 block (bcm2835-codec-encode), from the driver and
// from the field.
const (
	// MinSide and MaxSide bound width and height: the driver clamps S_FMT to
	// 32..1920 and enumerates sizes in steps of 2.
	MinSide = 32
	MaxSide = 1920
	// MaxMacroblocksPerFrame and MaxMacroblocksPerSecond are level 4.0's
	// MaxFS and MaxMBPS: the hardware is rated for level 4.0 (1920x1080 at
	// 30 fps); the driver offers higher levels, which the firmware may not
	// keep up with in real time.
	MaxMacroblocksPerFrame  = 8192
	MaxMacroblocksPerSecond = 245760
	// MinBitrateKbps and MaxBitrateKbps bound the bitrate. The control
	// steps in 25 kbit/s; above 20 Mbit/s the firmware stalls with the
	// baseline and main profiles (raspberrypi/userland#206), and 20 Mbit/s
	// is level 4.0's MaxBR.
	MinBitrateKbps = 25
	MaxBitrateKbps = 20000
	// bitrateStepKbps is the BITRATE control's step.
	bitrateStepKbps = 25
)

// Validate checks video parameters against what the Pi's hardware encoder
// can do and returns one clear sentence for the first problem: the config
// side calls it for `video.encoder: v4l2m2m`, and `auto` passes over the
// hardware encoder with this reason.
func Validate(p encoder.VideoParams, rc RateControl) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Width < MinSide || p.Height < MinSide || p.Width > MaxSide || p.Height > MaxSide {
		return fmt.Errorf("video size %dx%d: the hardware encoder takes %d to %d pixels a side",
			p.Width, p.Height, MinSide, MaxSide)
	}
	mbs := macroblocks(p.Width) * macroblocks(p.Height)
	if mbs > MaxMacroblocksPerFrame {
		return fmt.Errorf("video size %dx%d: the hardware encoder takes at most 1920x1080 (level 4.0)", p.Width, p.Height)
	}
	if mbs*p.FPS > MaxMacroblocksPerSecond {
		return fmt.Errorf("video %dx%d at %d fps: the hardware encoder keeps up with at most 1920x1080 at 30 fps (level 4.0)",
			p.Width, p.Height, p.FPS)
	}
	if p.BitrateKbps < MinBitrateKbps || p.BitrateKbps > MaxBitrateKbps {
		return fmt.Errorf("video bitrate %d kbps: the hardware encoder takes %d to %d kbps",
			p.BitrateKbps, MinBitrateKbps, MaxBitrateKbps)
	}
	switch rc {
	case VBR:
	case CBR:
		if profileOf(p.Profile) != profileConstrainedBaseline {
			return fmt.Errorf("CBR with the %s profile: the hardware encoder cannot do CBR with CABAC; use constrained_baseline or VBR",
				p.Profile)
		}
	default:
		return fmt.Errorf("rate control %v: want vbr or cbr", rc)
	}
	return nil
}

// macroblocks is how many 16-pixel macroblocks cover n pixels.
func macroblocks(n int) int { return (n + 15) / 16 }

// profileOf maps the config's profile name to the V4L2 menu value.
func profileOf(name string) int32 {
	switch name {
	case "main":
		return profileMain
	case "high":
		return profileHigh
	default:
		return profileConstrainedBaseline
	}
}

// Level is an H.264 level as the V4L2 H264_LEVEL control numbers it.
type Level int32

// The levels the box may pick (enum v4l2_mpeg_video_h264_level).
const (
	Level1_0 Level = 0
	Level1_1 Level = 2
	Level1_2 Level = 3
	Level1_3 Level = 4
	Level2_0 Level = 5
	Level2_1 Level = 6
	Level2_2 Level = 7
	Level3_0 Level = 8
	Level3_1 Level = 9
	Level3_2 Level = 10
	Level4_0 Level = 11
	Level4_1 Level = 12
	Level4_2 Level = 13
	Level5_0 Level = 14
	Level5_1 Level = 15
)

// levelLimits is the part of Table A-1 of the H.264 specification that the
// encoder's choice depends on.
type levelLimits struct {
	level Level
	idc   int // level_idc in the SPS
	name  string
	// maxMBPS and maxFS are macroblocks per second and per frame; maxBR
	// is in 1000 bit/s for the baseline and main profiles (high: x1.25).
	maxMBPS, maxFS, maxBR int
}

var levelTable = []levelLimits{
	{Level1_0, 10, "1.0", 1485, 99, 64},
	{Level1_1, 11, "1.1", 3000, 396, 192},
	{Level1_2, 12, "1.2", 6000, 396, 384},
	{Level1_3, 13, "1.3", 11880, 396, 768},
	{Level2_0, 20, "2.0", 11880, 396, 2000},
	{Level2_1, 21, "2.1", 19800, 792, 4000},
	{Level2_2, 22, "2.2", 20250, 1620, 4000},
	{Level3_0, 30, "3.0", 40500, 1620, 10000},
	{Level3_1, 31, "3.1", 108000, 3600, 14000},
	{Level3_2, 32, "3.2", 216000, 5120, 20000},
	{Level4_0, 40, "4.0", 245760, 8192, 20000},
	{Level4_1, 41, "4.1", 245760, 8192, 50000},
	{Level4_2, 42, "4.2", 522240, 8704, 50000},
	{Level5_0, 50, "5.0", 589824, 22080, 135000},
	{Level5_1, 51, "5.1", 983040, 36864, 240000},
}

// minLevel is the lowest level the encoder asks for. The firmware has been
// seen not to start with levels below 3.0 (raspberrypi/linux#4906), and a
// level above the minimum costs a decoder nothing at the sizes we send.
const minLevel = Level3_0

// String returns the level as written in the specification ("3.1").
func (l Level) String() string {
	for _, e := range levelTable {
		if e.level == l {
			return e.name
		}
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// IDC is the level as the SPS's level_idc carries it (31 for 3.1), 0 for
// an unknown level.
func (l Level) IDC() int {
	for _, e := range levelTable {
		if e.level == l {
			return e.idc
		}
	}
	return 0
}

// fits reports whether a stream of the given size, rate and bitrate
// satisfies the level's limits (Table A-1 and A.3.1's bound on each side:
// at most sqrt(8 * MaxFS) macroblocks).
func (e levelLimits) fits(width, height, fps, kbps int, profile int32) bool {
	mbW, mbH := macroblocks(width), macroblocks(height)
	if mbW*mbH > e.maxFS || mbW*mbW > 8*e.maxFS || mbH*mbH > 8*e.maxFS {
		return false
	}
	if mbW*mbH*fps > e.maxMBPS {
		return false
	}
	maxKbps := e.maxBR
	if profile == profileHigh {
		maxKbps = e.maxBR * 5 / 4
	}
	return kbps <= maxKbps
}

// LevelFor returns the lowest H.264 level (but at least 3.0) whose limits
// hold the stream: the Pi's encoder silently produces nothing when the
// level is too low for the size and rate, so the level is computed, never
// left to a default.
func LevelFor(width, height, fps, bitrateKbps int, profile string) (Level, error) {
	prof := profileOf(profile)
	for _, e := range levelTable {
		if e.level < minLevel {
			continue
		}
		if e.fits(width, height, fps, bitrateKbps, prof) {
			return e.level, nil
		}
	}
	return 0, fmt.Errorf("video %dx%d at %d fps and %d kbps fits no H.264 level up to 5.1", width, height, fps, bitrateKbps)
}

// levelLimitsOf returns the table entry of l.
func levelLimitsOf(l Level) (levelLimits, bool) {
	for _, e := range levelTable {
		if e.level == l {
			return e, true
		}
	}
	return levelLimits{}, false
}
