package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/onair/onair/device/board"
	"github.com/onair/onair/fleet"
	"github.com/onair/onair/status"
)

// simBox stands in for the daemon behind one fleet.Client: a broadcast state
// that commands change, the status document built from it, and a channel
// closed at every change, as the hub gives the daemon. There is no media.
type simBox struct {
	id      string
	started time.Time
	client  *fleet.Client // set before Run; the controller raises events on it

	mu        sync.Mutex
	state     string
	title     string
	private   bool
	comments  bool
	bitrate   int
	liveSince *time.Time
	changed   chan struct{}
}

func newSimBox(id string) *simBox {
	return &simBox{id: id, started: time.Now(), state: "idle", comments: true, bitrate: 2500, changed: make(chan struct{})}
}

// status is Options.Status: the full document, as /api/status gives it.
func (b *simBox) status() status.Document {
	b.mu.Lock()
	defer b.mu.Unlock()
	return status.Document{
		State: b.state, Title: b.title, Private: b.private, LiveSince: b.liveSince,
		Video:           status.Video{Source: "test", Encoder: "x264", EncoderReason: "simulated", Width: 1280, Height: 720, FPS: 30, BitrateKbps: float64(b.bitrate)},
		Audio:           status.Audio{Source: "test", PeakDBFS: -12, RMSDBFS: -20},
		CameraConnected: true,
		Uplink:          status.Component{State: "off"},
		Recording:       status.Component{State: "off"},
		StorageFreeMB:   20000,
		Board:           board.Info{Model: "fleetsim", Serial: b.id, TemperatureC: 45},
		Firmware:        status.Firmware{Version: "fleetsim", Slot: "a", OTAState: "idle"},
		UptimeS:         int64(time.Since(b.started).Seconds()),
	}
}

// changes is Options.Changes.
func (b *simBox) changes() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// changedLocked wakes whoever waits for the next change; b.mu is held.
func (b *simBox) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// telemetry is Options.Telemetry. CPU and RSS are given (non-zero) so that
// the client does not read /proc/self for each of the N boxes: in one
// process those figures would describe the whole simulator anyway.
func (b *simBox) telemetry() fleet.Telemetry {
	return fleet.Telemetry{FPS: 30, BitrateKbps: 2500, CPUPercent: 1, RSSBytes: 1}
}

// Live goes live; like the daemon, the state change raises went_live.
func (b *simBox) Live(_ context.Context, a fleet.LiveArgs) error {
	b.mu.Lock()
	if a.Title != nil {
		b.title = *a.Title
	}
	if a.Private != nil {
		b.private = *a.Private
	}
	wasLive := b.state == "live"
	if !wasLive {
		now := time.Now()
		b.state, b.liveSince = "live", &now
	}
	title := b.title
	b.changedLocked()
	b.mu.Unlock()
	if !wasLive {
		_ = b.client.Event(fleet.EventWentLive, map[string]any{"title": title})
	}
	return nil
}

// Stop ends the broadcast; stop while idle is fine.
func (b *simBox) Stop(context.Context) error {
	b.mu.Lock()
	wasLive := b.state == "live"
	b.state, b.liveSince = "idle", nil
	b.changedLocked()
	b.mu.Unlock()
	if wasLive {
		_ = b.client.Event(fleet.EventStopped, nil)
	}
	return nil
}

// Set changes what a box without media has; the rest is refused as the
// daemon refuses what it does not have.
func (b *simBox) Set(_ context.Context, a fleet.SetArgs) error {
	if a.UplinkURL != nil || a.UplinkToken != nil || a.UplinkEnabled != nil {
		return fmt.Errorf("the WHIP uplink: %w", fleet.ErrNotAvailable)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.Title != nil {
		b.title = *a.Title
	}
	if a.Private != nil {
		b.private = *a.Private
	}
	if a.CommentsEnabled != nil {
		b.comments = *a.CommentsEnabled
	}
	if a.BitrateKbps != nil {
		b.bitrate = *a.BitrateKbps
	}
	b.changedLocked()
	return nil
}

// Reboot is refused: a simulated box has nothing to reboot.
func (b *simBox) Reboot(context.Context) error {
	return fmt.Errorf("reboot: %w", fleet.ErrNotAvailable)
}

// OTA is refused: a simulated box has no slots.
func (b *simBox) OTA(context.Context, fleet.OTAArgs) error {
	return fmt.Errorf("ota: %w", fleet.ErrNotAvailable)
}

// CommentRemove is refused: a simulated box has no audience.
func (b *simBox) CommentRemove(context.Context, string) error {
	return fmt.Errorf("comment_remove: %w", fleet.ErrNotAvailable)
}

// ViewerBlock is refused: a simulated box has no audience.
func (b *simBox) ViewerBlock(context.Context, string) error {
	return fmt.Errorf("viewer_block: %w", fleet.ErrNotAvailable)
}

// ReplayDelete is refused: a simulated box records nothing.
func (b *simBox) ReplayDelete(context.Context, string) error {
	return fmt.Errorf("replay_delete: %w", fleet.ErrNotAvailable)
}

var _ fleet.Controller = (*simBox)(nil)
