package announce

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type received struct {
	mu     sync.Mutex
	bodies []map[string]any
	calls  int
}

func (r *received) handler(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		data, _ := io.ReadAll(req.Body)
		var body map[string]any
		json.Unmarshal(data, &body)
		r.mu.Lock()
		r.calls++
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		if req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		w.WriteHeader(status)
	}
}

var ann = Announcement{BroadcastID: "b1", Title: "Keynote", Link: "http://box.local:8080/", Device: "box-1",
	Started: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}

func TestFormats(t *testing.T) {
	var slack, discord, plain received
	servers := []*httptest.Server{
		httptest.NewServer(slack.handler(200)), httptest.NewServer(discord.handler(204)), httptest.NewServer(plain.handler(200)),
	}
	for _, s := range servers {
		defer s.Close()
	}
	a := New(Options{Webhooks: []Webhook{
		{URL: servers[0].URL + "/services/T0/B0/secret", Format: Slack},
		{URL: servers[1].URL + "/api/webhooks/1/secret", Format: Discord},
		{URL: servers[2].URL + "/hook", Format: JSON},
	}})
	a.Announce(context.Background(), ann)
	a.Wait()
	if state, err := a.Status(); state != "ok" || err != "" {
		t.Fatalf("status %q %q", state, err)
	}
	if got := slack.bodies[0]["text"]; got != "Live now: Keynote http://box.local:8080/" {
		t.Errorf("slack text %q", got)
	}
	if got := discord.bodies[0]["content"]; got != "Live now: Keynote http://box.local:8080/" {
		t.Errorf("discord content %q", got)
	}
	if _, ok := discord.bodies[0]["allowed_mentions"]; !ok {
		t.Error("discord payload may ping @everyone: allowed_mentions missing")
	}
	p := plain.bodies[0]
	if p["event"] != "went_live" || p["title"] != "Keynote" || p["link"] != ann.Link || p["device"] != "box-1" ||
		p["broadcast_id"] != "b1" || p["started"] != "2026-11-25T09:00:00Z" {
		t.Errorf("json payload %v", p)
	}
}

func TestRetriesThenReportsWithoutTheSecret(t *testing.T) {
	var failing, refusing received
	s5 := httptest.NewServer(failing.handler(http.StatusBadGateway))
	defer s5.Close()
	s4 := httptest.NewServer(refusing.handler(http.StatusNotFound))
	defer s4.Close()
	a := New(Options{Attempts: 3, Backoff: time.Millisecond, Webhooks: []Webhook{
		{URL: s5.URL + "/secret-path-1", Format: Slack}, {URL: s4.URL + "/secret-path-2", Format: JSON},
	}})
	a.Announce(context.Background(), ann)
	a.Wait()
	if failing.calls != 3 {
		t.Errorf("a 502 was tried %d times, want 3", failing.calls)
	}
	if refusing.calls != 1 {
		t.Errorf("a 404 was tried %d times, want 1 (retrying cannot help)", refusing.calls)
	}
	state, msg := a.Status()
	if state != "error" || !strings.Contains(msg, "502") || !strings.Contains(msg, "404") {
		t.Fatalf("status %q %q: want error naming both failures", state, msg)
	}
	if strings.Contains(msg, "secret") {
		t.Fatalf("status leaks the webhook's secret path: %q", msg)
	}
	// A later success clears the failure.
	var ok received
	good := httptest.NewServer(ok.handler(200))
	defer good.Close()
	b := New(Options{Webhooks: []Webhook{{URL: good.URL, Format: JSON}}})
	b.Announce(context.Background(), ann)
	b.Wait()
	if state, _ := b.Status(); state != "ok" {
		t.Fatalf("status %q after success", state)
	}
}

// A webhook that never answers must not hold up the caller: Announce returns
// while the server still holds the request, and the timeout ends the post.
func TestDeadWebhookDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	a := New(Options{Attempts: 1, Timeout: 200 * time.Millisecond, Webhooks: []Webhook{{URL: hung.URL, Format: JSON}}})
	a.Announce(context.Background(), ann)
	<-arrived // the post is in flight, held by the server, and Announce has returned
	if state, _ := a.Status(); state != "sending" {
		t.Fatalf("status while the post hangs: %q, want sending", state)
	}
	a.Wait()
	if state, msg := a.Status(); state != "error" || !strings.Contains(msg, "deadline") {
		t.Fatalf("status after the timeout: %q %q", state, msg)
	}
}

func TestNoWebhooksIsOff(t *testing.T) {
	a := New(Options{})
	a.Announce(context.Background(), ann)
	a.Wait()
	if state, _ := a.Status(); state != "off" || a.Enabled() {
		t.Fatalf("state %q", state)
	}
}

func TestCheck(t *testing.T) {
	for _, w := range []Webhook{{URL: "ftp://x/y", Format: JSON}, {URL: "https://hooks.example/x", Format: "teams"}, {URL: "not a url", Format: Slack}} {
		if w.Check() == nil {
			t.Errorf("%+v accepted", w)
		}
	}
	if err := (Webhook{URL: "https://hooks.slack.com/services/x", Format: Slack}).Check(); err != nil {
		t.Error(err)
	}
}
