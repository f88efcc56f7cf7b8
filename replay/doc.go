// Package replay records every broadcast to fragmented MP4 and manages the
// replays: listing, serving to a browser <video> with HTTP ranges,
// deleting, keeping, retention and free disk space. docs/replay.md in the repository
// file describes the file format, the crash and power-cut behaviour, the
// time model and the HTTP answers in full.
//
// Recording takes the encoded samples the viewers get (H.264 Annex-B access
// units, Opus packets) and writes them without re-encoding: H.264 as avc1
// with avcC (90 kHz), Opus with dOps (48 kHz), decode times from the
// samples' capture times on the pipeline's monotonic clock, so audio and
// video share one clock and cannot drift. A fragment (moof+mdat) is cut
// about every second, at a keyframe when one comes after half a second, and
// is written and fsynced as a whole; a kill or power cut loses at most the
// fragment being built. Open repairs what a crash left unfinished (cuts a
// partial or unwritten last fragment, writes the index) and lists it. A
// finished replay has a sidx per track, placed in room reserved after the
// moov, an mfra at its end and mehd with its duration, so a player can seek
// anywhere without reading every fragment.
//
// Retention counts the box's running time (a monotonic clock persisted in
// the directory), never the wall clock, which starts in 1970 on a box
// without a real-time clock: the jump at the first NTP sync deletes
// nothing.
//
// The muxer is this package's own. github.com/yapingcat/gomedia (the only
// MP4 muxer with Opus on the module proxy here) was evaluated and not
// adopted: it writes the dOps pre-skip little-endian (ffmpeg then drops
// 0.3 s of audio), uses a 1 ms timescale for every track (33/34 ms video
// frame jitter), panics without an OpusHead, cuts fragments only at
// keyframes, writes its index only when finished and can repair nothing;
// see docs/replay.md.
package replay
