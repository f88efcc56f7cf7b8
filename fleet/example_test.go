package fleet_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/fleet"
	"github.com/onair/onair/status"
)

// hubCommands carries MQTT commands out through the hub, the same entry
// point as the button and the HTTP API.
type hubCommands struct{ hub *broadcast.Hub }

func (c hubCommands) Live(ctx context.Context, a fleet.LiveArgs) error {
	if a.Private != nil && *a.Private {
		return fmt.Errorf("private broadcasts: %w", fleet.ErrNotAvailable)
	}
	st, _ := c.hub.Status()
	title := st.Title
	if a.Title != nil {
		title = *a.Title
	}
	_, err := c.hub.GoLive(ctx, broadcast.LiveOptions{Title: title})
	return err
}

func (c hubCommands) Stop(ctx context.Context) error { _, err := c.hub.Stop(ctx); return err }

func (c hubCommands) Set(_ context.Context, a fleet.SetArgs) error {
	if a.Title == nil || a.Private != nil || a.CommentsEnabled != nil || a.BitrateKbps != nil ||
		a.UplinkURL != nil || a.UplinkToken != nil || a.UplinkEnabled != nil {
		return fmt.Errorf("set: only title: %w", fleet.ErrNotAvailable)
	}
	c.hub.SetTitle(*a.Title)
	return nil
}

func (hubCommands) Reboot(context.Context) error {
	return fmt.Errorf("reboot: %w", fleet.ErrNotAvailable)
}
func (hubCommands) OTA(context.Context, fleet.OTAArgs) error {
	return fmt.Errorf("ota: %w", fleet.ErrNotAvailable)
}
func (hubCommands) CommentRemove(context.Context, string) error {
	return fmt.Errorf("comment_remove: %w", fleet.ErrNotAvailable)
}
func (hubCommands) ViewerBlock(context.Context, string) error {
	return fmt.Errorf("viewer_block: %w", fleet.ErrNotAvailable)
}
func (hubCommands) ReplayDelete(context.Context, string) error {
	return fmt.Errorf("replay_delete: %w", fleet.ErrNotAvailable)
}

// How the daemon wires the fleet client: status from the same builder as
// /api/status, changes from the hub, commands through the hub.
func Example() {
	hub := broadcast.New(broadcast.Options{})
	sources := status.Sources{Hub: hub}
	cfg := config.Default()
	cfg.MQTT.Broker = "tcp://127.0.0.1:1883"

	client, err := fleet.New(fleet.Options{
		Config: cfg.MQTT, DeviceID: "stage-left",
		Status: sources.Build, Changes: fleet.HubChanges(hub),
		Commands: hubCommands{hub}, Logger: slog.Default(),
		OutboxDir: cfg.DataDir + "/mqtt-outbox",
	})
	if err != nil {
		slog.Info("MQTT off", "reason", err) // fleet.ErrNoBroker when mqtt.broker is empty
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go client.Run(ctx)
	_ = client.Event(fleet.EventButton, map[string]any{"press": "short"})
	cancel()
	_ = client.Close()
}
