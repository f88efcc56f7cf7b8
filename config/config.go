// Package config holds the daemon's configuration: one typed struct, one
// defaults function, and loading from YAML that refuses unknown keys and bad
// values with the dotted name of the key at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Field tags are the YAML keys.
type Config struct {
	DeviceID  string   `yaml:"device_id"`
	DataDir   string   `yaml:"data_dir"`
	PublicURL string   `yaml:"public_url"`
	HTTP      HTTP     `yaml:"http"`
	Video     Video    `yaml:"video"`
	Audio     Audio    `yaml:"audio"`
	WebRTC    WebRTC   `yaml:"webrtc"`
	MQTT      MQTT     `yaml:"mqtt"`
	Replay    Replay   `yaml:"replay"`
	Uplink    Uplink   `yaml:"uplink"`
	GPIO      GPIO     `yaml:"gpio"`
	OTA       OTA      `yaml:"ota"`
	Audience  Audience `yaml:"audience"`
	Announce  Announce `yaml:"announce"`
}

// HTTP configures the web server.
type HTTP struct {
	Listen string `yaml:"listen"`
	// AdminToken empty means: generate one at first start, keep it in data_dir.
	AdminToken string `yaml:"admin_token"`
}

// Video configures the camera and the H.264 encoder.
type Video struct {
	Source              string   `yaml:"source"`
	TestPattern         string   `yaml:"test_pattern"`
	Device              string   `yaml:"device"`
	Width               int      `yaml:"width"`
	Height              int      `yaml:"height"`
	FPS                 int      `yaml:"fps"`
	Encoder             string   `yaml:"encoder"`
	BitrateKbps         int      `yaml:"bitrate_kbps"`
	KeyframeInterval    Duration `yaml:"keyframe_interval"`
	KeyframeMinInterval Duration `yaml:"keyframe_min_interval"`
	// EDID, when set, makes video.device an HDMI-to-CSI-2 bridge
	// (TC358743): this EDID file is loaded into it, and the HDMI source's
	// DV timings decide the picture.
	EDID string `yaml:"edid"`
	// HDMISubdevice is the bridge's /dev/v4l-subdevN where the EDID and DV
	// timings go on media-controller systems (Pi 5); empty: video.device.
	HDMISubdevice string `yaml:"hdmi_subdevice"`
}

// Audio configures the microphone and the Opus encoder.
type Audio struct {
	Source      string `yaml:"source"`
	Device      string `yaml:"device"`
	BitrateKbps int    `yaml:"bitrate_kbps"`
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// WebRTC configures the viewers' peer connections.
type WebRTC struct {
	ICEServers      []ICEServer `yaml:"ice_servers"`
	UDPPort         int         `yaml:"udp_port"`
	AdditionalHosts []string    `yaml:"additional_hosts"`
	MaxViewers      int         `yaml:"max_viewers"`
}

// MQTT configures the fleet connection.
type MQTT struct {
	Broker            string   `yaml:"broker"`
	Username          string   `yaml:"username"`
	Password          string   `yaml:"password"`
	CAFile            string   `yaml:"ca_file"`
	CertFile          string   `yaml:"cert_file"`
	KeyFile           string   `yaml:"key_file"`
	BaseTopic         string   `yaml:"base_topic"`
	Groups            []string `yaml:"groups"`
	TelemetryInterval Duration `yaml:"telemetry_interval"`
	KeepAlive         Duration `yaml:"keepalive"`
}

// Replay configures recording and retention.
type Replay struct {
	Enabled   bool     `yaml:"enabled"`
	Retention Duration `yaml:"retention"`
	MinFreeMB int      `yaml:"min_free_mb"`
}

// Uplink configures the WHIP push to a media server.
type Uplink struct {
	WHIPURL        string `yaml:"whip_url"`
	BearerToken    string `yaml:"bearer_token"`
	MinBitrateKbps int    `yaml:"min_bitrate_kbps"`
	MaxBitrateKbps int    `yaml:"max_bitrate_kbps"`
	// LEDAlertAfter is how long the uplink may be down, live, before the
	// LED shows the error pattern.
	LEDAlertAfter Duration `yaml:"led_alert_after"`
}

// GPIO configures the button and the tally LED.
type GPIO struct {
	Button          string   `yaml:"button"`
	LED             string   `yaml:"led"`
	Tally           string   `yaml:"tally"`
	ActiveLow       bool     `yaml:"active_low"`
	Debounce        Duration `yaml:"debounce"`
	LongPress       Duration `yaml:"long_press"`
	LongPressAction string   `yaml:"long_press_action"`
}

// OTA configures firmware updates.
type OTA struct {
	AllowDowngrade bool `yaml:"allow_downgrade"`
}

// Audience configures comments and hearts.
type Audience struct {
	CommentMaxChars int      `yaml:"comment_max_chars"`
	CommentInterval Duration `yaml:"comment_interval"`
	HeartInterval   Duration `yaml:"heart_interval"`
	History         int      `yaml:"history"`
	InviteTTL       Duration `yaml:"invite_ttl"`
}

// Webhook is one announcement target.
type Webhook struct {
	URL    string `yaml:"url"`
	Format string `yaml:"format"`
}

// Announce configures the go-live announcement (off without webhooks).
type Announce struct {
	Webhooks []Webhook `yaml:"webhooks"`
	Timeout  Duration  `yaml:"timeout"`
}

// Duration is a time.Duration written as "150ms", "2s" or "24h" in YAML.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 150ms, 2s, 24h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go's notation.
func (d Duration) MarshalYAML() (any, error) { return formatDuration(time.Duration(d)), nil }

// formatDuration prints "24h" rather than Go's "24h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		DataDir: "/var/lib/onair",
		HTTP:    HTTP{Listen: ":8080"},
		Video: Video{
			Source: "auto", TestPattern: "bars", Device: "/dev/video0",
			Width: 1280, Height: 720, FPS: 30,
			Encoder: "auto", BitrateKbps: 2500,
			KeyframeInterval:    Duration(2 * time.Second),
			KeyframeMinInterval: Duration(150 * time.Millisecond),
		},
		Audio:  Audio{Source: "auto", BitrateKbps: 64},
		WebRTC: WebRTC{ICEServers: []ICEServer{}, UDPPort: 8189, AdditionalHosts: []string{}, MaxViewers: 50},
		MQTT: MQTT{
			BaseTopic: "onair", Groups: []string{},
			TelemetryInterval: Duration(10 * time.Second), KeepAlive: Duration(30 * time.Second),
		},
		Replay: Replay{Enabled: true, Retention: Duration(24 * time.Hour), MinFreeMB: 200},
		Uplink: Uplink{MinBitrateKbps: 300, MaxBitrateKbps: 4000, LEDAlertAfter: Duration(30 * time.Second)},
		GPIO: GPIO{
			ActiveLow: true, Debounce: Duration(30 * time.Millisecond),
			LongPress: Duration(3 * time.Second), LongPressAction: "private",
		},
		Audience: Audience{
			CommentMaxChars: 280, CommentInterval: Duration(2 * time.Second),
			HeartInterval: Duration(250 * time.Millisecond), History: 50, InviteTTL: Duration(24 * time.Hour),
		},
		Announce: Announce{Webhooks: []Webhook{}, Timeout: Duration(5 * time.Second)},
	}
}

// Load reads the file at path over the defaults. A missing file is an error:
// the caller decides whether running on defaults is acceptable.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads YAML over the defaults, refuses unknown keys by their dotted
// name, and validates the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, cfg.Validate()
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, fmt.Errorf("not valid YAML: %w", err)
	}
	if root.Kind == 0 || (root.Kind == yaml.DocumentNode && len(root.Content) == 0) {
		return cfg, cfg.Validate() // only comments
	}
	if err := checkKeys(&root, reflect.TypeOf(cfg), ""); err != nil {
		return Config{}, err
	}
	if err := decodeFields(&root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

// checkKeys walks the YAML tree beside the struct type and names the first
// key the struct does not have.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(Duration(0)) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return fmt.Errorf("%s: want a mapping of keys (line %d)", nameOr(path), n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fieldByTag(t, key)
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", join(path, key), n.Content[i].Line)
			}
			if err := checkKeys(n.Content[i+1], f.Type, join(path, key)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil // the decoder reports the type error with the key's name
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeFields decodes key by key so a type error names its dotted key.
func decodeFields(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := decodeFields(c, v, path); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.MappingNode || v.Kind() != reflect.Struct || v.Type() == reflect.TypeOf(Duration(0)) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%s: %s", nameOr(path), cleanYAMLError(err))
		}
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		f, _ := fieldByTag(v.Type(), key)
		if err := decodeFields(n.Content[i+1], v.FieldByIndex(f.Index), join(path, key)); err != nil {
			return err
		}
	}
	return nil
}

func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		// "line 3: cannot unmarshal !!str `abc` into int" -> keep as is, it is clear.
		return msg
	}
	return err.Error()
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if strings.Split(f.Tag.Get("yaml"), ",")[0] == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func nameOr(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// Validate checks every value and names the first bad key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DeviceID == "fleet" || c.DeviceID == "group" || strings.ContainsAny(c.DeviceID, "/+# ") {
		bad("device_id", "%q cannot be a device id (reserved or has /, +, # or a space)", c.DeviceID)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public_url", "%q is not an http(s) URL", c.PublicURL)
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%q is not host:port (example: \":8080\")", c.HTTP.Listen)
	}
	oneOf(bad, "video.source", c.Video.Source, "auto", "v4l2", "test")
	oneOf(bad, "video.test_pattern", c.Video.TestPattern, "bars", "noise")
	oneOf(bad, "video.encoder", c.Video.Encoder, "auto", "v4l2m2m", "x264", "passthrough")
	if c.Video.Width < 16 || c.Video.Width > 3840 || c.Video.Width%2 != 0 {
		bad("video.width", "%d: want an even number from 16 to 3840", c.Video.Width)
	}
	if c.Video.Height < 16 || c.Video.Height > 2160 || c.Video.Height%2 != 0 {
		bad("video.height", "%d: want an even number from 16 to 2160", c.Video.Height)
	}
	if c.Video.FPS < 1 || c.Video.FPS > 60 {
		bad("video.fps", "%d: want 1 to 60", c.Video.FPS)
	}
	if c.Video.BitrateKbps < 100 || c.Video.BitrateKbps > 50000 {
		bad("video.bitrate_kbps", "%d: want 100 to 50000", c.Video.BitrateKbps)
	}
	if c.Video.KeyframeInterval.D() < 100*time.Millisecond || c.Video.KeyframeInterval.D() > time.Minute {
		bad("video.keyframe_interval", "%s: want 100ms to 1m", c.Video.KeyframeInterval.D())
	}
	if c.Video.KeyframeMinInterval.D() < 0 || c.Video.KeyframeMinInterval.D() > c.Video.KeyframeInterval.D() {
		bad("video.keyframe_min_interval", "%s: want 0 up to video.keyframe_interval", c.Video.KeyframeMinInterval.D())
	}
	if c.Video.EDID != "" && !strings.HasPrefix(c.Video.EDID, "/") {
		bad("video.edid", "%q: want an absolute path to an EDID file (example: /etc/onair/edid-1080p30.bin)", c.Video.EDID)
	}
	switch {
	case c.Video.HDMISubdevice == "":
	case !strings.HasPrefix(c.Video.HDMISubdevice, "/dev/"):
		bad("video.hdmi_subdevice", "%q: want a device node such as /dev/v4l-subdev2", c.Video.HDMISubdevice)
	case c.Video.EDID == "":
		bad("video.hdmi_subdevice", "needs video.edid: the HDMI bridge is set up only with an EDID to load")
	}
	oneOf(bad, "audio.source", c.Audio.Source, "auto", "alsa", "test", "none")
	if c.Audio.BitrateKbps < 6 || c.Audio.BitrateKbps > 510 {
		bad("audio.bitrate_kbps", "%d: want 6 to 510", c.Audio.BitrateKbps)
	}
	for i, s := range c.WebRTC.ICEServers {
		if len(s.URLs) == 0 {
			bad(fmt.Sprintf("webrtc.ice_servers[%d].urls", i), "must list at least one stun: or turn: URL")
		}
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				bad(fmt.Sprintf("webrtc.ice_servers[%d].urls", i), "%q: want stun:, turn: or turns:", u)
			}
		}
	}
	if c.WebRTC.UDPPort < 0 || c.WebRTC.UDPPort > 65535 {
		bad("webrtc.udp_port", "%d: want 0 (random ports) to 65535", c.WebRTC.UDPPort)
	}
	if c.WebRTC.MaxViewers < 1 {
		bad("webrtc.max_viewers", "%d: want at least 1", c.WebRTC.MaxViewers)
	}
	if c.MQTT.Broker != "" {
		if u, err := url.Parse(c.MQTT.Broker); err != nil || u.Host == "" ||
			(u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") {
			bad("mqtt.broker", "%q: want tcp://host:1883 or ssl://host:8883", c.MQTT.Broker)
		}
	}
	if c.MQTT.BaseTopic == "" || strings.ContainsAny(c.MQTT.BaseTopic, "+#") {
		bad("mqtt.base_topic", "%q: must be non-empty without + or #", c.MQTT.BaseTopic)
	}
	if c.MQTT.TelemetryInterval.D() < time.Second {
		bad("mqtt.telemetry_interval", "%s: want at least 1s", c.MQTT.TelemetryInterval.D())
	}
	if c.MQTT.KeepAlive.D() < 5*time.Second || c.MQTT.KeepAlive.D() > 10*time.Minute {
		bad("mqtt.keepalive", "%s: want 5s to 10m", c.MQTT.KeepAlive.D())
	}
	if c.Replay.Retention.D() <= 0 {
		bad("replay.retention", "%s: want a positive duration", c.Replay.Retention.D())
	}
	if c.Replay.MinFreeMB < 0 {
		bad("replay.min_free_mb", "%d: want 0 or more", c.Replay.MinFreeMB)
	}
	if c.Uplink.WHIPURL != "" {
		if u, err := url.Parse(c.Uplink.WHIPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("uplink.whip_url", "%q is not an http(s) URL", c.Uplink.WHIPURL)
		}
	}
	if c.Uplink.MinBitrateKbps < 100 || c.Uplink.MinBitrateKbps > c.Uplink.MaxBitrateKbps {
		bad("uplink.min_bitrate_kbps", "%d: want at least 100 and no more than uplink.max_bitrate_kbps", c.Uplink.MinBitrateKbps)
	}
	if c.Uplink.LEDAlertAfter.D() < time.Second {
		bad("uplink.led_alert_after", "%s: want at least 1s", c.Uplink.LEDAlertAfter.D())
	}
	if c.GPIO.Debounce.D() < 0 || c.GPIO.Debounce.D() > time.Second {
		bad("gpio.debounce", "%s: want 0 to 1s", c.GPIO.Debounce.D())
	}
	if c.GPIO.LongPress.D() < 500*time.Millisecond {
		bad("gpio.long_press", "%s: want at least 500ms", c.GPIO.LongPress.D())
	}
	oneOf(bad, "gpio.long_press_action", c.GPIO.LongPressAction, "private", "comments", "shutdown", "none")
	if c.Audience.CommentMaxChars < 1 || c.Audience.CommentMaxChars > 2000 {
		bad("audience.comment_max_chars", "%d: want 1 to 2000", c.Audience.CommentMaxChars)
	}
	if c.Audience.CommentInterval.D() < 0 || c.Audience.CommentInterval.D() > 10*time.Minute {
		bad("audience.comment_interval", "%s: want 0 to 10m", c.Audience.CommentInterval.D())
	}
	if c.Audience.HeartInterval.D() < 0 || c.Audience.HeartInterval.D() > time.Minute {
		bad("audience.heart_interval", "%s: want 0 to 1m", c.Audience.HeartInterval.D())
	}
	if c.Audience.History < 0 || c.Audience.History > 1000 {
		bad("audience.history", "%d: want 0 to 1000", c.Audience.History)
	}
	if c.Audience.InviteTTL.D() < time.Minute || c.Audience.InviteTTL.D() > 30*24*time.Hour {
		bad("audience.invite_ttl", "%s: want 1m to 720h", c.Audience.InviteTTL.D())
	}
	for i, w := range c.Announce.Webhooks {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(fmt.Sprintf("announce.webhooks[%d].url", i), "is not an http(s) URL")
		}
		oneOf(bad, fmt.Sprintf("announce.webhooks[%d].format", i), w.Format, "slack", "discord", "json")
	}
	if c.Announce.Timeout.D() < 100*time.Millisecond || c.Announce.Timeout.D() > time.Minute {
		bad("announce.timeout", "%s: want 100ms to 1m", c.Announce.Timeout.D())
	}
	return errors.Join(errs...)
}

func oneOf(bad func(string, string, ...any), key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	bad(key, "%q: want one of %s", value, strings.Join(allowed, ", "))
}
