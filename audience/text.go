package audience

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameRunes bounds a viewer's display name; longer names are cut.
const MaxNameRunes = 40

// DefaultName is the display name of a viewer who gave none.
const DefaultName = "viewer"

// MaxViewerIDBytes bounds a viewer id: ids are made by the page and stored
// per viewer for rate limits and blocks, so their size is the client's to
// choose only up to here.
const MaxViewerIDBytes = 64

// cleanText makes text from a viewer safe to store and show as plain text:
// invalid UTF-8 becomes U+FFFD, control characters go (newlines are kept
// when multiline, at most one empty line in a row), tabs become spaces, and
// the bidirectional overrides and isolates that can turn the rest of a chat
// line around ("Trojan Source") are removed. Nothing is HTML-escaped: the
// page renders text as text. The result is trimmed.
func cleanText(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(len(s))
	newlines := 0
	for i, r := range s {
		switch {
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				continue // \r\n is one newline
			}
			r = '\n'
		case r == '\u2028' || r == '\u2029': // line and paragraph separators
			r = '\n'
		case r == '\t':
			r = ' '
		}
		if r == '\n' {
			if !multiline {
				r = ' '
			} else {
				newlines++
				if newlines > 2 {
					continue
				}
				b.WriteRune(r)
				continue
			}
		}
		if unicode.IsControl(r) || isBidiControl(r) {
			continue
		}
		if !unicode.IsSpace(r) {
			newlines = 0
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// isBidiControl reports the embedding, override and isolate controls; the
// plain direction marks (LRM, RLM, ALM) stay, right-to-left writers use them.
func isBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

// cleanName makes a display name: one line, runs of spaces as one, at most
// MaxNameRunes, DefaultName when nothing is left.
func cleanName(s string) string {
	s = strings.Join(strings.Fields(cleanText(s, false)), " ")
	if utf8.RuneCountInString(s) > MaxNameRunes {
		s = strings.TrimSpace(string([]rune(s)[:MaxNameRunes]))
	}
	if s == "" {
		return DefaultName
	}
	return s
}
