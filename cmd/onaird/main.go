// Command onaird is the OnAir daemon: it captures the camera and microphone,
// encodes once, and serves the broadcast to browsers over WebRTC.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/onair/onair/config"
	"github.com/onair/onair/gpio"
	"github.com/onair/onair/internal/daemon"
	"github.com/onair/onair/ota"
	"github.com/onair/onair/ota/layout"
)

const defaultConfig = "/etc/onair/onair.yaml"

func main() {
	if len(os.Args) > 2 && os.Args[1] == "ota" && os.Args[2] == "install" {
		if err := runOTAInstall(os.Args[3:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "onaird ota install:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "invite" {
		if err := runInvite(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "onaird invite:", err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", defaultConfig, "configuration file (YAML)")
	listen := flag.String("listen", "", "HTTP listen address, overrides http.listen")
	adminToken := flag.String("admin-token", "", "admin bearer token, overrides http.admin_token")
	dataDir := flag.String("data-dir", "", "data directory, overrides data_dir")
	verbose := flag.Bool("v", false, "debug logging")
	watchdogPath := flag.String("watchdog", "", "kernel watchdog to feed while the daemon's loops answer (the image passes /dev/watchdog)")
	firmware := flag.String("firmware", layout.DefaultPath, "the image's firmware layout (slots, bootloader, update keys); absent: no updates")
	profiles := flag.String("pprof", "", "serve Go's profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty")
	keys := flag.Bool("keys", false, "simulated button on the terminal: Enter = short press, l + Enter = long press")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if tuneGC(os.LookupEnv) {
		log.Debug("garbage collector", "GOGC", gcPercent)
	}
	if err := run(*configPath, *listen, *adminToken, *dataDir, *watchdogPath, *firmware, *profiles, *keys, log); err != nil {
		log.Error("onaird stopped", "err", err)
		os.Exit(1)
	}
}

func run(configPath, listen, adminToken, dataDir, watchdogPath, firmware, profiles string, keys bool, log *slog.Logger) error {
	cfg, err := config.Load(configPath)
	if errors.Is(err, os.ErrNotExist) && configPath == defaultConfig {
		log.Info("no config file, running on defaults", "path", configPath)
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return err
	}
	if listen != "" {
		cfg.HTTP.Listen = listen
	}
	if adminToken != "" {
		cfg.HTTP.AdminToken = adminToken
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("flags: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if profiles != "" {
		if _, err := serveProfiles(ctx, profiles, log); err != nil {
			return err
		}
	}
	agent, why := openUpdates(firmware, cfg, log)
	d, err := daemon.New(cfg, daemon.Options{
		Log: log, Watchdog: watchdogPath, PowerOff: powerOff, Reboot: rebootBox, OTA: agent, OTAUnavailable: why,
	})
	if err != nil {
		return err
	}
	base := cfg.PublicURL
	if base == "" {
		base = "http://" + displayHost(d.Addr())
	}
	log.Info("onaird is running", "version", daemon.Version, "viewer", base+"/", "console", base+"/console")
	fmt.Fprintf(os.Stderr, "\n  Viewer:      %s/\n  Console:     %s/console\n  Admin token: %s\n\n", base, base, d.AdminToken())
	if keys {
		fmt.Fprintf(os.Stderr, "  Button:      press Enter to go live or stop, l + Enter for a long press\n\n")
		go pressKeys(ctx, d, log)
	}
	return d.Run(ctx)
}

// powerOff is the long press's shutdown action: the image's poweroff,
// which stops onaird with SIGTERM like every other service first.
func powerOff(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "poweroff").CombinedOutput(); err != nil {
		return fmt.Errorf("poweroff: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// rebootBox restarts the machine (MQTT `reboot`), through the image's
// reboot, which stops every service first.
func rebootBox(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "reboot").CombinedOutput(); err != nil {
		return fmt.Errorf("reboot: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// openUpdates builds the update agent from the image's firmware layout; on
// a machine without one (a developer's PC) updates are off, with the reason.
func openUpdates(path string, cfg config.Config, log *slog.Logger) (*ota.Agent, string) {
	l, err := layout.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "no firmware layout at " + path + ": this is not an OnAir image"
	}
	if err != nil {
		log.Error("updates are off", "err", err)
		return nil, err.Error()
	}
	oc, err := l.Config(layout.Options{
		DataDir: filepath.Join(cfg.DataDir, "ota"), Version: daemon.Version,
		AllowDowngrade: cfg.OTA.AllowDowngrade, Logger: log,
	})
	if err == nil {
		var agent *ota.Agent
		if agent, err = ota.New(oc); err == nil {
			return agent, ""
		}
	}
	log.Error("updates are off", "err", err)
	return nil, err.Error()
}

// pressKeys is the simulated button on the terminal; it ends with stdin.
func pressKeys(ctx context.Context, d *daemon.Daemon, log *slog.Logger) {
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() && ctx.Err() == nil {
		kind := gpio.Short
		if strings.TrimSpace(lines.Text()) == "l" {
			kind = gpio.Long
		}
		if err := d.Press(ctx, kind); err != nil {
			log.Error("button", "err", err)
		}
	}
}

// displayHost turns ":8080" or "[::]:8080" into "localhost:8080" for links.
func displayHost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
