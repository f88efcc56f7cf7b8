package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// runOTAInstall is `onaird ota install FILE|URL`: it asks the running daemon
// to install the bundle (a file path is made absolute: the daemon reads it
// itself) and follows the progress until the update is armed or refused.
func runOTAInstall(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("onaird ota install", flag.ContinueOnError)
	downgrade := fs.Bool("downgrade", false, "allow an older version (ota.allow_downgrade must be true as well)")
	version := fs.String("version", "", "refuse the bundle unless it holds this version")
	c := clientFlags(fs)
	// Flags may come before or after the bundle.
	var source string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if source != "" {
			return errors.New("give one bundle: a file on this box or an http(s) URL")
		}
		source, rest = fs.Arg(0), fs.Args()[1:]
	}
	if source == "" {
		return errors.New("usage: onaird ota install [--downgrade] [--version V] FILE|URL")
	}
	if !strings.Contains(source, "://") {
		abs, err := filepath.Abs(source)
		if err != nil {
			return err
		}
		source = abs
	}
	api, err := c.open()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"source": source, "version": *version, "downgrade": *downgrade})
	if _, err := api.call(http.MethodPost, "/api/ota", body, http.StatusAccepted); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installing %s\n", source)
	last := ""
	for {
		time.Sleep(500 * time.Millisecond)
		out, err := api.call(http.MethodGet, "/api/ota", nil, http.StatusOK)
		if err != nil {
			// The daemon going away at the end is the reboot into the trial.
			fmt.Fprintln(stdout, "the daemon stopped answering (rebooting into the update?):", err)
			return nil
		}
		var st struct {
			Installing bool
			Progress   struct {
				Stage   string
				Percent int
			}
			Error  string
			Status *struct {
				Phase   string `json:"ota_state"`
				Pending string
			}
		}
		json.Unmarshal(out, &st)
		if line := fmt.Sprintf("%s %d%%", st.Progress.Stage, st.Progress.Percent); line != last && st.Installing {
			fmt.Fprintln(stdout, line)
			last = line
		}
		if st.Installing {
			continue
		}
		if st.Error != "" {
			return fmt.Errorf("refused: %s", st.Error)
		}
		pending := ""
		if st.Status != nil {
			pending = st.Status.Pending
		}
		fmt.Fprintf(stdout, "installed %s: the box reboots into it once it is not live, and keeps it when healthy\n", pending)
		return nil
	}
}

// apiClient talks to the running daemon with the admin token.
type apiClient struct {
	base, token string
}

func (a apiClient) call(method, path string, body []byte, want int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the daemon at %s (is onaird running?): %w", a.base, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		var e struct{ Error string }
		json.Unmarshal(out, &e)
		return nil, fmt.Errorf("daemon refused: %s: %s", resp.Status, e.Error)
	}
	return out, nil
}
