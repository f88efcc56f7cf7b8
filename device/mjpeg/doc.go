// Package mjpeg turns the JPEG pictures of a camera's MJPEG stream into
// I420, the layout every H.264 encoder of the box takes.
//
// USB webcams and HDMI capture dongles send MJPEG when their raw formats
// cannot reach the wanted size and rate over USB 2. Their pictures are
// baseline JPEG, mostly 4:2:2, and UVC cameras leave out the Huffman table
// segment (DHT): the UVC payload format says the tables of JPEG Annex K
// apply. Decoder puts those tables in when a frame lacks them, decodes with
// the standard library's image/jpeg (pure Go, so the package cross-builds
// without cgo) and converts to I420: chroma averaged down to 4:2:0 and the
// JFIF full range scaled to the video range (16-235 luma, 16-240 chroma)
// that raw camera formats use and encoders signal.
//
// Source wraps a device.VideoSource whose frames are MJPEG and hands on
// I420 frames in capture order; a frame that does not decode (webcams send
// truncated ones) is dropped and counted, never passed on. It decodes on
// several goroutines at once (a Pi 4 core needs longer than a 720p30 frame
// time), with at most that many frames in flight, and drops the oldest
// undecoded frame when the decoders fall behind; see Source.
package mjpeg
