//go:build cgo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onair/onair/config"
	"github.com/onair/onair/internal/daemon"
)

// TestInviteCommand runs `onaird invite` against a running daemon, finding
// the daemon and its generated admin token through the config file alone,
// as a crew member would on the box.
func TestInviteCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Video.Source, cfg.Audio.Source = "test", "test"
	cfg.Video.Width, cfg.Video.Height = 320, 240
	cfg.WebRTC.UDPPort = 0
	d, err := daemon.New(cfg, daemon.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The config file names the listen address and the data directory; the
	// admin token was generated there by the daemon.
	path := filepath.Join(dir, "onair.yaml")
	yaml := "data_dir: " + cfg.DataDir + "\nhttp: {listen: \"" + d.Addr().String() + "\"}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runInvite([]string{"--config", path, "--name", "Alice", "--ttl", "2h"}, &out); err != nil {
		t.Fatalf("onaird invite: %v", err)
	}
	link := strings.SplitN(out.String(), "\n", 2)[0]
	if !strings.Contains(link, "/?t=") || !strings.Contains(out.String(), "valid until") {
		t.Fatalf("output %q", out.String())
	}

	// The invite is listed under its name, and its token opens the broadcast
	// once it is private.
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.Addr().String()+"/api/invites", nil)
	req.Header.Set("Authorization", "Bearer "+d.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var invites []struct {
		Name    string
		URL     string
		Expires time.Time
	}
	json.NewDecoder(resp.Body).Decode(&invites)
	resp.Body.Close()
	if len(invites) != 1 || invites[0].Name != "Alice" || invites[0].URL != link ||
		time.Until(invites[0].Expires) < 119*time.Minute || time.Until(invites[0].Expires) > 121*time.Minute {
		t.Fatalf("invites %+v, want Alice's link valid for 2h", invites)
	}
	d.Hub().SetPrivate(true)
	token := link[strings.Index(link, "?t=")+3:]
	req, _ = http.NewRequest(http.MethodGet, "http://"+d.Addr().String()+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pub map[string]any
	json.NewDecoder(resp.Body).Decode(&pub)
	resp.Body.Close()
	if _, ok := pub["viewers"]; !ok || pub["private"] != true {
		t.Fatalf("the invite does not open the private broadcast: %v", pub)
	}

	// `onaird ota install` reaches the same daemon; off the image it says why.
	err = runOTAInstall([]string{"--config", path, "update.bundle"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not an OnAir image") {
		t.Fatalf("ota install off the image: %v", err)
	}
	if err := runOTAInstall([]string{"--config", path}, io.Discard); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("ota install without a bundle: %v", err)
	}

	// A wrong token is refused with the daemon's reason.
	if err := runInvite([]string{"--config", path, "--admin-token", "wrong"}, io.Discard); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("with a wrong token: %v", err)
	}
}
