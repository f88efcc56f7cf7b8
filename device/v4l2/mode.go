package v4l2

import (
	"fmt"
	"math"
	"strings"

	"github.com/onair/onair/media"
)

// ModeChoice is the capture mode ChooseMode picks from what a camera lists,
// with the reason in words for logs and status.
type ModeChoice struct {
	Format media.PixelFormat
	// FourCC is the camera's code for Format ("MJPG" or "JPEG" for MJPEG).
	FourCC string
	Width  int
	Height int
	// FPS is the rate to ask the driver for; 0 leaves the driver's rate
	// alone (no rate wanted, or the camera lists none).
	FPS float64
	// Reason says why this mode and not a more wanted one, e.g.
	// "YUYV 1280x720 gives only 10 fps; MJPEG 1280x720 gives 30 fps".
	Reason string
}

// String spells the mode as logs show it: "MJPEG 1280x720 at 30 fps".
func (c ModeChoice) String() string {
	if c.FPS == 0 {
		return fmt.Sprintf("%s %dx%d", c.Format, c.Width, c.Height)
	}
	return fmt.Sprintf("%s %dx%d at %s fps", c.Format, c.Width, c.Height, fpsString(c.FPS))
}

// rateTolerance lets a camera's 29.97 count as the 30 fps asked for (and
// 59.94 as 60): NTSC-derived rates are what HDMI sources send.
const rateTolerance = 0.01

// candidate is one size of one format, evaluated against the request.
type candidate struct {
	format media.PixelFormat
	fourcc string
	// rank is the format's place in the preference list (0 = most wanted).
	rank          int
	width, height int
	// distance is how far the size is from the wanted one (0 = exact).
	distance float64
	// known is false when the camera lists no rate for this size.
	known bool
	// fps is the rate to ask for: the slowest listed rate that keeps the
	// wanted one, else the fastest listed rate.
	fps float64
	// fastest is the highest rate listed at this size.
	fastest float64
	keeps   bool
}

// ChooseMode picks the capture mode for want from a camera's format list
// (Info.Formats, as Probe reports it). The frame rate wins over the format
// and the size:
//
//  1. the first wanted format (want.Formats order) that the camera gives at
//     the wanted size and rate;
//  2. else the size nearest the wanted one at which a wanted format keeps the
//     rate (on a tie, the more wanted format, then the bigger size);
//  3. else, when nothing reaches the rate, the fastest mode, nearest in size.
//
// With FPS 0 only the size counts. A format whose sizes are not listed is
// taken at the wanted size with its rate unknown (the driver rounds both),
// after every format that lists them. Listed rates of a continuous or
// stepwise interval range count as reachable anywhere between its ends.
// ChooseMode errors with ErrNoFormat when the camera offers no wanted format.
func ChooseMode(formats []FormatInfo, want Config) (ModeChoice, error) {
	ranked := rankFormats(formats, want.Formats)
	if len(ranked) == 0 {
		return ModeChoice{}, noFormatError(formats, want.Formats)
	}
	var listed, unlisted []candidate
	for rank, fi := range ranked {
		if len(fi.Sizes) == 0 {
			unlisted = append(unlisted, candidate{
				format: fi.Format, fourcc: fi.FourCC, rank: rank,
				width: want.Width, height: want.Height, keeps: true, fps: float64(max(want.FPS, 0)),
			})
			continue
		}
		for _, size := range fi.Sizes {
			listed = append(listed, evaluate(fi, rank, size, want))
		}
	}
	wantFPS := float64(want.FPS)
	exact := func(c candidate) bool { return c.distance == 0 }
	// 1. The wanted size at the wanted rate, in preference order.
	if best, ok := pick(listed, func(c candidate) bool { return exact(c) && c.keeps }, byRank); ok {
		return choice(best, describeExact(best, listed, ranked, want)), nil
	}
	// 2. The nearest size that keeps the rate.
	if best, ok := pick(listed, func(c candidate) bool { return c.keeps }, byDistance); ok {
		return choice(best, describeNearest(best, listed, ranked, want)), nil
	}
	// Formats that list nothing: the driver decides; better than a rate
	// the camera says it cannot reach.
	if best, ok := pick(unlisted, func(candidate) bool { return true }, byRank); ok {
		return choice(best, fmt.Sprintf("%s lists no sizes or rates; asked for %dx%d", best.format, want.Width, want.Height)), nil
	}
	// 3. Nothing reaches the rate: the fastest, then the nearest.
	best, _ := pick(listed, func(candidate) bool { return true }, func(a, b candidate) bool {
		if a.fastest != b.fastest {
			return a.fastest > b.fastest
		}
		return byDistance(a, b)
	})
	reason := fmt.Sprintf("no mode gives %s fps; fastest is %s %dx%d at %s fps",
		fpsString(wantFPS), best.format, best.width, best.height, fpsString(best.fps))
	if !best.known {
		reason = fmt.Sprintf("no mode gives %s fps and %s %dx%d lists no rate", fpsString(wantFPS), best.format, best.width, best.height)
	}
	return choice(best, reason), nil
}

// rankFormats returns the offered formats we handle in preference order:
// want's order, or the camera's own when want is empty.
func rankFormats(formats []FormatInfo, want []media.PixelFormat) []FormatInfo {
	var out []FormatInfo
	if len(want) == 0 {
		for _, fi := range formats {
			if fi.Format != 0 && !containsFormat(out, fi.Format) {
				out = append(out, fi)
			}
		}
		return out
	}
	for _, w := range want {
		for _, fi := range formats {
			if w != 0 && fi.Format == w && !containsFormat(out, w) {
				out = append(out, fi)
			}
		}
	}
	return out
}

func containsFormat(list []FormatInfo, f media.PixelFormat) bool {
	for _, fi := range list {
		if fi.Format == f {
			return true
		}
	}
	return false
}

func noFormatError(formats []FormatInfo, want []media.PixelFormat) error {
	offered := make([]string, 0, len(formats))
	for _, fi := range formats {
		offered = append(offered, fi.FourCC)
	}
	if len(offered) == 0 {
		offered = append(offered, "nothing")
	}
	wantNames := make([]string, 0, len(want))
	for _, w := range want {
		wantNames = append(wantNames, w.String())
	}
	if len(wantNames) == 0 {
		wantNames = append(wantNames, "any of I420, NV12, YUYV, H264, MJPEG")
	}
	return fmt.Errorf("offers %s, wanted %s: %w", strings.Join(offered, ", "), strings.Join(wantNames, ", "), ErrNoFormat)
}

// evaluate places one listed size of a format against the request.
func evaluate(fi FormatInfo, rank int, size FrameSize, want Config) candidate {
	c := candidate{format: fi.Format, fourcc: fi.FourCC, rank: rank, width: size.Width, height: size.Height}
	if size.Range {
		c.width, c.height = snap(want.Width, size.MinWidth, size.Width, size.StepWidth), snap(want.Height, size.MinHeight, size.Height, size.StepHeight)
	}
	c.distance = sizeDistance(c.width, c.height, want.Width, want.Height)
	c.fastest = size.MaxFPS
	c.known = size.MaxFPS > 0
	wantFPS := float64(want.FPS)
	switch {
	case want.FPS <= 0:
		c.keeps = true
	case !c.known:
		// Nothing listed at this size: it cannot be said to keep the rate;
		// if it is taken anyway, the driver rounds the wanted one.
		c.fps = wantFPS
	case len(size.FrameRates) == 0:
		// An interval range: any rate between its ends.
		c.keeps = size.MaxFPS >= wantFPS*(1-rateTolerance)
		c.fps = math.Max(size.MinFPS, math.Min(wantFPS, size.MaxFPS))
	default:
		c.fps = size.MaxFPS
		for _, r := range size.FrameRates {
			if r >= wantFPS*(1-rateTolerance) && r <= c.fps {
				c.fps, c.keeps = r, true
			}
		}
	}
	if !c.keeps && c.known {
		c.fps = size.MaxFPS
	}
	return c
}

// snap puts want on a range's grid (min + k*step) and inside it.
func snap(want, lo, hi, step int) int {
	if want <= lo || hi <= lo {
		return lo
	}
	if want >= hi {
		return hi
	}
	if step <= 1 {
		return want
	}
	return lo + (want-lo+step/2)/step*step
}

// sizeDistance compares sizes by their ratios, so that 1280x800 is nearer
// to 1280x720 than 1024x576 is, however big the pictures.
func sizeDistance(w, h, wantW, wantH int) float64 {
	if w == wantW && h == wantH {
		return 0
	}
	if w <= 0 || h <= 0 || wantW <= 0 || wantH <= 0 {
		return math.Inf(1)
	}
	return math.Abs(math.Log(float64(w)/float64(wantW))) + math.Abs(math.Log(float64(h)/float64(wantH)))
}

// pick returns the best candidate that passes ok, by less.
func pick(list []candidate, ok func(candidate) bool, less func(a, b candidate) bool) (candidate, bool) {
	var best candidate
	found := false
	for _, c := range list {
		if !ok(c) {
			continue
		}
		if !found || less(c, best) {
			best, found = c, true
		}
	}
	return best, found
}

func byRank(a, b candidate) bool { return a.rank < b.rank }

// byDistance orders by nearness, then preference, then the bigger picture.
func byDistance(a, b candidate) bool {
	if a.distance != b.distance {
		return a.distance < b.distance
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.width*a.height > b.width*b.height
}

func choice(c candidate, reason string) ModeChoice {
	return ModeChoice{Format: c.format, FourCC: c.fourcc, Width: c.width, Height: c.height, FPS: c.fps, Reason: reason}
}

// atSize says what a format offers at the wanted size: "YUYV 1280x720
// gives only 10 fps", "NV12 has no 1280x720".
func atSize(fi FormatInfo, listed []candidate, want Config) string {
	for _, c := range listed {
		if c.format != fi.Format || c.distance != 0 {
			continue
		}
		if !c.known {
			return fmt.Sprintf("%s %dx%d lists no rate", fi.Format, want.Width, want.Height)
		}
		return fmt.Sprintf("%s %dx%d gives only %s fps", fi.Format, want.Width, want.Height, fpsString(c.fastest))
	}
	if len(fi.Sizes) == 0 {
		return fmt.Sprintf("%s lists no sizes", fi.Format)
	}
	return fmt.Sprintf("%s has no %dx%d", fi.Format, want.Width, want.Height)
}

// describeExact explains a mode at the wanted size: which more wanted
// formats fell short, and what the chosen one gives.
func describeExact(best candidate, listed []candidate, ranked []FormatInfo, want Config) string {
	var parts []string
	for _, fi := range ranked[:best.rank] {
		parts = append(parts, atSize(fi, listed, want))
	}
	if want.FPS <= 0 {
		parts = append(parts, fmt.Sprintf("%s gives %dx%d", best.format, best.width, best.height))
	} else {
		parts = append(parts, fmt.Sprintf("%s %dx%d gives %s fps", best.format, best.width, best.height, fpsString(best.fps)))
	}
	return strings.Join(parts, "; ")
}

// describeNearest explains a mode at another size than the wanted one.
func describeNearest(best candidate, listed []candidate, ranked []FormatInfo, want Config) string {
	var short []string
	for _, fi := range ranked {
		short = append(short, atSize(fi, listed, want))
	}
	rate := ""
	if want.FPS > 0 {
		rate = " at " + fpsString(float64(want.FPS)) + " fps"
	}
	return fmt.Sprintf("no format gives %dx%d%s (%s); %dx%d is the nearest size that does, in %s at %s fps",
		want.Width, want.Height, rate, strings.Join(short, ", "), best.width, best.height, best.format, fpsString(best.fps))
}

// fpsString spells a rate without trailing zeros: "30", "12.5", "29.97".
func fpsString(fps float64) string {
	return fmt.Sprintf("%.4g", math.Round(fps*100)/100)
}

// intervalOf turns a listed rate back into the frame interval drivers
// list, so that S_PARM asks for exactly what ENUM_FRAMEINTERVALS offered:
// 30 -> 1/30, 12.5 -> 2/25, 29.97 -> 1001/30000.
func intervalOf(fps float64) v4l2Fract {
	if fps <= 0 {
		return v4l2Fract{}
	}
	for _, n := range []uint32{1, 2, 4, 5, 10, 100, 1000, 1001} {
		d := fps * float64(n)
		if r := math.Round(d); r >= 1 && math.Abs(d-r) < 1e-9*d {
			return v4l2Fract{Numerator: n, Denominator: uint32(r)}
		}
	}
	return v4l2Fract{Numerator: 1000, Denominator: uint32(math.Round(fps * 1000))}
}
