package ec2query

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		// Literals.
		{"running", "running", true},
		{"running", "Running", false},
		{"running", "running ", false},
		{"run", "running", false},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		// Star.
		{"*", "", true},
		{"*", "anything at all", true},
		{"**", "", true},
		{"web*", "web", true},
		{"web*", "webserver-1", true},
		{"web*", "myweb", false},
		{"*web", "myweb", true},
		{"*web*", "a web b", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"a*b*c", "acb", false},
		{"*a*a*a*a*a*b", strings.Repeat("a", 40), false},
		{"*a*a*a*a*a*b", strings.Repeat("a", 40) + "b", true},
		// Question mark.
		{"?", "", false},
		{"?", "x", true},
		{"?", "xy", false},
		{"i-????????", "i-12345678", true},
		{"i-????????", "i-1234567", false},
		{"?*", "", false},
		{"?*", "a", true},
		{"*?", "ab", true},
		// Escapes, EC2's example and the rest.
		{`\*amazon\?\\`, `*amazon?\`, true},
		{`\*amazon\?\\`, `Xamazon?\`, false},
		{`\*amazon\?\\`, `*amazonX\`, false},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`\*`, "", false},
		{`\?`, "?", true},
		{`\?`, "a", false},
		{`\\`, `\`, true},
		{`\\*`, `\anything`, true},
		{`\\*`, `anything`, false},
		{`a\b`, "ab", true},
		{`a\b`, `a\b`, false},
		{`a\`, `a\`, true},
		{`\`, `\`, true},
		{`\`, ``, false},
		{`\\\*`, `\*`, true},
		// Unicode: a character is a code point.
		{"caf?", "café", true},
		{"caf??", "café", false},
		{"?", "€", true},
		{"??", "€", false},
		{"*é", "résumé", true},
		{"r?sum?", "résumé", true},
		{"😀*", "😀 smile", true},
		{"?", "😀", true},
		{`\😀`, "😀", true},
		{"名*", "名前", true},
		{"é", "e\u0301", false}, // no normalisation
		// Invalid UTF-8: each bad byte is one character.
		{"?", "\xff", true},
		{"??", "\xff\xfe", true},
		{"\xff", "\xff", true},
		{"\xe2", "€", false}, // a lone lead byte is not the whole rune
		{"\xe2*", "€", false},
		{"*", "\xe2\x82", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"|"+tt.s, func(t *testing.T) {
			if got := Match(tt.pattern, tt.s); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

// escapePattern returns the pattern that matches exactly s.
func escapePattern(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		if c := s[i]; c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// matchRegexp is an independent oracle for Match on valid UTF-8.
func matchRegexp(pattern, s string) bool {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for i := 0; i < len(pattern); {
		r, size := utf8.DecodeRuneInString(pattern[i:])
		i += size
		switch {
		case r == '*':
			b.WriteString(".*")
		case r == '?':
			b.WriteString(".")
		case r == '\\' && i < len(pattern):
			r, size = utf8.DecodeRuneInString(pattern[i:])
			i += size
			b.WriteString(regexp.QuoteMeta(string(r)))
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`\z`)
	return regexp.MustCompile(b.String()).MatchString(s)
}

func TestMatchAgreesWithRegexp(t *testing.T) {
	patterns := []string{"", "*", "?", "a*", "*a", "a?c", `\*`, `\\`, "*.*", "?*?", "é*?", `a\?b*`, `x\`}
	subjects := []string{"", "a", "abc", "*", `\`, "a?b", "a.b", "é", "éa", "aéc", "?", "x\\"}
	for _, p := range patterns {
		for _, s := range subjects {
			if got, want := Match(p, s), matchRegexp(p, s); got != want {
				t.Errorf("Match(%q, %q) = %v, regexp says %v", p, s, got, want)
			}
		}
	}
}

func TestMatchEscapedIsLiteral(t *testing.T) {
	for _, s := range []string{"", "plain", `*?\`, "tag:Name=web*", "a\\b", "café €", "\x00\n"} {
		if !Match(escapePattern(s), s) {
			t.Errorf("escaped %q does not match itself", s)
		}
		if Match(escapePattern(s), s+"x") {
			t.Errorf("escaped %q matches more", s)
		}
	}
}
