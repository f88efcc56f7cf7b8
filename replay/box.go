package replay

import "encoding/binary"

// boxes appends ISO BMFF boxes to a byte slice. A box is opened with start,
// filled with the put methods and closed with end, which writes its size;
// boxes nest. It allocates only when the slice grows, so a reused buffer
// costs nothing in steady state.
type boxes struct{ b []byte }

func (w *boxes) start(typ string) int {
	pos := len(w.b)
	w.b = append(w.b, 0, 0, 0, 0)
	w.b = append(w.b, typ...)
	return pos
}

// startFull opens a "full box": a box with a version byte and 24 bits of
// flags.
func (w *boxes) startFull(typ string, version byte, flags uint32) int {
	pos := w.start(typ)
	w.u32(uint32(version)<<24 | flags&0xffffff)
	return pos
}

func (w *boxes) end(pos int) {
	binary.BigEndian.PutUint32(w.b[pos:], uint32(len(w.b)-pos))
}

func (w *boxes) u8(v uint8)   { w.b = append(w.b, v) }
func (w *boxes) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *boxes) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *boxes) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *boxes) zeros(n int) {
	for range n {
		w.b = append(w.b, 0)
	}
}
func (w *boxes) bytes(p []byte) { w.b = append(w.b, p...) }
func (w *boxes) str(s string)   { w.b = append(w.b, s...) }
