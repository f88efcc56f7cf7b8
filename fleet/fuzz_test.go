package fleet

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseCommand: whatever arrives on a command topic, the decoder never
// panics and gives either a runnable command or an error for the reply.
func FuzzParseCommand(f *testing.F) {
	seeds := []struct{ name, payload string }{
		{"live", `{"id":"1","title":"Keynote","private":false}`},
		{"live", ``},
		{"stop", `{}`},
		{"set", `{"title":"T","bitrate_kbps":1800,"uplink_url":"https://x/whip","uplink_enabled":true}`},
		{"ota", `{"id":"o","url":"https://u/b.bundle","version":"v1","sha256":"` + strings.Repeat("0f", 32) + `","downgrade":false}`},
		{"comment_remove", `{"comment":"c1"}`},
		{"viewer_block", `{"viewer":"v1"}`},
		{"replay_delete", `{"replay":"r1"}`},
		{"reboot", `{"id":null}`},
		{"live", `{"id":"a","title":`},
		{"nope", `{"id":"x"}`},
		{"set", `{"bitrate_kbps":1e400}`},
		{"live", "\xff"},
	}
	for _, s := range seeds {
		f.Add(s.name, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		cmd, err := parseCommand(name, payload)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("error without a message")
			}
			if !utf8.ValidString(err.Error()) && utf8.ValidString(name) {
				t.Fatalf("error %q is not text", err)
			}
			return
		}
		if _, known := commandFields[name]; !known {
			t.Fatalf("unknown command %q accepted", name)
		}
		if cmd.Name != name {
			t.Fatalf("name %q became %q", name, cmd.Name)
		}
		if name == CmdSet && cmd.Set == (SetArgs{}) {
			t.Fatal("set without settings accepted")
		}
		if name == CmdOTA && checkHTTPURL(cmd.OTA.URL) != nil {
			t.Fatalf("ota with url %q accepted", cmd.OTA.URL)
		}
		if t := cmd.Live.Title; t != nil && (utf8.RuneCountInString(*t) > maxTitleRunes || strings.ContainsAny(*t, "\r\n\x00")) {
			panic("bad title accepted")
		}
	})
}
