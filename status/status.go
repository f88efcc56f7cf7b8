// Package status assembles the box's status document: the one JSON shape
// that /api/status (with the admin token) and the MQTT status topic share,
// and the public subset that anyone may read.
package status

import (
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/device/board"
	"github.com/onair/onair/pipeline"
)

// Document is the full status (docs/status.schema.json).
type Document struct {
	State           string     `json:"state"`
	BroadcastID     string     `json:"broadcast_id"`
	Title           string     `json:"title"`
	Private         bool       `json:"private"`
	LiveSince       *time.Time `json:"live_since"`
	Viewers         int        `json:"viewers"`
	ViewersPeak     int        `json:"viewers_peak"`
	Video           Video      `json:"video"`
	Audio           Audio      `json:"audio"`
	CameraConnected bool       `json:"camera_connected"`
	Uplink          Component  `json:"uplink"`
	Recording       Component  `json:"recording"`
	Announce        Component  `json:"announce"`
	CommentsEnabled bool       `json:"comments_enabled"`
	StorageFreeMB   int64      `json:"storage_free_mb"`
	Board           board.Info `json:"board"`
	Firmware        Firmware   `json:"firmware"`
	UptimeS         int64      `json:"uptime_s"`
	Error           string     `json:"error"`
}

// Video describes the video source and encoder.
type Video struct {
	Source string `json:"source"`
	// SourceFormat is what the source sends (YUYV, MJPEG, H264, I420);
	// MJPEG is decoded to I420 before the encoder.
	SourceFormat string `json:"source_format"`
	// SourceFPS is the rate the camera driver runs at (0: it does not say).
	SourceFPS float64 `json:"source_fps"`
	// SourceReason says why the camera runs in this mode, or why the test
	// pattern is used.
	SourceReason  string  `json:"source_reason"`
	Encoder       string  `json:"encoder"`
	EncoderReason string  `json:"encoder_reason"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	FPS           float64 `json:"fps"`
	BitrateKbps   float64 `json:"bitrate_kbps"`
}

// Audio describes the audio source and its level.
type Audio struct {
	Source   string  `json:"source"`
	PeakDBFS float64 `json:"peak_dbfs"`
	RMSDBFS  float64 `json:"rms_dbfs"`
}

// Component is the state of a part that can be off, working or failing.
type Component struct {
	State string `json:"state"`
	Error string `json:"error"`
}

// Firmware describes the running software.
type Firmware struct {
	Version  string `json:"version"`
	Slot     string `json:"slot"`
	OTAState string `json:"ota_state"`
}

// Public is what anyone may read. A private broadcast shows only its state.
type Public struct {
	State     string     `json:"state"`
	Title     string     `json:"title,omitempty"`
	Viewers   *int       `json:"viewers,omitempty"`
	LiveSince *time.Time `json:"live_since,omitempty"`
	Private   bool       `json:"private,omitempty"`
}

// Public returns the document's public part.
func (d Document) Public() Public {
	if d.Private {
		return Public{State: d.State, Private: true}
	}
	return d.Invited()
}

// Invited is what a viewer with a valid invite reads of a private broadcast:
// the public part, with the private flag.
func (d Document) Invited() Public {
	viewers := d.Viewers
	return Public{State: d.State, Title: d.Title, Viewers: &viewers, LiveSince: d.LiveSince, Private: d.Private}
}

// Sources are the parts the document is read from.
type Sources struct {
	Hub      *broadcast.Hub
	Pipeline *pipeline.Pipeline
	// Viewers returns the current and peak viewer counts.
	Viewers func() (now, peak int)
	Board   board.Reader
	// Static parts decided at start.
	Video    Video
	Audio    Audio
	Firmware Firmware
	// FirmwareNow reads the firmware part at each build (the update state
	// changes); nil: Firmware as given.
	FirmwareNow func() Firmware
	Started     time.Time
	// StorageFreeMB reports free space on the data partition; nil: unknown.
	StorageFreeMB func() int64
	// Camera reports whether a real camera is delivering.
	CameraConfigured bool
	// Uplink reports the WHIP uplink; nil: off.
	Uplink func() Component
	// Recording reports the replay recorder; nil: off.
	Recording func() Component
	// Announce reports the go-live announcement; nil: off.
	Announce func() Component
	// CommentsEnabled tells whether viewers may comment; nil: they may not.
	CommentsEnabled func() bool
}

// Build reads every source now.
func (s Sources) Build() Document {
	st, _ := s.Hub.Status()
	d := Document{
		State: string(st.State), BroadcastID: st.BroadcastID, Title: st.Title, Private: st.Private, Error: st.Error,
		Video: s.Video, Audio: s.Audio, Board: s.Board.Read(), Firmware: s.Firmware,
		Uplink:    Component{State: "off"},
		Recording: Component{State: "off"},
		UptimeS:   int64(time.Since(s.Started).Seconds()),
	}
	if st.State == broadcast.Live && !st.LiveSince.IsZero() {
		t := st.LiveSince.UTC()
		d.LiveSince = &t
	}
	if s.Viewers != nil {
		d.Viewers, d.ViewersPeak = s.Viewers()
	}
	if s.Pipeline != nil {
		ps := s.Pipeline.Stats()
		d.Video.FPS = round1(ps.FPS)
		d.Video.BitrateKbps = round1(ps.BitrateKbps)
		d.Audio.PeakDBFS, d.Audio.RMSDBFS = ps.PeakDBFS, ps.RMSDBFS
		d.CameraConnected = s.CameraConfigured && !ps.CameraLost
	}
	if s.FirmwareNow != nil {
		d.Firmware = s.FirmwareNow()
	}
	if s.Uplink != nil {
		d.Uplink = s.Uplink()
	}
	if s.Recording != nil {
		d.Recording = s.Recording()
	}
	d.Announce = Component{State: "off"}
	if s.Announce != nil {
		d.Announce = s.Announce()
	}
	if s.CommentsEnabled != nil {
		d.CommentsEnabled = s.CommentsEnabled()
	}
	if s.StorageFreeMB != nil {
		d.StorageFreeMB = s.StorageFreeMB()
	}
	return d
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
