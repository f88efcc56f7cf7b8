package main

import (
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

// clientOpts find the running daemon and its admin token for the commands
// that talk to it (invite, ota install).
type clientOpts struct {
	configPath, server, token, dataDir *string
}

func clientFlags(fs *flag.FlagSet) clientOpts {
	return clientOpts{
		configPath: fs.String("config", defaultConfig, "configuration file (YAML)"),
		server:     fs.String("server", "", "the daemon's address (default: http.listen from the config)"),
		token:      fs.String("admin-token", "", "admin token (default: from the config or the data directory)"),
		dataDir:    fs.String("data-dir", "", "data directory, overrides data_dir"),
	}
}

// open reads the config and the admin token and returns the API client.
func (c clientOpts) open() (apiClient, error) {
	cfg, err := config.Load(*c.configPath)
	if errors.Is(err, os.ErrNotExist) && *c.configPath == defaultConfig {
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return apiClient{}, err
	}
	if *c.dataDir != "" {
		cfg.DataDir = *c.dataDir
	}
	token := *c.token
	if token == "" {
		token = cfg.HTTP.AdminToken
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin-token"))
		if err != nil {
			return apiClient{}, fmt.Errorf("no admin token: give --admin-token or run where %s is readable: %w", cfg.DataDir, err)
		}
		token = strings.TrimSpace(string(b))
	}
	base := *c.server
	if base == "" {
		host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil {
			return apiClient{}, fmt.Errorf("http.listen %q: %w", cfg.HTTP.Listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return apiClient{base: strings.TrimRight(base, "/"), token: token}, nil
}

// runInvite is `onaird invite`: it asks the running daemon for an invite
// link to the current (or next) broadcast and prints the link.
func runInvite(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("onaird invite", flag.ContinueOnError)
	name := fs.String("name", "", "who the invite is for (shown in the console's list)")
	ttl := fs.Duration("ttl", 0, "how long the link works (default audience.invite_ttl)")
	c := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	api, err := c.open()
	if err != nil {
		return err
	}
	req := map[string]string{"name": *name}
	if *ttl > 0 {
		req["ttl"] = ttl.String()
	}
	body, _ := json.Marshal(req)
	out, err := api.call(http.MethodPost, "/api/invites", body, http.StatusCreated)
	if err != nil {
		return err
	}
	var inv struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		return fmt.Errorf("daemon's answer: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n(valid until %s)\n", inv.URL, inv.Expires.Local().Format(time.RFC1123))
	return nil
}
