//go:build cgo

package opus

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/onair/onair/media"
)

// oggOpus wraps Opus packets in a minimal Ogg Opus file (RFC 7845) so that
// ffmpeg, an independent decoder, can check them.
func oggOpus(packets []media.Sample) []byte {
	var out []byte
	seq := uint32(0)
	page := func(headerType byte, granule uint64, payload []byte) {
		h := []byte("OggS")
		h = append(h, 0, headerType)
		h = binary.LittleEndian.AppendUint64(h, granule)
		h = binary.LittleEndian.AppendUint32(h, 0x4f4e4149) // serial
		h = binary.LittleEndian.AppendUint32(h, seq)
		h = append(h, 0, 0, 0, 0) // CRC, filled below
		var lacing []byte
		n := len(payload)
		for n >= 255 {
			lacing = append(lacing, 255)
			n -= 255
		}
		lacing = append(lacing, byte(n))
		h = append(h, byte(len(lacing)))
		h = append(h, lacing...)
		p := append(h, payload...)
		binary.LittleEndian.PutUint32(p[22:], oggCRC(p))
		out = append(out, p...)
		seq++
	}
	head := []byte("OpusHead")
	head = append(head, 1, 1)
	head = binary.LittleEndian.AppendUint16(head, 312) // pre-skip
	head = binary.LittleEndian.AppendUint32(head, 48000)
	head = append(head, 0, 0, 0)
	page(2, 0, head)
	tags := []byte("OpusTags")
	tags = binary.LittleEndian.AppendUint32(tags, 5)
	tags = append(tags, "onair"...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	page(0, 0, tags)
	granule := uint64(0)
	for i, p := range packets {
		granule += 960
		flags := byte(0)
		if i == len(packets)-1 {
			flags = 4
		}
		page(flags, granule, p.Data)
	}
	return out
}

var oggTable = func() *crc32.Table {
	var t crc32.Table
	for i := range t {
		r := uint32(i) << 24
		for j := 0; j < 8; j++ {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return &t
}()

func oggCRC(p []byte) uint32 {
	var crc uint32
	for _, b := range p {
		crc = crc<<8 ^ oggTable[byte(crc>>24)^b]
	}
	return crc
}
