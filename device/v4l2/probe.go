package v4l2

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/onair/onair/media"
)

// Info describes a V4L2 device node as VIDIOC_QUERYCAP and VIDIOC_ENUM_FMT
// report it: enough for `video.source: auto` to find a camera and for the
// encoder to find the Pi's bcm2835-codec-encode.
type Info struct {
	Path   string
	Driver string
	Card   string
	Bus    string
	// Caps are the capabilities of this node (device_caps when the driver
	// sets it, V4L2_CAP_* bits).
	Caps uint32
	// Capture is true for a camera-like node: video capture with streaming
	// I/O and not a codec. MultiPlanar tells whether it uses the _MPLANE
	// buffer types; Source handles single-planar capture only.
	Capture bool
	// M2M is true for a memory-to-memory device (codec, scaler).
	M2M         bool
	MultiPlanar bool
	// Formats are what the node delivers: a camera's pictures, or an M2M
	// codec's coded output (its capture queue).
	Formats []FormatInfo
	// OutputFormats are what an M2M device consumes (its output queue);
	// empty for cameras.
	OutputFormats []FormatInfo
	// Err is set by List for a node it could not probe; the fields above
	// other than Path are then empty.
	Err error
}

// FormatInfo is one entry of a queue's format list.
type FormatInfo struct {
	// FourCC is the V4L2 code ("YUYV", "H264", "pRAA").
	FourCC string
	// Format is the matching pixel format, 0 when this package cannot
	// deliver it.
	Format      media.PixelFormat
	Description string
	Compressed  bool
	// Sizes the camera offers in this format with their frame rates
	// (VIDIOC_ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS); empty for codecs and
	// for drivers that do not enumerate.
	Sizes []FrameSize
}

// FrameSize is a picture size a camera offers, or a range of them.
type FrameSize struct {
	// Width and Height are the size, or the largest of a range.
	Width, Height int
	// Range is true for a stepwise or continuous range (HDMI bridges,
	// vivid); Min* and Step* are then set and the rates are those at the
	// largest size.
	Range                 bool
	MinWidth, MinHeight   int
	StepWidth, StepHeight int
	// FrameRates are the discrete rates offered at this size, in frames
	// per second, in the driver's order (usually fastest first).
	FrameRates []float64
	// MinFPS and MaxFPS bound the rates: of the list, or of a continuous
	// or stepwise interval range. 0 when the driver does not say.
	MinFPS, MaxFPS float64
}

// Offers reports whether a queue lists the pixel format. Formats this
// package does not know (Format 0) never match.
func Offers(formats []FormatInfo, f media.PixelFormat) bool {
	if f == 0 {
		return false
	}
	for _, fi := range formats {
		if fi.Format == f {
			return true
		}
	}
	return false
}

// Probe opens the node at path, reads what it is and closes it again. It
// does not start streaming, so it works on a camera another process uses.
func Probe(path string) (Info, error) {
	dev, err := OpenNode(path)
	if err != nil {
		return Info{Path: path}, fmt.Errorf("probe: %w", err)
	}
	info, err := ProbeDevice(dev, path)
	if closeErr := dev.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("probe %s: close: %w", path, closeErr)
	}
	return info, err
}

// ProbeDevice is Probe on an open device (a node or a FakeCamera); it leaves
// dev open.
func ProbeDevice(dev Device, path string) (Info, error) {
	info := Info{Path: path}
	var capability v4l2Capability
	if err := dev.Ioctl(vidiocQueryCap, unsafe.Pointer(&capability)); err != nil {
		return info, fmt.Errorf("query capabilities of %s: %w", path, err)
	}
	caps := effectiveCaps(&capability)
	info.Driver = cString(capability.Driver[:])
	info.Card = cString(capability.Card[:])
	info.Bus = cString(capability.BusInfo[:])
	info.Caps = caps
	info.M2M = caps&(capVideoM2M|capVideoM2MMplane) != 0
	info.MultiPlanar = caps&(capVideoCaptureMplane|capVideoOutputMplane|capVideoM2MMplane) != 0
	streaming := caps&capStreaming != 0
	info.Capture = streaming && !info.M2M && caps&(capVideoCapture|capVideoCaptureMplane) != 0

	var captureType, outputType uint32
	switch {
	case info.M2M && info.MultiPlanar:
		captureType, outputType = bufTypeVideoCaptureMplane, bufTypeVideoOutputMplane
	case info.M2M:
		captureType, outputType = bufTypeVideoCapture, bufTypeVideoOutput
	case caps&capVideoCapture != 0:
		captureType = bufTypeVideoCapture
	case caps&capVideoCaptureMplane != 0:
		captureType = bufTypeVideoCaptureMplane
	default:
		// Metadata, radio, VBI nodes: nothing more to list.
		return info, nil
	}
	var err error
	if info.Formats, err = listFormats(dev, captureType); err != nil {
		return info, fmt.Errorf("list formats of %s: %w", path, err)
	}
	if !info.M2M {
		for i := range info.Formats {
			code := fourccFromString(info.Formats[i].FourCC)
			if info.Formats[i].Sizes, err = listSizes(dev, code); err != nil {
				return info, fmt.Errorf("list sizes of %s %s: %w", path, info.Formats[i].FourCC, err)
			}
		}
	}
	if outputType != 0 {
		if info.OutputFormats, err = listFormats(dev, outputType); err != nil {
			return info, fmt.Errorf("list output formats of %s: %w", path, err)
		}
	}
	return info, nil
}

func listFormats(dev Device, bufType uint32) ([]FormatInfo, error) {
	descs, err := enumFormats(dev, bufType)
	out := make([]FormatInfo, 0, len(descs))
	for _, d := range descs {
		out = append(out, FormatInfo{
			FourCC:      fourccString(d.code),
			Format:      formatOf(d.code),
			Description: d.description,
			Compressed:  d.flags&fmtFlagCompressed != 0,
		})
	}
	return out, err
}

// fourccFromString packs "YUYV" back into its code.
func fourccFromString(s string) uint32 {
	var b [4]byte
	copy(b[:], s)
	return fourcc(b[0], b[1], b[2], b[3])
}

// enumEnd reports whether an enumeration error just means "no more
// entries" (EINVAL past the end) or "not implemented" (ENOTTY).
func enumEnd(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY)
}

// maxEnumEntries stops enumerations of drivers that never say "no more".
const maxEnumEntries = 256

// listSizes enumerates the frame sizes of one format and their rates.
func listSizes(dev Device, code uint32) ([]FrameSize, error) {
	var sizes []FrameSize
	for i := uint32(0); i < maxEnumEntries; i++ {
		e := v4l2FrmSizeEnum{Index: i, PixelFormat: code}
		err := dev.Ioctl(vidiocEnumFrameSizes, unsafe.Pointer(&e))
		if enumEnd(err) {
			break
		}
		if err != nil {
			return sizes, err
		}
		var size FrameSize
		if e.Type == frmTypeDiscrete {
			w, h := e.discrete()
			size = FrameSize{Width: int(w), Height: int(h)}
		} else {
			st := e.Size
			size = FrameSize{
				Width: int(st.MaxWidth), Height: int(st.MaxHeight), Range: true,
				MinWidth: int(st.MinWidth), MinHeight: int(st.MinHeight),
				StepWidth: int(st.StepWidth), StepHeight: int(st.StepHeight),
			}
			if e.Type == frmTypeContinuous {
				size.StepWidth, size.StepHeight = 1, 1
			}
		}
		if err := listRates(dev, code, &size); err != nil {
			return sizes, err
		}
		sizes = append(sizes, size)
		if e.Type != frmTypeDiscrete {
			// A range is the only entry, by the API's rules.
			break
		}
	}
	return sizes, nil
}

// listRates fills in the frame rates offered at size.
func listRates(dev Device, code uint32, size *FrameSize) error {
	for i := uint32(0); i < maxEnumEntries; i++ {
		e := v4l2FrmIvalEnum{Index: i, PixelFormat: code, Width: uint32(size.Width), Height: uint32(size.Height)}
		err := dev.Ioctl(vidiocEnumFrameIntervals, unsafe.Pointer(&e))
		if enumEnd(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Type != frmTypeDiscrete {
			// An interval range: the shortest interval is the fastest rate.
			size.MaxFPS = fps(e.Interval.Min)
			size.MinFPS = fps(e.Interval.Max)
			return nil
		}
		rate := fps(e.Interval.Min)
		if rate == 0 {
			continue
		}
		size.FrameRates = append(size.FrameRates, rate)
		if size.MaxFPS == 0 || rate > size.MaxFPS {
			size.MaxFPS = rate
		}
		if size.MinFPS == 0 || rate < size.MinFPS {
			size.MinFPS = rate
		}
	}
	return nil
}

// fps turns a frame interval into a rate; 0 for a degenerate interval.
func fps(interval v4l2Fract) float64 {
	if interval.Numerator == 0 || interval.Denominator == 0 {
		return 0
	}
	return float64(interval.Denominator) / float64(interval.Numerator)
}

// List probes every /dev/video* node, in numeric order. A node that cannot
// be probed (permissions, a driver error) is still listed, with Err set and
// nothing else known, so one bad node never hides the others; the error
// return is for the scan itself.
func List() ([]Info, error) {
	paths, err := filepath.Glob("/dev/video*")
	if err != nil {
		return nil, fmt.Errorf("list cameras: %w", err)
	}
	return listNodes(paths, OpenNode), nil
}

// listNodes is List over given paths and an opener, so tests can use fakes.
func listNodes(paths []string, open func(string) (Device, error)) []Info {
	sortNodes(paths)
	infos := make([]Info, 0, len(paths))
	for _, path := range paths {
		dev, err := open(path)
		if err != nil {
			infos = append(infos, Info{Path: path, Err: fmt.Errorf("probe: %w", err)})
			continue
		}
		info, err := ProbeDevice(dev, path)
		dev.Close()
		if err != nil {
			info = Info{Path: path, Err: err}
		}
		infos = append(infos, info)
	}
	return infos
}

// sortNodes orders /dev/video2 before /dev/video10.
func sortNodes(paths []string) {
	number := func(p string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "video"))
		if err != nil {
			return -1
		}
		return n
	}
	sort.SliceStable(paths, func(i, j int) bool {
		ni, nj := number(paths[i]), number(paths[j])
		if ni != nj {
			return ni < nj
		}
		return paths[i] < paths[j]
	})
}
