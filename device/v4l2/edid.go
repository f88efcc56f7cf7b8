package v4l2

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// An HDMI source reads the sink's EDID (Extended Display Identification
// Data) to choose what to send. The TC358743 bridge has no EEPROM: until
// user space loads an EDID (VIDIOC_S_EDID) it keeps the hotplug line low
// and a source sends nothing. This file checks EDID files before they go to
// the bridge, and builds the one the repository ships (edid/).

// ErrBadEDID means an EDID file is not a well-formed EDID.
var ErrBadEDID = errors.New("not a valid EDID")

// maxEDIDBlocks bounds what CheckEDID accepts: the base block and up to
// seven extensions, as much as the TC358743 stores (EDID_NUM_BLOCKS_MAX).
const maxEDIDBlocks = 8

// edidHeader starts every EDID base block.
var edidHeader = []byte{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}

// CheckEDID checks that b is a whole EDID: 128-byte blocks, the base
// block's header, an extension count that matches the length, and every
// block's checksum. The bridge would take a broken one and the source
// would ignore it, which shows only as "no signal".
func CheckEDID(b []byte) error {
	if len(b) == 0 || len(b)%edidBlockSize != 0 {
		return fmt.Errorf("%w: %d bytes, want a multiple of %d", ErrBadEDID, len(b), edidBlockSize)
	}
	blocks := len(b) / edidBlockSize
	if blocks > maxEDIDBlocks {
		return fmt.Errorf("%w: %d blocks, the bridge takes at most %d", ErrBadEDID, blocks, maxEDIDBlocks)
	}
	if !bytes.Equal(b[:len(edidHeader)], edidHeader) {
		return fmt.Errorf("%w: block 0 lacks the EDID header 00 ff ff ff ff ff ff 00", ErrBadEDID)
	}
	if ext := int(b[126]); ext != blocks-1 {
		return fmt.Errorf("%w: block 0 announces %d extension blocks, the file has %d", ErrBadEDID, ext, blocks-1)
	}
	for i := 0; i < blocks; i++ {
		var sum byte
		for _, c := range b[i*edidBlockSize : (i+1)*edidBlockSize] {
			sum += c
		}
		if sum != 0 {
			return fmt.Errorf("%w: block %d checksum is off by %#02x", ErrBadEDID, i, sum)
		}
	}
	return nil
}

// LoadEDID reads and checks an EDID file (binary, as `v4l2-ctl
// --set-edid=file=...,format=raw` and edid-decode take it).
func LoadEDID(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read EDID: %w", err)
	}
	if err := CheckEDID(b); err != nil {
		return nil, fmt.Errorf("EDID %s: %w", path, err)
	}
	return b, nil
}

// videoTiming is one CEA-861 video format: the EDID's detailed timing
// descriptors and the fake bridge's DV timings come from the same numbers.
type videoTiming struct {
	vic                            uint8 // CEA-861 video identification code
	width, height                  int
	pixelClockHz                   uint64
	hFrontPorch, hSync, hBackPorch int
	vFrontPorch, vSync, vBackPorch int
	hSyncPositive, vSyncPositive   bool
	description                    string
}

func (t videoTiming) hTotal() int { return t.width + t.hFrontPorch + t.hSync + t.hBackPorch }
func (t videoTiming) vTotal() int { return t.height + t.vFrontPorch + t.vSync + t.vBackPorch }

// The CEA-861 formats our EDID advertises. The Pi's CSI-2 link from a
// TC358743 board (two lanes on most) carries UYVY 1080p up to 30 fps, so
// 1080p50/60 are left out: a source must not pick them.
var (
	cea1080p30 = videoTiming{vic: 34, width: 1920, height: 1080, pixelClockHz: 74_250_000,
		hFrontPorch: 88, hSync: 44, hBackPorch: 148, vFrontPorch: 4, vSync: 5, vBackPorch: 36,
		hSyncPositive: true, vSyncPositive: true, description: "1920x1080p30"}
	cea1080p25 = videoTiming{vic: 33, width: 1920, height: 1080, pixelClockHz: 74_250_000,
		hFrontPorch: 528, hSync: 44, hBackPorch: 148, vFrontPorch: 4, vSync: 5, vBackPorch: 36,
		hSyncPositive: true, vSyncPositive: true, description: "1920x1080p25"}
	cea720p60 = videoTiming{vic: 4, width: 1280, height: 720, pixelClockHz: 74_250_000,
		hFrontPorch: 110, hSync: 40, hBackPorch: 220, vFrontPorch: 5, vSync: 5, vBackPorch: 20,
		hSyncPositive: true, vSyncPositive: true, description: "1280x720p60"}
	cea720p50 = videoTiming{vic: 19, width: 1280, height: 720, pixelClockHz: 74_250_000,
		hFrontPorch: 440, hSync: 40, hBackPorch: 220, vFrontPorch: 5, vSync: 5, vBackPorch: 20,
		hSyncPositive: true, vSyncPositive: true, description: "1280x720p50"}
	// cea1080p60 is beyond the CSI-2 link; the fake's sources send it to
	// test a mode the bridge locks to but the EDID does not offer.
	cea1080p60 = videoTiming{vic: 16, width: 1920, height: 1080, pixelClockHz: 148_500_000,
		hFrontPorch: 88, hSync: 44, hBackPorch: 148, vFrontPorch: 4, vSync: 5, vBackPorch: 36,
		hSyncPositive: true, vSyncPositive: true, description: "1920x1080p60"}
)

// edidSpec is what buildEDID puts into an EDID.
type edidSpec struct {
	// manufacturer is the three-letter PNP ID; product a 16-bit code.
	manufacturer string
	product      uint16
	name         string // monitor name, at most 13 characters
	year         int    // of manufacture
	// detailed are the base block's detailed timings, the first preferred.
	detailed []videoTiming
	// vics are the CEA extension's short video descriptors.
	vics []uint8
	// range limits: vertical Hz, horizontal kHz, pixel clock MHz.
	minVHz, maxVHz, minHKHz, maxHKHz, maxClockMHz int
	// physicalAddress is the CEC address in the HDMI block (1.0.0.0).
	physicalAddress uint16
	// maxTMDSMHz is the HDMI block's maximum TMDS clock.
	maxTMDSMHz int
}

// defaultEDIDSpec describes the EDID shipped in edid/: a capture device
// that takes 1080p30, 1080p25, 720p60 and 720p50 (and 640x480p60, which
// every HDMI sink must), preferring 1080p30.
var defaultEDIDSpec = edidSpec{
	manufacturer: "ONA", product: 0x0001, name: "OnAir HDMI", year: 2025,
	detailed: []videoTiming{cea1080p30, cea720p60},
	vics:     []uint8{cea1080p30.vic, cea1080p25.vic, cea720p60.vic, cea720p50.vic},
	minVHz:   24, maxVHz: 61, minHKHz: 28, maxHKHz: 46, maxClockMHz: 80,
	physicalAddress: 0x1000, maxTMDSMHz: 165,
}

// buildEDID encodes spec as an EDID 1.3 base block and a CEA-861
// extension (256 bytes), each with its checksum.
func buildEDID(spec edidSpec) ([]byte, error) {
	if len(spec.manufacturer) != 3 || len(spec.name) > 13 || len(spec.detailed) > 2 || len(spec.vics) > 31 {
		return nil, errors.New("edid: manufacturer must be 3 letters, name at most 13 characters, at most 2 detailed timings and 31 VICs")
	}
	b := make([]byte, 2*edidBlockSize)
	base := b[:edidBlockSize]
	copy(base, edidHeader)
	var id uint16
	for _, c := range []byte(spec.manufacturer) {
		if c < 'A' || c > 'Z' {
			return nil, fmt.Errorf("edid: manufacturer %q is not three capital letters", spec.manufacturer)
		}
		id = id<<5 | uint16(c-'A'+1)
	}
	base[8], base[9] = byte(id>>8), byte(id) // big-endian, unlike the rest
	base[10], base[11] = byte(spec.product), byte(spec.product>>8)
	base[16] = 1 // week of manufacture
	base[17] = byte(spec.year - 1990)
	base[18], base[19] = 1, 3 // EDID 1.3
	base[20] = 0x80           // digital input
	base[23] = 120            // gamma 2.2, stored as 100*gamma - 100
	// RGB colour display in sRGB; the first detailed timing is the
	// preferred one (which EDID 1.3 requires).
	base[24] = 0x0e
	// Chromaticity: the sRGB primaries and D65 white point, 10-bit each.
	copy(base[25:35], []byte{0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54})
	base[35] = 0x20 // established timing 640x480@60
	for i := 38; i < 54; i++ {
		base[i] = 0x01 // standard timings: unused (01 01)
	}
	descriptors := [][]byte{}
	for _, t := range spec.detailed {
		descriptors = append(descriptors, detailedTiming(t))
	}
	descriptors = append(descriptors, rangeLimits(spec), monitorName(spec.name))
	for len(descriptors) < 4 {
		descriptors = append(descriptors, []byte{0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // dummy
	}
	if len(descriptors) > 4 {
		return nil, errors.New("edid: more than four descriptors")
	}
	for i, d := range descriptors {
		copy(base[54+18*i:], d)
	}
	base[126] = 1 // one extension block
	checksum(base)

	ext := b[edidBlockSize:]
	ext[0], ext[1] = 0x02, 3 // CEA-861 extension, revision 3
	// Underscanned IT formats (a capture device shows every pixel), YCbCr
	// 4:4:4 and 4:2:2 taken (the bridge converts either to UYVY), and one
	// native detailed timing: the base block's preferred one.
	ext[3] = 0x80 | 0x30 | 1
	blocks := []byte{0x40 | byte(len(spec.vics))} // video data block
	blocks = append(blocks, spec.vics...)
	// Video capability data block: RGB and YCbCr quantization range
	// selectable (the source says which it sends), IT and CE formats
	// underscanned.
	blocks = append(blocks, 0xe0|2, 0x00, 0xca)
	tmds := byte(spec.maxTMDSMHz / 5)
	blocks = append(blocks, 0x60|7, 0x03, 0x0c, 0x00, // HDMI vendor block, IEEE OUI 00-0C-03
		byte(spec.physicalAddress>>8), byte(spec.physicalAddress), 0x00, tmds)
	copy(ext[4:], blocks)
	ext[2] = byte(4 + len(blocks)) // where detailed timings would start
	checksum(ext)
	return b, nil
}

// checksum sets the last byte of a block so that its bytes sum to 0.
func checksum(block []byte) {
	var sum byte
	for _, c := range block[:edidBlockSize-1] {
		sum += c
	}
	block[edidBlockSize-1] = -sum
}

// detailedTiming encodes an 18-byte detailed timing descriptor.
func detailedTiming(t videoTiming) []byte {
	d := make([]byte, 18)
	clock := t.pixelClockHz / 10_000
	d[0], d[1] = byte(clock), byte(clock>>8)
	hBlank := t.hFrontPorch + t.hSync + t.hBackPorch
	vBlank := t.vFrontPorch + t.vSync + t.vBackPorch
	d[2], d[3], d[4] = byte(t.width), byte(hBlank), byte(t.width>>8<<4|hBlank>>8)
	d[5], d[6], d[7] = byte(t.height), byte(vBlank), byte(t.height>>8<<4|vBlank>>8)
	d[8], d[9] = byte(t.hFrontPorch), byte(t.hSync)
	d[10] = byte((t.vFrontPorch&0x0f)<<4 | t.vSync&0x0f)
	d[11] = byte(t.hFrontPorch>>8<<6 | t.hSync>>8<<4 | t.vFrontPorch>>4<<2 | t.vSync>>4)
	// Image size 0 mm: a capture device has no screen.
	flags := byte(0x18) // digital separate sync, progressive
	if t.vSyncPositive {
		flags |= 0x04
	}
	if t.hSyncPositive {
		flags |= 0x02
	}
	d[17] = flags
	return d
}

// rangeLimits encodes the display range limits descriptor (tag 0xfd) that
// EDID 1.3 requires.
func rangeLimits(spec edidSpec) []byte {
	d := []byte{0, 0, 0, 0xfd, 0,
		byte(spec.minVHz), byte(spec.maxVHz), byte(spec.minHKHz), byte(spec.maxHKHz), byte(spec.maxClockMHz / 10),
		0x00, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20}
	return d
}

// monitorName encodes the monitor name descriptor (tag 0xfc): the name,
// a line feed, then spaces.
func monitorName(name string) []byte {
	d := []byte{0, 0, 0, 0xfc, 0}
	text := append([]byte(name), 0x0a)
	for len(text) < 13 {
		text = append(text, 0x20)
	}
	return append(d, text[:13]...)
}
