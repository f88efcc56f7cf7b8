package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onair/onair/config"
)

// runInvite is `onaird invite`: it asks the running daemon for an invite
// link to the current (or next) broadcast, with the admin token from the
// config or the data directory, and prints the link.
func runInvite(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("onaird invite", flag.ContinueOnError)
	configPath := fs.String("config", defaultConfig, "configuration file (YAML)")
	name := fs.String("name", "", "who the invite is for (shown in the console's list)")
	ttl := fs.Duration("ttl", 0, "how long the link works (default audience.invite_ttl)")
	server := fs.String("server", "", "the daemon's address (default: http.listen from the config)")
	token := fs.String("admin-token", "", "admin token (default: from the config or the data directory)")
	dataDir := fs.String("data-dir", "", "data directory, overrides data_dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath)
	if errors.Is(err, os.ErrNotExist) && *configPath == defaultConfig {
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *token == "" {
		*token = cfg.HTTP.AdminToken
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-token"))
		if err != nil {
			return fmt.Errorf("no admin token: give --admin-token or run where %s is readable: %w", cfg.DataDir, err)
		}
		*token = strings.TrimSpace(string(b))
	}
	base := *server
	if base == "" {
		host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen %q: %w", cfg.HTTP.Listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req := map[string]string{"name": *name}
	if *ttl > 0 {
		req["ttl"] = ttl.String()
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/invites", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Authorization", "Bearer "+*token)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("ask the daemon at %s (is onaird running?): %w", base, err)
	}
	defer resp.Body.Close()
	var out struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
		Error   string    `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return fmt.Errorf("daemon answered %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("daemon refused: %s: %s", resp.Status, out.Error)
	}
	fmt.Fprintf(stdout, "%s\n(valid until %s)\n", out.URL, out.Expires.Local().Format(time.RFC1123))
	return nil
}
