// Package announce tells the world that the box went live: it posts to
// webhooks (Slack or Discord incoming webhooks, or plain JSON) when a public
// broadcast starts. It is off unless webhooks are configured, it never holds
// up going live (every post runs in the background with a timeout and a few
// retries), and the outcome of the last announcement is kept for the status.
package announce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Formats a webhook can take.
const (
	Slack   = "slack"   // {"text": "..."}
	Discord = "discord" // {"content": "..."}
	JSON    = "json"    // the Announcement itself
)

// Webhook is one place to announce to.
type Webhook struct {
	URL    string
	Format string
}

// Check refuses a webhook that cannot work, naming what is wrong.
func (w Webhook) Check() error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an http:// or https:// URL", redact(w.URL))
	}
	switch w.Format {
	case Slack, Discord, JSON:
		return nil
	}
	return fmt.Errorf("format %q: want slack, discord or json", w.Format)
}

// Announcement is what is said about a broadcast.
type Announcement struct {
	Event       string    `json:"event"` // "went_live"
	BroadcastID string    `json:"broadcast_id"`
	Title       string    `json:"title"`
	Link        string    `json:"link"`
	Device      string    `json:"device"`
	Started     time.Time `json:"started"`
}

// Options configure an Announcer.
type Options struct {
	Webhooks []Webhook
	// Timeout bounds each attempt; default 5 s.
	Timeout time.Duration
	// Attempts per webhook; default 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubled after; default 2 s.
	Backoff time.Duration
	Client  *http.Client
	Log     *slog.Logger
}

// Announcer posts announcements in the background.
type Announcer struct {
	opt Options
	wg  sync.WaitGroup

	mu      sync.Mutex
	pending int
	failure map[string]string // webhook (redacted) -> last error
}

// New makes an announcer; with no webhooks it does nothing.
func New(opt Options) *Announcer {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 3
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 2 * time.Second
	}
	if opt.Client == nil {
		opt.Client = &http.Client{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Announcer{opt: opt, failure: map[string]string{}}
}

// Enabled tells whether any webhook is configured.
func (a *Announcer) Enabled() bool { return len(a.opt.Webhooks) > 0 }

// Announce posts ann to every webhook in the background and returns at once.
// ctx ends the posts early (the daemon shutting down).
func (a *Announcer) Announce(ctx context.Context, ann Announcement) {
	if ann.Event == "" {
		ann.Event = "went_live"
	}
	for _, hook := range a.opt.Webhooks {
		a.mu.Lock()
		a.pending++
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			err := a.post(ctx, hook, ann)
			a.mu.Lock()
			defer a.mu.Unlock()
			a.pending--
			if err != nil {
				a.failure[redact(hook.URL)] = err.Error()
				a.opt.Log.Warn("announcement failed", "webhook", redact(hook.URL), "err", err)
				return
			}
			delete(a.failure, redact(hook.URL))
			a.opt.Log.Info("announced", "webhook", redact(hook.URL), "broadcast", ann.BroadcastID)
		}()
	}
}

// Status is "off" without webhooks, "sending" while posts are under way,
// "error" when the last post to some webhook failed (err says which and
// why), else "ok".
func (a *Announcer) Status() (state, err string) {
	if !a.Enabled() {
		return "off", ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failure) > 0 {
		var msgs []string
		for hook, e := range a.failure {
			msgs = append(msgs, hook+": "+e)
		}
		return "error", strings.Join(msgs, "; ")
	}
	if a.pending > 0 {
		return "sending", ""
	}
	return "ok", ""
}

// Wait blocks until every post has finished (for shutdown and tests).
func (a *Announcer) Wait() { a.wg.Wait() }

func (a *Announcer) post(ctx context.Context, hook Webhook, ann Announcement) error {
	body, err := payload(hook.Format, ann)
	if err != nil {
		return err
	}
	wait := a.opt.Backoff
	for attempt := 1; ; attempt++ {
		err = a.attempt(ctx, hook.URL, body)
		var permanent *permanentError
		if err == nil || errors.As(err, &permanent) || attempt == a.opt.Attempts {
			if err != nil {
				return fmt.Errorf("after %d attempt(s): %w", attempt, err)
			}
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gave up: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
}

// permanentError is an answer that a retry will not change (4xx but 429).
type permanentError struct{ status string }

func (e *permanentError) Error() string { return "refused: " + e.status }

func (a *Announcer) attempt(ctx context.Context, target string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, a.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return &permanentError{status: "bad request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "onaird")
	resp, err := a.opt.Client.Do(req)
	if err != nil {
		// The URL may carry a secret (Slack's do): say what failed without it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		return &permanentError{status: resp.Status}
	}
	return fmt.Errorf("answer: %s", resp.Status)
}

func payload(format string, ann Announcement) ([]byte, error) {
	line := "Live now"
	if ann.Title != "" {
		line += ": " + ann.Title
	}
	if ann.Link != "" {
		line += " " + ann.Link
	}
	switch format {
	case Slack:
		return json.Marshal(map[string]string{"text": line})
	case Discord:
		return json.Marshal(map[string]any{
			"content": line,
			// A title must not ping @everyone in somebody's server.
			"allowed_mentions": map[string][]string{"parse": {}},
		})
	case JSON:
		return json.Marshal(ann)
	}
	return nil, fmt.Errorf("unknown webhook format %q", format)
}

// redact keeps a webhook's scheme and host for logs and status: the path of
// an incoming webhook is its secret.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}
