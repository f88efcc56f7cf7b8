package v4l2m2m

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PiEncoderCard is the card name of the Raspberry Pi's H.264 encoder node
// (bcm2835-codec, /dev/video11 by default).
const PiEncoderCard = "bcm2835-codec-encode"

// Find looks through /dev/video* for a V4L2 memory-to-memory H.264 encoder
// and returns its path, or "" with the reason there is none. The reason
// always says what was decided and why, for logs and status. err is only
// for a failed scan of /dev.
func Find() (path, reason string, err error) {
	paths, err := filepath.Glob("/dev/video*")
	if err != nil {
		return "", "", fmt.Errorf("find hardware encoder: %w", err)
	}
	path, reason = FindAmong(paths, OpenNode)
	return path, reason, nil
}

// FindAmong is Find over given device nodes and an opener (tests pass a
// FakeDevice). A node qualifies when VIDIOC_QUERYCAP says multi-planar M2M
// with streaming, its CAPTURE queue offers H.264 and its OUTPUT queue takes
// YUV 4:2:0 or YUYV. The Pi's bcm2835-codec-encode wins over any other
// qualifying node; otherwise the lowest-numbered one does.
func FindAmong(paths []string, open Opener) (path, reason string) {
	paths = append([]string(nil), paths...)
	sortNodes(paths)
	var skipped []string
	found := ""
	foundCard := ""
	for _, p := range paths {
		card, why := probeEncoder(p, open)
		if why != "" {
			skipped = append(skipped, p+": "+why)
			continue
		}
		if found == "" || (card == PiEncoderCard && foundCard != PiEncoderCard) {
			found, foundCard = p, card
		}
	}
	if found != "" {
		return found, fmt.Sprintf("%s (%s) encodes H.264", found, foundCard)
	}
	if len(paths) == 0 {
		return "", "no V4L2 device nodes (/dev/video*)"
	}
	return "", "no V4L2 memory-to-memory H.264 encoder: " + strings.Join(skipped, "; ")
}

// probeEncoder tells whether the node at path is an encoder this package
// drives: it returns the card name, or why not.
func probeEncoder(path string, open Opener) (card, why string) {
	dev, err := open(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return "", "open: " + err.Error()
	}
	defer dev.Close()
	var c v4l2Capability
	if err := dev.Ioctl(vidiocQueryCap, unsafe.Pointer(&c)); err != nil {
		return "", "not a V4L2 device: " + err.Error()
	}
	card = cString(c.Card[:])
	caps := c.Capabilities
	if caps&capDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	switch {
	case caps&capVideoM2MMplane == 0 && caps&capVideoM2M != 0:
		return "", card + " is a single-planar M2M device (only multi-planar encoders are driven)"
	case caps&capVideoM2MMplane == 0:
		return "", card + " is not a memory-to-memory device"
	case caps&capStreaming == 0:
		return "", card + " has no streaming I/O"
	}
	coded, err := listFourCCs(dev, bufTypeVideoCaptureMplane)
	if err != nil {
		return "", card + ": list coded formats: " + err.Error()
	}
	if !contains(coded, pixFmtH264) {
		return "", card + " does not output H.264"
	}
	raw, err := listFourCCs(dev, bufTypeVideoOutputMplane)
	if err != nil {
		return "", card + ": list raw formats: " + err.Error()
	}
	if !contains(raw, pixFmtYUV420) && !contains(raw, pixFmtNV12) && !contains(raw, pixFmtYUYV) {
		return "", card + " takes none of YU12, NV12, YUYV"
	}
	return card, ""
}

// listFourCCs enumerates the formats of one queue.
func listFourCCs(dev Device, bufType uint32) ([]uint32, error) {
	var out []uint32
	for i := uint32(0); i < 256; i++ {
		d := v4l2Fmtdesc{Index: i, Type: bufType}
		err := dev.Ioctl(vidiocEnumFmt, unsafe.Pointer(&d))
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, d.PixelFormat)
	}
	return out, nil
}

func contains(list []uint32, v uint32) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
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
