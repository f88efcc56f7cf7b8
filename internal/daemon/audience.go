package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onair/onair/announce"
	"github.com/onair/onair/audience"
	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/settings"
)

// openAudience makes the chat room, the invite store (its key on the data
// partition) and the announcer.
func (d *Daemon) openAudience() error {
	a := d.cfg.Audience
	// The room reads 0 as "default"; the config's 0 means "none".
	orNone := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	history := a.History
	if history == 0 {
		history = -1
	}
	d.room = audience.NewRoom(audience.Options{
		MaxCommentRunes: a.CommentMaxChars,
		CommentInterval: orNone(a.CommentInterval.D()),
		HeartInterval:   orNone(a.HeartInterval.D()),
		History:         history,
		// Three seconds of a busy chat (20 comments/s) per socket: a page
		// further behind is closed and reconnects with a fresh snapshot.
		SubscriberQueue: 64,
	})
	if saved := d.settings.Get().CommentsEnabled; saved != nil {
		d.room.SetCommentsEnabled(*saved)
	}
	dir := filepath.Join(d.cfg.DataDir, "invites")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("invites: %w", err)
	}
	var err error
	if d.invites, err = audience.OpenInvites(dir, nil); err != nil {
		if d.invites == nil {
			return fmt.Errorf("invites: %w", err)
		}
		d.log.Error("invites", "err", err) // set aside; old links are refused, new ones work
	}
	var hooks []announce.Webhook
	for _, w := range d.cfg.Announce.Webhooks {
		hooks = append(hooks, announce.Webhook{URL: w.URL, Format: w.Format})
	}
	d.announcer = announce.New(announce.Options{Webhooks: hooks, Timeout: d.cfg.Announce.Timeout.D(), Log: d.log})
	return nil
}

// publicURL is how viewers reach the box: public_url, else the host's name
// and the HTTP port.
func publicURL(cfg config.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	port := "8080"
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = fmt.Sprint(tcp.Port)
	}
	return "http://" + net.JoinHostPort(host, port)
}

// followBroadcast keeps the audience in step with the hub until ctx ends: a
// new broadcast starts with an empty room and is announced (public ones
// only); a broadcast turning private drops the viewers without an invite;
// private and comments on/off survive a reboot.
//
// The caller takes the first status and subscription before starting it,
// so a go-live that comes right after start is not missed.
func (d *Daemon) followBroadcast(ctx context.Context, last broadcast.Status, changed <-chan struct{}, comments *audience.Subscription) {
	defer func() { comments.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-comments.Events():
			if !ok {
				comments = d.room.Subscribe()
				continue
			}
			if e.Type == "comments_enabled" {
				on := e.Enabled
				if err := d.settings.Update(func(s *settings.Settings) { s.CommentsEnabled = &on }); err != nil {
					d.log.Error("save comments on/off", "err", err)
				}
			}
			continue
		case <-changed:
		}
		var st broadcast.Status
		st, changed = d.hub.Status()
		if st.BroadcastID != last.BroadcastID && st.BroadcastID != "" {
			d.room.Reset(st.BroadcastID)
			if !st.Private && d.announcer.Enabled() {
				d.announcer.Announce(ctx, announce.Announcement{
					BroadcastID: st.BroadcastID, Title: st.Title, Link: d.publicURL + "/",
					Device: d.deviceID, Started: time.Now().UTC(),
				})
			}
		}
		if st.Private != last.Private {
			private := st.Private
			if err := d.settings.Update(func(s *settings.Settings) { s.Private = &private }); err != nil {
				d.log.Error("save private", "err", err)
			}
			if private {
				if n := d.web.DropUnadmitted(); n > 0 {
					d.log.Info("broadcast went private", "viewers_dropped", n)
				}
			}
		}
		last = st
	}
}
