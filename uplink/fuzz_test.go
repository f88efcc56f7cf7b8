package uplink

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The media server's answer is outside input: checkAnswer refuses what is
// not SDP with an error and never panics.
func FuzzCheckAnswer(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n")
	f.Add("this is not SDP")
	f.Add("")
	f.Fuzz(func(t *testing.T, answer string) {
		_ = checkAnswer(answer)
	})
}

// An error response's body ends up in the status line: bounded, on one
// line, valid UTF-8.
func FuzzErrorBody(f *testing.F) {
	f.Add([]byte("bad token\n"))
	f.Add([]byte(strings.Repeat("é", 300)))
	f.Add([]byte{0xff, 0xfe, '\n', 'x'})
	f.Fuzz(func(t *testing.T, body []byte) {
		text := errorBody(body)
		if len(text) > maxErrorBody+len("...") {
			t.Errorf("%d bytes", len(text))
		}
		if !utf8.ValidString(text) || strings.ContainsAny(text, "\r\n") {
			t.Errorf("%q is not one line of valid UTF-8", text)
		}
	})
}
