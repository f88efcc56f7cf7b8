package audience

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Ada", "Ada"},
		{"  Ada   Lovelace  ", "Ada Lovelace"},
		{"Ada\nLovelace\r\n", "Ada Lovelace"},
		{"Ada\tL.", "Ada L."},
		{"\u202EnimdA", "nimdA"},
		{"\x00\x07", DefaultName},
		{"", DefaultName},
		{"مرحبا\u200F", "مرحبا\u200F"}, // direction marks stay
		{"👩‍👩‍👧", "👩‍👩‍👧"},             // joiners stay
		{strings.Repeat("ab", 30), strings.Repeat("ab", 20)},
		{strings.Repeat("a", 39) + " b", strings.Repeat("a", 39)}, // no trailing space after the cut
	}
	for _, tc := range tests {
		if got := cleanName(tc.in); got != tc.want {
			t.Errorf("cleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzCleanText(f *testing.F) {
	for _, seed := range []string{"hello", "a\r\n\n\n\nb", "\xff\xfe", "\u202E\u2066x", " \t "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, multiline := range []bool{false, true} {
			got := cleanText(s, multiline)
			if strings.TrimSpace(got) != got || strings.Contains(got, "\n\n\n") || strings.ContainsAny(got, "\x00\r\t\u202E") {
				t.Fatalf("cleanText(%q, %v) = %q", s, multiline, got)
			}
			if !multiline && strings.Contains(got, "\n") {
				t.Fatalf("a newline in one line: %q", got)
			}
			if again := cleanText(got, multiline); again != got {
				t.Fatalf("not stable: %q then %q", got, again)
			}
		}
	})
}
