package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestSampleEqualsDefaults(t *testing.T) {
	data, err := os.ReadFile("onair.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("sample config: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Fatalf("sample config differs from Default():\n got %+v\nwant %+v", got, Default())
	}
	// Every key of the struct appears in the sample, so the sample documents
	// all of them and a new key cannot be forgotten there.
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys(reflect.TypeOf(Config{}), "") {
		if !hasKey(root, key) {
			t.Errorf("sample config lacks key %s", key)
		}
	}
}

func TestDocsNameEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys(reflect.TypeOf(Config{}), "") {
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/config.md does not document `%s`", key)
		}
	}
}

func keys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := join(prefix, f.Tag.Get("yaml"))
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			out = append(out, keys(f.Type, name)...)
			continue
		}
		out = append(out, name)
	}
	return out
}

func hasKey(m map[string]any, dotted string) bool {
	parts := strings.Split(dotted, ".")
	var cur any = m
	for _, p := range parts {
		mm, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = mm[p]; !ok {
			return false
		}
	}
	return true
}

func TestParseErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "vidoe:\n  fps: 30\n", "vidoe: unknown key (line 1)"},
		{"unknown nested key", "video:\n  fsp: 30\n", "video.fsp: unknown key (line 2)"},
		{"unknown key in list item", "webrtc:\n  ice_servers:\n    - urls: [\"stun:x\"]\n      user: a\n", "webrtc.ice_servers[0].user: unknown key"},
		{"wrong type", "video:\n  fps: fast\n", "video.fps: line 2: cannot unmarshal"},
		{"bad duration", "video:\n  keyframe_interval: two seconds\n", "video.keyframe_interval: \"two seconds\" is not a duration"},
		{"out of range", "video:\n  fps: 500\n", "video.fps: 500: want 1 to 60"},
		{"bad enum", "video:\n  encoder: nvenc\n", "video.encoder: \"nvenc\": want one of auto, v4l2m2m, x264, passthrough"},
		{"odd width", "video:\n  width: 1281\n", "video.width: 1281"},
		{"bad listen", "http:\n  listen: eighty\n", "http.listen"},
		{"reserved device id", "device_id: fleet\n", "device_id"},
		{"section not a map", "video: 3\n", "video: want a mapping"},
		{"bad ice url", "webrtc:\n  ice_servers:\n    - urls: [\"http://x\"]\n", "webrtc.ice_servers[0].urls"},
		{"bad mqtt url", "mqtt:\n  broker: localhost\n", "mqtt.broker"},
		{"min over max", "uplink:\n  min_bitrate_kbps: 5000\n", "uplink.min_bitrate_kbps"},
		{"not yaml", "video: [\n", "not valid YAML"},
		{"relative edid", "video:\n  edid: edid.bin\n", "video.edid: \"edid.bin\": want an absolute path"},
		{"subdevice not a node", "video:\n  edid: /etc/onair/edid.bin\n  hdmi_subdevice: v4l-subdev2\n", "video.hdmi_subdevice: \"v4l-subdev2\": want a device node"},
		{"subdevice without edid", "video:\n  hdmi_subdevice: /dev/v4l-subdev2\n", "video.hdmi_subdevice: needs video.edid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("Parse accepted %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseOverridesOnlyWhatIsGiven(t *testing.T) {
	cfg, err := Parse([]byte("video:\n  fps: 25\n  keyframe_min_interval: 0s\nwebrtc:\n  ice_servers:\n    - urls: [\"stun:stun.example.org:3478\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Video.FPS = 25
	want.Video.KeyframeMinInterval = 0
	want.WebRTC.ICEServers = []ICEServer{{URLs: []string{"stun:stun.example.org:3478"}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	if cfg.Video.KeyframeInterval.D() != 2*time.Second {
		t.Fatalf("keyframe_interval lost its default: %v", cfg.Video.KeyframeInterval.D())
	}
}

func TestHDMIKeys(t *testing.T) {
	cfg, err := Parse([]byte("video:\n  edid: /etc/onair/edid-1080p30.bin\n  hdmi_subdevice: /dev/v4l-subdev2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Video.EDID != "/etc/onair/edid-1080p30.bin" || cfg.Video.HDMISubdevice != "/dev/v4l-subdev2" {
		t.Fatalf("video = %+v", cfg.Video)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatal("an empty file must give the defaults")
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{150 * time.Millisecond, 2 * time.Second, 24 * time.Hour, 90 * time.Minute} {
		out, err := yaml.Marshal(struct{ D Duration }{Duration(d)})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ D Duration }
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if back.D.D() != d {
			t.Fatalf("%v -> %s -> %v", d, out, back.D.D())
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("video:\n  fps: 30\n"))
	f.Add([]byte("webrtc:\n  ice_servers:\n    - urls: [a]\n"))
	f.Add([]byte("a: [b, {c: d}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data) // must never panic
	})
}
