// Package daemon wires onaird together: sources, encoders, the hub, the
// viewers' WebRTC server and the HTTP server, with one lifetime. cmd/onaird
// parses flags and calls it; end-to-end tests run it in process.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/sys/unix"

	"github.com/onair/onair/announce"
	"github.com/onair/onair/audience"
	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/device"
	"github.com/onair/onair/device/board"
	"github.com/onair/onair/fleet"
	"github.com/onair/onair/gpio"
	"github.com/onair/onair/internal/atomicfile"
	"github.com/onair/onair/ota"
	"github.com/onair/onair/pipeline"
	"github.com/onair/onair/replay"
	"github.com/onair/onair/settings"
	"github.com/onair/onair/status"
	"github.com/onair/onair/watchdog"
	"github.com/onair/onair/web"
	"github.com/onair/onair/whep"
)

// Version is the firmware version, set at build time with
// -ldflags "-X github.com/onair/onair/internal/daemon.Version=...".
var Version = "dev"

// Options are what the daemon takes besides the config file.
type Options struct {
	Log *slog.Logger
	// Board reads board facts; the zero value reads the real system.
	Board board.Reader
	// Pins replaces the GPIO button and LED (tests); nil opens gpio.button
	// and gpio.led from the config.
	Pins *Pins
	// Watchdog is the kernel watchdog device to feed while the daemon's
	// loops answer (/dev/watchdog on the box); empty: none. Opt-in, because
	// opening a PC's watchdog arms it.
	Watchdog string
	// OTA is the update agent of this image; nil: updates are unavailable,
	// for OTAUnavailable's reason.
	OTA            *ota.Agent
	OTAUnavailable string
	// Reboot restarts the box (MQTT `reboot`); nil: refused.
	Reboot func(context.Context) error
	// PowerOff turns the box off (the long press's shutdown action); nil:
	// the action is refused with a reason.
	PowerOff func(context.Context) error
}

// Daemon is a running onaird.
type Daemon struct {
	cfg        config.Config
	log        *slog.Logger
	adminToken string

	clock     *device.Clock
	hub       *broadcast.Hub
	pipeline  *pipeline.Pipeline
	viewers   *whep.Server
	web       *web.Server
	http      *http.Server
	listener  net.Listener
	sources   status.Sources
	panel     *panel
	watchdog  *os.File      // nil without --watchdog
	fleet     *fleet.Client // nil when mqtt.broker is empty
	uplinks   *uplinkCtl
	replays   *replay.Library // nil when replays are off or the data partition cannot hold them
	settings  *settings.Store
	room      *audience.Room
	invites   *audience.Invites
	announcer *announce.Announcer
	publicURL string
	deviceID  string
	powerOff  func(context.Context) error
	reboot    func(context.Context) error
	updates   updates
	// bg counts background work (installs) that Run waits for.
	bg sync.WaitGroup
	// life bounds what New starts before Run (the button's goroutine).
	life    context.Context
	endLife context.CancelFunc
}

// New opens everything the daemon needs, so that errors (a busy port, a
// missing camera that was insisted on) surface before Run.
func New(cfg config.Config, opt Options) (*Daemon, error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{cfg: cfg, log: log, clock: device.NewClock(), powerOff: opt.PowerOff, reboot: opt.Reboot}
	d.updates.agent, d.updates.why = opt.OTA, opt.OTAUnavailable
	if d.updates.agent == nil && d.updates.why == "" {
		d.updates.why = "this is not an OnAir image (no firmware layout)"
	}
	d.life, d.endLife = context.WithCancel(context.Background())
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	var err error
	if d.panel, err = openPanel(d.life, cfg.GPIO, opt.Pins, log); err != nil {
		d.endLife()
		return nil, err
	}
	fail := func(err error) (*Daemon, error) {
		if d.listener != nil {
			d.listener.Close()
		}
		d.panel.close()
		d.endLife()
		return nil, err
	}
	if err := d.panel.factoryResetIfHeld(d.life, cfg.DataDir, log); err != nil {
		return fail(err)
	}
	token, err := adminToken(cfg)
	if err != nil {
		return fail(err)
	}
	if d.settings, err = settings.Open(cfg.DataDir); err != nil {
		if d.settings == nil {
			return fail(err)
		}
		log.Error("run-time settings", "err", err) // set aside; the box starts on the config file
	}
	saved := d.settings.Get()
	if saved.BitrateKbps != nil {
		cfg.Video.BitrateKbps = *saved.BitrateKbps
		d.cfg.Video.BitrateKbps = *saved.BitrateKbps
	}
	d.adminToken = token

	d.hub = broadcast.New(broadcast.Options{KeyframeMinInterval: cfg.Video.KeyframeMinInterval.D()})
	if saved.Title != nil {
		d.hub.SetTitle(*saved.Title)
	}
	if saved.Private != nil {
		d.hub.SetPrivate(*saved.Private)
	}
	if d.deviceID = cfg.DeviceID; d.deviceID == "" {
		if d.deviceID, err = opt.Board.DeviceID(); err != nil {
			d.deviceID, _ = os.Hostname()
			log.Warn("device id from the host name", "device_id", d.deviceID, "err", err)
		}
	}
	if err := d.openAudience(); err != nil {
		return fail(err)
	}
	media, err := openMedia(cfg, d.clock, log)
	if err != nil {
		return fail(err)
	}
	d.pipeline = pipeline.New(media.video, media.audio, d.hub, cfg.Video.BitrateKbps, log)

	var iceServers []webrtc.ICEServer
	for _, s := range cfg.WebRTC.ICEServers {
		iceServers = append(iceServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	d.viewers, err = whep.New(d.hub, whep.Options{
		ICEServers: iceServers, UDPPort: cfg.WebRTC.UDPPort, AdditionalHosts: cfg.WebRTC.AdditionalHosts,
		MaxViewers: cfg.WebRTC.MaxViewers, Log: log, CaptureClock: d.clock.Now,
	})
	if err != nil {
		media.close()
		return fail(err)
	}

	d.sources = status.Sources{
		Hub: d.hub, Pipeline: d.pipeline, Viewers: d.viewers.Viewers, Board: opt.Board,
		Video: media.videoStatus, Audio: media.audioStatus,
		Firmware: status.Firmware{Version: Version, OTAState: "unavailable"}, FirmwareNow: d.firmware,
		Started: time.Now(), CameraConfigured: media.camera,
		StorageFreeMB: func() int64 { return freeBytes(cfg.DataDir) / (1 << 20) },
	}
	d.listener, err = net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		d.viewers.Close()
		media.close()
		return fail(fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err))
	}
	d.publicURL = publicURL(cfg, d.listener.Addr())
	d.openReplays()
	d.sources.Announce = func() status.Component {
		state, err := d.announcer.Status()
		return status.Component{State: state, Error: err}
	}
	d.sources.CommentsEnabled = d.room.CommentsEnabled
	d.web, err = web.New(web.Options{
		AdminToken: token, Hub: d.hub, WHEP: d.viewers, Status: d.statusDoc, Log: log, Press: d.press,
		Uplink: d.uplinkStats, SetUplink: d.setUplinkChecked,
		Replays: d.replays, RecordingBytes: d.recordingBytes,
		StartOTA: d.StartOTA, OTAState: func(ctx context.Context) any { return d.OTAState(ctx) },
		Room: d.room, Invites: d.invites, InviteTTL: cfg.Audience.InviteTTL.D(), PublicURL: d.publicURL,
		Health: map[string]func(context.Context) error{
			"media":     d.mediaAnswers,
			"broadcast": func(context.Context) error { d.hub.Status(); return nil },
		},
	})
	if err != nil {
		d.viewers.Close()
		media.close()
		return fail(err)
	}
	d.uplinks = &uplinkCtl{
		cfg: cfg.Uplink, ice: iceServers, startKbps: cfg.Video.BitrateKbps,
		hub: d.hub, setBitrate: d.pipeline.SetBitrate, setDivisor: d.pipeline.SetFrameDivisor, log: log,
		target: initialUplink(cfg.Uplink, saved),
	}
	if t := d.uplinks.target; t.on() {
		if _, err := d.uplinks.make(t); err != nil {
			d.viewers.Close()
			media.close()
			return fail(fmt.Errorf("uplink.whip_url: %w", err))
		}
	}
	d.sources.Uplink = d.uplinks.component
	if cfg.MQTT.Broker != "" {
		if err := d.openFleet(opt); err != nil {
			d.viewers.Close()
			media.close()
			return fail(err)
		}
	}
	if opt.Watchdog != "" {
		if d.watchdog, err = watchdog.Open(opt.Watchdog); err != nil {
			d.viewers.Close()
			media.close()
			return fail(err)
		}
	}
	d.http = &http.Server{
		Handler:           d.web,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return d, nil
}

// Addr is the HTTP server's address.
func (d *Daemon) Addr() net.Addr { return d.listener.Addr() }

// AdminToken is the admin bearer token in force.
func (d *Daemon) AdminToken() string { return d.adminToken }

// Hub is the broadcast hub (for in-process tests and tools).
func (d *Daemon) Hub() *broadcast.Hub { return d.hub }

// Status builds the full status document.
func (d *Daemon) Status() status.Document { return d.sources.Build() }

// Run serves until ctx ends, then stops within about two seconds: viewers
// get a clean close, sockets are freed, the capture loops end.
func (d *Daemon) Run(ctx context.Context) error {
	pipeCtx, stopPipeline := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var pipeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.pipeline.Run(pipeCtx); err != nil {
			pipeErr = err
			d.log.Error("media pipeline stopped", "err", err)
			d.hub.SetProblem("media pipeline stopped: " + err.Error())
		}
	}()
	uplinkCtx, stopUplink := context.WithCancel(d.life)
	wg.Add(1)
	go func() { defer wg.Done(); d.uplinks.run(uplinkCtx) }()
	fleetCtx, stopFleet := context.WithCancel(d.life)
	if d.fleet != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := d.fleet.Run(fleetCtx); err != nil && fleetCtx.Err() == nil {
				d.log.Error("fleet connection stopped", "err", err)
			}
		}()
		go publishEvents(fleetCtx, d.hub, d.fleet, &wg)
	}
	wg.Add(2)
	go func() { defer wg.Done(); d.keepTitle(fleetCtx) }()
	first, changed := d.hub.Status()
	comments := d.room.Subscribe()
	go func() { defer wg.Done(); d.followBroadcast(fleetCtx, first, changed, comments) }()
	if d.updates.agent != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.afterBoot(fleetCtx) }()
	}
	if d.replays != nil {
		wg.Add(2)
		go func() { defer wg.Done(); d.record(pipeCtx, first, changed) }()
		go func() { defer wg.Done(); d.replays.Run(fleetCtx) }()
	}
	if d.watchdog != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := watchdog.Feed(fleetCtx, d.watchdog, watchdog.Options{Log: d.log, Healthy: d.loopsAnswer})
			if err != nil {
				d.log.Error("watchdog", "err", err)
			}
		}()
	}
	panelCtx, stopPanel := context.WithCancel(d.life)
	wg.Add(1)
	go func() { defer wg.Done(); d.panel.run(panelCtx, d.hub, d.press, d.ledPattern, d.log) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.http.Serve(d.listener) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	d.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	d.hub.Stop(shutdownCtx) // the uplink sends its DELETE on this
	stopUplink()
	if d.fleet != nil {
		d.fleet.Close() // publishes offline
	}
	stopFleet()
	d.viewers.Close() // DTLS close to every viewer
	d.web.Close()     // close frames to event sockets
	d.room.Close()
	if e := d.http.Shutdown(shutdownCtx); e != nil && !errors.Is(e, context.DeadlineExceeded) {
		err = errors.Join(err, e)
	} else if e != nil {
		d.http.Close()
	}
	stopPipeline()
	stopPanel()
	d.endLife()
	wg.Wait()
	d.bg.Wait()
	d.announcer.Wait()
	d.panel.close()
	return errors.Join(err, pipeErr)
}

// Press is the button, for callers outside the daemon (the terminal of
// `make run`); see press.
func (d *Daemon) Press(ctx context.Context, kind gpio.PressKind) error { return d.press(ctx, kind) }

// press is the button: the GPIO pin, POST /api/button and (later) MQTT all
// come here. A short press toggles live; a press while going live or
// stopping is ignored, not queued.
func (d *Daemon) press(ctx context.Context, kind gpio.PressKind) error {
	switch kind {
	case gpio.Short:
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := d.hub.Toggle(ctx)
		if errors.Is(err, broadcast.ErrBusy) {
			d.log.Info("button press ignored while going live or stopping")
			return nil
		}
		d.log.Info("button", "press", "short", "state", st.State)
		d.buttonEvent("short")
		return err
	case gpio.Long:
		d.buttonEvent("long")
		action := d.cfg.GPIO.LongPressAction
		d.log.Info("button", "press", "long", "action", action)
		switch action {
		case "private":
			st, _ := d.hub.Status()
			d.hub.SetPrivate(!st.Private)
		case "comments":
			d.room.SetCommentsEnabled(!d.room.CommentsEnabled())
		case "shutdown":
			if d.powerOff == nil {
				return errors.New("long press: this daemon cannot power the box off")
			}
			d.hub.Stop(ctx)
			return d.powerOff(ctx)
		}
		return nil
	}
	return fmt.Errorf("unknown press %v", kind)
}

// openFleet sets up the MQTT connection; it connects in Run.
func (d *Daemon) openFleet(opt Options) error {
	id := d.cfg.DeviceID
	if id == "" {
		var err error
		if id, err = opt.Board.DeviceID(); err != nil {
			return err
		}
	}
	client, err := fleet.New(fleet.Options{
		Config: d.cfg.MQTT, DeviceID: id, Status: d.statusDoc,
		Changes:  fleet.HubChanges(d.hub),
		Commands: controller{d}, Logger: d.log,
		// Events and replies wait on disk while the broker is away, and
		// survive a restart of the daemon.
		OutboxDir: filepath.Join(d.cfg.DataDir, "mqtt-outbox"),
		Telemetry: func() fleet.Telemetry {
			ps := d.pipeline.Stats()
			var dropped uint64
			for _, n := range d.hub.Counters().Dropped {
				dropped += n
			}
			viewers, _ := d.viewers.Viewers()
			return fleet.Telemetry{FPS: ps.FPS, BitrateKbps: ps.BitrateKbps, FramesDropped: dropped, Viewers: viewers}
		},
	})
	if err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	d.fleet = client
	d.log.Info("fleet", "broker", d.cfg.MQTT.Broker, "device_id", id)
	return nil
}

// mediaAnswers checks the capture loop: pictures are being encoded (the
// slate keeps encoding when the camera is gone, so a lost camera passes).
func (d *Daemon) mediaAnswers(context.Context) error {
	if since := d.pipeline.SinceLastFrame(); since > 3*time.Second {
		return fmt.Errorf("no picture encoded for %s", since.Round(time.Second))
	}
	return nil
}

// loopsAnswer is the watchdog's health: the hub answers and the capture
// loop encodes.
func (d *Daemon) loopsAnswer(ctx context.Context) error {
	d.hub.Status()
	return d.mediaAnswers(ctx)
}

// keepTitle saves the title whenever it changes (console, API, MQTT), so
// it survives a reboot.
func (d *Daemon) keepTitle(ctx context.Context) {
	for {
		st, changed := d.hub.Status()
		if saved := d.settings.Get().Title; saved == nil || *saved != st.Title {
			title := st.Title
			if err := d.settings.Update(func(s *settings.Settings) { s.Title = &title }); err != nil {
				d.log.Error("save the title", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (d *Daemon) buttonEvent(press string) {
	if d.fleet != nil {
		d.fleet.Event(fleet.EventButton, map[string]any{"press": press})
	}
}

// adminToken returns the configured token, or the one kept in data_dir, or
// makes and keeps a new one.
func adminToken(cfg config.Config) (string, error) {
	if cfg.HTTP.AdminToken != "" {
		return cfg.HTTP.AdminToken, nil
	}
	path := filepath.Join(cfg.DataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make admin token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := atomicfile.Write(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep admin token: %w", err)
	}
	return token, nil
}

func freeBytes(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// statusDoc reads the sources as they are now: a method value of
// d.sources.Build would copy them before the uplink and others are set.
func (d *Daemon) statusDoc() status.Document { return d.sources.Build() }
