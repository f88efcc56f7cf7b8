package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/fleet"
	"github.com/onair/onair/settings"
)

// errNotYet answers a command for a feature this firmware does not have yet,
// so that the operator reads why instead of guessing.
func errNotYet(what string) error {
	return fmt.Errorf("%s is not available in this firmware yet", what)
}

// controller carries out MQTT commands through the same entry points as the
// button and the HTTP API.
type controller struct{ d *Daemon }

func (c controller) Live(ctx context.Context, args fleet.LiveArgs) error {
	st, _ := c.d.hub.Status()
	title, private := st.Title, st.Private
	if args.Private != nil {
		private = *args.Private
	}
	if args.Title != nil {
		if err := broadcast.CheckTitle(*args.Title); err != nil {
			return err
		}
		title = *args.Title
	}
	_, err := c.d.hub.GoLive(ctx, broadcast.LiveOptions{Title: title, Private: private})
	return err
}

func (c controller) Stop(ctx context.Context) error {
	_, err := c.d.hub.Stop(ctx)
	return err
}

// Set applies all of its fields or none: a refused field leaves everything
// as it was.
func (c controller) Set(_ context.Context, args fleet.SetArgs) error {
	if args.UplinkURL != nil {
		if err := checkUplinkURL(*args.UplinkURL); err != nil {
			return err
		}
	}
	if args.Title != nil {
		if err := broadcast.CheckTitle(*args.Title); err != nil {
			return err
		}
	}
	if args.BitrateKbps != nil && (*args.BitrateKbps < 100 || *args.BitrateKbps > 50000) {
		return fmt.Errorf("bitrate_kbps %d: want 100 to 50000", *args.BitrateKbps)
	}
	// The uplink goes first: it is the one change that can still be refused
	// (enabled without a URL), and a refusal must leave everything as it was.
	if args.UplinkURL != nil || args.UplinkToken != nil || args.UplinkEnabled != nil {
		if err := c.d.setUplink(args.UplinkURL, args.UplinkToken, args.UplinkEnabled); err != nil {
			return err
		}
	}
	if args.Title != nil {
		c.d.hub.SetTitle(*args.Title)
	}
	if args.Private != nil {
		c.d.hub.SetPrivate(*args.Private)
	}
	if args.CommentsEnabled != nil {
		c.d.room.SetCommentsEnabled(*args.CommentsEnabled)
	}
	if args.BitrateKbps != nil {
		kbps := *args.BitrateKbps
		if err := c.d.settings.Update(func(s *settings.Settings) { s.BitrateKbps = &kbps }); err != nil {
			return err
		}
		c.d.pipeline.SetBitrate(kbps)
	}
	return nil
}

// Reboot restarts the box a moment after the reply is out, stopping a
// live broadcast cleanly first (the operator asked for it).
func (c controller) Reboot(context.Context) error {
	if c.d.reboot == nil {
		return errors.New("reboot: this daemon cannot restart the machine it runs on")
	}
	c.d.bg.Add(1)
	go func() {
		defer c.d.bg.Done()
		select {
		case <-c.d.life.Done():
			return
		case <-time.After(time.Second): // the reply goes out first
		}
		c.d.log.Info("rebooting on the operator's command")
		c.d.hub.Stop(c.d.life)
		if err := c.d.reboot(c.d.life); err != nil {
			c.d.log.Error("reboot", "err", err)
		}
	}()
	return nil
}

// OTA starts an update; progress and the result follow as events.
func (c controller) OTA(_ context.Context, args fleet.OTAArgs) error {
	return c.d.StartOTA(OTARequest{Source: args.URL, Version: args.Version, SHA256: args.SHA256, Downgrade: args.Downgrade})
}

func (c controller) CommentRemove(_ context.Context, id string) error { return c.d.room.Remove(id) }

func (c controller) ViewerBlock(_ context.Context, viewer string) error {
	return c.d.room.Block(viewer)
}

func (c controller) ReplayDelete(_ context.Context, id string) error {
	if c.d.replays == nil {
		return errors.New("replays are off on this box (replay.enabled, or the data partition cannot hold them)")
	}
	return c.d.replays.Delete(id)
}

// publishEvents turns state changes into fleet events (went_live, stopped,
// error) until ctx ends.
func publishEvents(ctx context.Context, hub *broadcast.Hub, client *fleet.Client, wg *sync.WaitGroup) {
	defer wg.Done()
	last, changed := hub.Status()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		var st broadcast.Status
		st, changed = hub.Status()
		if st.State == last.State {
			continue
		}
		switch st.State {
		case broadcast.Live:
			client.Event(fleet.EventWentLive, map[string]any{"broadcast_id": st.BroadcastID, "title": st.Title})
		case broadcast.Idle:
			if last.State == broadcast.Live || last.State == broadcast.Stopping {
				client.Event(fleet.EventStopped, map[string]any{"broadcast_id": st.BroadcastID})
			}
		case broadcast.Error:
			client.Event(fleet.EventError, map[string]any{"error": st.Error})
		}
		last = st
	}
}

var _ fleet.Controller = controller{}
