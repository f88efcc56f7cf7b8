package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/fleet"
	"github.com/onair/onair/ota"
	"github.com/onair/onair/status"
	"github.com/onair/onair/web"
)

// updates is the daemon's side of over-the-air updates: the agent decides;
// this runs installs in the background, reports progress (log, status,
// MQTT events) and reboots into a trial only when the box is not live.
type updates struct {
	agent *ota.Agent // nil: this is not an updatable image (why says why)
	why   string

	mu         sync.Mutex
	installing bool
	progress   ota.Progress
	lastError  string
	report     *ota.Report
}

// OTAStatus is GET /api/ota's answer.
type OTAStatus struct {
	Available  bool         `json:"available"`
	Reason     string       `json:"reason,omitempty"`
	Status     *ota.Status  `json:"status,omitempty"`
	Installing bool         `json:"installing"`
	Progress   ota.Progress `json:"progress"`
	Error      string       `json:"error"`
}

// OTARequest starts an install (HTTP API, MQTT, `onaird ota install`).
type OTARequest = web.OTAInstall

func (d *Daemon) otaEvent(typ string, fields map[string]any) {
	if d.fleet != nil {
		d.fleet.Event(typ, fields)
	}
}

// StartOTA begins an install in the background and returns once it has
// started (or was refused at once: busy, not updatable).
func (d *Daemon) StartOTA(req OTARequest) error {
	u := &d.updates
	if u.agent == nil {
		return fmt.Errorf("%w: %s", web.ErrOTAUnavailable, u.why)
	}
	if req.Source == "" {
		return errors.New("an update needs a source: the bundle's https:// URL or a file on the box")
	}
	u.mu.Lock()
	if u.installing {
		u.mu.Unlock()
		return fmt.Errorf("%w (%w)", web.ErrOTABusy, ota.ErrBusy)
	}
	u.installing, u.progress, u.lastError = true, ota.Progress{Stage: "install"}, ""
	u.mu.Unlock()
	d.log.Info("update started", "source", redactURL(req.Source), "version", req.Version)
	d.otaEvent(fleet.EventOTAProgress, map[string]any{"stage": "install", "percent": 0, "version": req.Version})
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		inst, err := u.agent.Install(d.life, ota.Request{
			Source: req.Source, Version: req.Version, ImageSHA256: req.SHA256, Downgrade: req.Downgrade,
			Progress: func(p ota.Progress) {
				u.mu.Lock()
				u.progress = p
				u.mu.Unlock()
				d.otaEvent(fleet.EventOTAProgress, map[string]any{"stage": p.Stage, "percent": p.Percent})
			},
		})
		u.mu.Lock()
		u.installing = false
		if err != nil {
			u.lastError = err.Error()
		}
		u.mu.Unlock()
		if err != nil {
			d.log.Error("update failed; the running slot is untouched", "err", err)
			d.otaEvent(fleet.EventOTAResult, map[string]any{"result": "failed", "error": err.Error(), "version": req.Version})
			return
		}
		d.log.Info("update installed; rebooting into its trial when not live", "version", inst.Version, "slot", inst.Slot)
		d.otaEvent(fleet.EventOTAResult, map[string]any{"result": "installed", "version": inst.Version, "slot": inst.Slot})
		d.rebootWhenIdle(d.life, u.agent.Reboot)
	}()
	return nil
}

// rebootWhenIdle reboots once the broadcast is not live: an update never
// cuts a running event short.
func (d *Daemon) rebootWhenIdle(ctx context.Context, reboot func(context.Context) error) {
	for {
		st, changed := d.hub.Status()
		if st.State == broadcast.Idle || st.State == broadcast.Error {
			if err := reboot(ctx); err != nil {
				d.log.Error("reboot", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// OTAState reports updates for the API.
func (d *Daemon) OTAState(ctx context.Context) OTAStatus {
	u := &d.updates
	if u.agent == nil {
		return OTAStatus{Reason: u.why}
	}
	u.mu.Lock()
	out := OTAStatus{Available: true, Installing: u.installing, Progress: u.progress, Error: u.lastError}
	u.mu.Unlock()
	if st, err := u.agent.Status(ctx); err == nil {
		out.Status = &st
	} else if out.Error == "" {
		out.Error = err.Error()
	}
	return out
}

// firmware is the status document's firmware part.
func (d *Daemon) firmware() status.Firmware {
	fw := status.Firmware{Version: Version, OTAState: "unavailable"}
	u := &d.updates
	if u.agent == nil {
		return fw
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := u.agent.Status(ctx)
	if err != nil {
		fw.OTAState = "error"
		return fw
	}
	fw.Slot, fw.OTAState = st.Slot, string(st.Phase)
	u.mu.Lock()
	if u.installing {
		fw.OTAState = "installing"
	}
	u.mu.Unlock()
	return fw
}

// afterBoot lets the agent judge this boot: on a trial boot it commits once
// the box is healthy (its loops answer, the pipeline encodes pictures, and
// the fleet's broker is reachable when one is configured), otherwise the
// agent rolls back. The outcome goes to the log and MQTT.
func (d *Daemon) afterBoot(ctx context.Context) {
	u := &d.updates
	rep, err := u.agent.AfterBoot(ctx, d.updateHealth)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("update check after boot", "err", err)
		}
		return
	}
	u.mu.Lock()
	u.report = &rep
	u.mu.Unlock()
	if rep.Outcome != nil {
		d.otaEvent(fleet.EventOTAResult, map[string]any{
			"result": rep.Outcome.Result, "version": rep.Outcome.Version, "reason": rep.Outcome.Reason, "slot": rep.Slot,
		})
	}
	if rep.RebootNeeded {
		d.rebootWhenIdle(ctx, u.agent.Reboot)
	}
}

// updateHealth blocks until the box is healthy or ctx ends.
func (d *Daemon) updateHealth(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = d.loopsAnswer(ctx)
		if last == nil && d.fleet != nil && !d.fleet.Connected() {
			last = errors.New("the MQTT broker is not reachable")
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// otaDataDir is where the agent keeps its state: the data partition.
func otaDataDir(dataDir string) string { return filepath.Join(dataDir, "ota") }

// redactURL keeps a URL's host for logs; query strings may carry tokens.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i] + "?..."
	}
	return s
}

// busy tells whether an install is under way.
func (u *updates) busy() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.installing
}
