package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/gpio"
	"github.com/onair/onair/settings"
	"github.com/onair/onair/status"
	"github.com/onair/onair/uplink"
	"github.com/onair/onair/web"
)

// uplinkTarget is where the uplink pushes, from the config file overridden
// by the run-time settings (MQTT `set uplink_*`).
type uplinkTarget struct {
	URL     string
	Token   string
	Enabled bool
}

func (t uplinkTarget) on() bool { return t.Enabled && t.URL != "" }

// uplinkCtl owns the WHIP uplink and replaces it when the operator points
// the box elsewhere, without a restart and without touching the viewers.
type uplinkCtl struct {
	cfg        config.Uplink
	ice        []webrtc.ICEServer
	startKbps  int
	hub        *broadcast.Hub
	setBitrate func(int)
	setDivisor func(int)
	log        *slog.Logger

	// swap serializes run and apply (which may wait for a session's
	// DELETE); mu guards the fields and is never held while waiting.
	swap    sync.Mutex
	mu      sync.Mutex
	target  uplinkTarget
	cur     *uplink.Uplink
	stopCur context.CancelFunc
	done    chan struct{}
	parent  context.Context // set by run; nil before
	wg      sync.WaitGroup
}

// target is the uplink in force at start.
func initialUplink(cfg config.Uplink, saved settings.Settings) uplinkTarget {
	t := uplinkTarget{URL: cfg.WHIPURL, Token: cfg.BearerToken, Enabled: cfg.WHIPURL != ""}
	if saved.UplinkURL != nil {
		t.URL = *saved.UplinkURL
		t.Enabled = t.URL != ""
	}
	if saved.UplinkToken != nil {
		t.Token = *saved.UplinkToken
	}
	if saved.UplinkEnabled != nil {
		t.Enabled = *saved.UplinkEnabled
	}
	return t
}

// checkUplinkURL refuses what cannot be a WHIP endpoint; "" clears it.
func checkUplinkURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("uplink_url: want an http(s) URL (or \"\" to clear it)")
	}
	return nil
}

// make builds an uplink for t, checking it.
func (c *uplinkCtl) make(t uplinkTarget) (*uplink.Uplink, error) {
	return uplink.New(uplink.Options{
		URL: t.URL, BearerToken: t.Token, ICEServers: c.ice,
		MinBitrateKbps: c.cfg.MinBitrateKbps, MaxBitrateKbps: c.cfg.MaxBitrateKbps,
		StartBitrateKbps: c.startKbps, Hub: c.hub, SetBitrate: c.setBitrate, SetFrameDivisor: c.setDivisor,
		Logger: c.log,
	})
}

// run starts the uplink in force and keeps replacing it on apply until ctx
// ends; it returns when the last one has stopped (its session DELETEd).
func (c *uplinkCtl) run(ctx context.Context) {
	c.swap.Lock()
	c.mu.Lock()
	c.parent = ctx
	c.mu.Unlock()
	c.start()
	c.swap.Unlock()
	<-ctx.Done()
	c.swap.Lock()
	c.stop()
	c.swap.Unlock()
	c.wg.Wait()
}

// start runs an uplink for the target in force; c.swap is held.
func (c *uplinkCtl) start() {
	c.mu.Lock()
	parent, target := c.parent, c.target
	c.mu.Unlock()
	if parent == nil || parent.Err() != nil || !target.on() {
		return
	}
	u, err := c.make(target)
	if err != nil {
		c.log.Error("uplink", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	c.mu.Lock()
	c.cur, c.stopCur, c.done = u, cancel, done
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		if err := u.Run(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("uplink stopped", "err", err)
		}
	}()
}

// stop ends the running uplink and waits for it; c.swap is held.
func (c *uplinkCtl) stop() {
	c.mu.Lock()
	cur, cancel, done := c.cur, c.stopCur, c.done
	c.mu.Unlock()
	if cur == nil {
		return
	}
	cancel()
	<-done // the old session is DELETEd before a new one starts
	c.mu.Lock()
	c.cur, c.stopCur, c.done = nil, nil, nil
	c.mu.Unlock()
}

// apply switches to t: the running uplink (if any) ends its session and a
// new one starts when t is on. A bad URL changes nothing.
func (c *uplinkCtl) apply(t uplinkTarget) error {
	if err := checkUplinkURL(t.URL); err != nil {
		return err
	}
	if t.on() {
		if _, err := c.make(t); err != nil {
			return fmt.Errorf("uplink: %w", err)
		}
	}
	c.swap.Lock()
	defer c.swap.Unlock()
	if c.current() == t {
		return nil
	}
	c.stop()
	c.mu.Lock()
	c.target = t
	c.mu.Unlock()
	c.start()
	return nil
}

// current is the target in force.
func (c *uplinkCtl) current() uplinkTarget {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// status reports the running uplink; off when there is none.
func (c *uplinkCtl) status() (uplink.Status, bool) {
	c.mu.Lock()
	u := c.cur
	c.mu.Unlock()
	if u == nil {
		return uplink.Status{State: uplink.Off}, false
	}
	st, _ := u.Status()
	return st, true
}

func (c *uplinkCtl) component() status.Component {
	st, _ := c.status()
	return status.Component{State: string(st.State), Error: st.Error}
}

// uplinkStats are the uplink's figures for /metrics.
func (d *Daemon) uplinkStats() web.UplinkStats {
	st, ok := d.uplinks.status()
	if !ok {
		return web.UplinkStats{}
	}
	return web.UplinkStats{BitrateKbps: st.BitrateKbps, EstimateKbps: st.EstimateKbps, Failures: st.Failures,
		FrameDivisor: st.FrameDivisor}
}

// setUplink applies an MQTT `set` of uplink_url, uplink_token and
// uplink_enabled (nil: unchanged) and keeps it over a reboot.
func (d *Daemon) setUplink(rawURL, token *string, enabled *bool) error {
	t := d.uplinks.current()
	if rawURL != nil {
		t.URL = *rawURL
		if enabled == nil {
			t.Enabled = t.URL != "" // pointing the box somewhere turns the uplink on
		}
	}
	if token != nil {
		t.Token = *token
	}
	if enabled != nil {
		t.Enabled = *enabled
	}
	if t.Enabled && t.URL == "" {
		return errors.New("uplink_enabled: there is no uplink_url (set one, or uplink.whip_url in the config)")
	}
	if err := d.uplinks.apply(t); err != nil {
		return err
	}
	return d.settings.Update(func(s *settings.Settings) {
		s.UplinkURL, s.UplinkToken, s.UplinkEnabled = &t.URL, &t.Token, &t.Enabled
	})
}

// uplinkDown is true while live and the uplink has not been sending for
// longer than uplink.led_alert_after.
func (d *Daemon) uplinkDown() bool {
	st, ok := d.uplinks.status()
	if !ok || st.DownSince.IsZero() {
		return false
	}
	return time.Since(st.DownSince) >= d.cfg.Uplink.LEDAlertAfter.D()
}

// setUplinkChecked is setUplink for the HTTP API: the URL is checked first.
func (d *Daemon) setUplinkChecked(rawURL, token *string, enabled *bool) error {
	if rawURL != nil {
		if err := checkUplinkURL(*rawURL); err != nil {
			return err
		}
	}
	return d.setUplink(rawURL, token, enabled)
}

// ledPattern refines the LED beyond the broadcast state: live with a
// problem (the camera replaced by the slate, the encoder restarting) or with
// the uplink down too long shows the error pattern; an update installing
// while not live shows the slow OTA blink.
func (d *Daemon) ledPattern(st broadcast.Status, p gpio.Pattern) gpio.Pattern {
	switch {
	case p == gpio.PatternLive && (st.Error != "" || d.uplinkDown()):
		return gpio.PatternError
	case p == gpio.PatternOff && d.updates.busy():
		return gpio.PatternOTA
	}
	return p
}
