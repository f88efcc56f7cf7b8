// Package alsa captures a microphone through ALSA and implements
// device.AudioSource. It uses miniaudio (github.com/gen2brain/malgo) with the
// ALSA backend only, so the same code runs on a Pi with a USB microphone and
// on a desktop without PulseAudio or PipeWire in the way.
//
// We do not use pion/mediadevices' microphone driver, although it wraps the
// same library: it panics in init() when the audio context cannot be made and
// registers its devices in a package-level registry. The box must carry on
// without a microphone (audio.source: auto falls back to the tone), so here a
// missing library or device is an error returned by Open, and nothing is
// global.
//
// Open picks a capture device by ALSA name or card index (see Config.Device),
// asks miniaudio for signed 16-bit interleaved PCM at 48 kHz (miniaudio
// converts from whatever the device delivers) and hands out 20 ms buffers,
// which is what one Opus packet holds. Each buffer carries its capture time on
// the pipeline's device.Clock. List names the capture devices, for logs and
// for audio.source: auto to decide whether there is a microphone at all.
//
// Between miniaudio's audio thread and ReadAudio sits a small ring of
// buffers: the audio thread never waits for the reader; when the reader falls
// behind, the oldest buffer is dropped and counted (Source.Dropped).
//
// A microphone that goes away (USB unplugged) stops delivering: miniaudio's
// stop notification, or no buffer for Config.StallTimeout, makes ReadAudio
// return an error wrapping ErrDeviceLost. The caller then closes the Source
// and opens it again when it wants to retry.
//
// The package needs cgo (miniaudio is C). Built with CGO_ENABLED=0, Open and
// List return ErrNoCgo so that the pure-Go build still compiles and the
// daemon falls back to the tone.
package alsa
