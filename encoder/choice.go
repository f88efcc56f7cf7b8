package encoder

import (
	"fmt"

	"github.com/onair/onair/media"
)

// Candidate is one H.264 encoder the box might use, with what the running
// system says about it.
type Candidate struct {
	// Name is the config value that forces it: v4l2m2m, x264, passthrough.
	Name string
	// Available is false when this system lacks it; Reason says why.
	Available bool
	Reason    string
}

// Choice is the encoder picked and why, with why each other was passed over,
// so logs and status can explain it.
type Choice struct {
	Name    string
	Reason  string
	Skipped []Candidate
}

// Capabilities describe what the running system offers.
type Capabilities struct {
	// HardwareEncoder is the path of a V4L2 M2M H.264 encoder, "" if none.
	HardwareEncoder string
	// HardwareReason says why there is none (or which one was found).
	HardwareReason string
	// Software is true when the x264 encoder is built in (cgo builds).
	Software       bool
	SoftwareReason string
	// CameraFormat is the camera's chosen format; H264 allows passthrough.
	CameraFormat media.PixelFormat
}

// Choose picks the H.264 encoder for the configured name ("auto" or a
// forced one). auto prefers hardware, then software; passthrough is only
// used when asked for, since a camera's own encoder cannot be forced to a
// keyframe on every device.
func Choose(configured string, caps Capabilities) (Choice, error) {
	candidates := []Candidate{
		{Name: "v4l2m2m", Available: caps.HardwareEncoder != "", Reason: caps.HardwareReason},
		{Name: "x264", Available: caps.Software, Reason: caps.SoftwareReason},
		{Name: "passthrough", Available: caps.CameraFormat == media.H264,
			Reason: fmt.Sprintf("camera delivers %s, not H264", caps.CameraFormat)},
	}
	if caps.CameraFormat == media.H264 {
		candidates[2].Reason = "camera delivers H264"
	}
	if configured != "auto" {
		for _, c := range candidates {
			if c.Name != configured {
				continue
			}
			if !c.Available {
				return Choice{}, fmt.Errorf("video.encoder %s is not available: %s", c.Name, c.Reason)
			}
			return Choice{Name: c.Name, Reason: "video.encoder is set to " + c.Name, Skipped: others(candidates, c.Name)}, nil
		}
		return Choice{}, fmt.Errorf("video.encoder %q is not a known encoder", configured)
	}
	for _, c := range candidates[:2] { // auto never picks passthrough
		if c.Available {
			reason := "hardware encoder " + caps.HardwareEncoder
			if c.Name == "x264" {
				reason = "no hardware encoder (" + caps.HardwareReason + "), software x264"
			}
			return Choice{Name: c.Name, Reason: reason, Skipped: others(candidates, c.Name)}, nil
		}
	}
	return Choice{}, fmt.Errorf("no H.264 encoder: hardware: %s; software: %s", caps.HardwareReason, caps.SoftwareReason)
}

func others(all []Candidate, picked string) []Candidate {
	var out []Candidate
	for _, c := range all {
		if c.Name != picked {
			out = append(out, c)
		}
	}
	return out
}
