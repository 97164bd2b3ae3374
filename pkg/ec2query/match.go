package ec2query

import "unicode/utf8"

// Match reports whether s matches the filter value pattern with EC2's
// wildcards: "*" matches any run of characters, including none; "?"
// matches exactly one character; a backslash makes the next character
// literal, so "\*", "\?" and "\\" match "*", "?" and "\" (EC2's example:
// "\*amazon\?\\" matches the literal "*amazon?\"). A backslash before any
// other character also makes it literal, and a backslash at the end of the
// pattern matches a backslash. Matching is case-sensitive and covers the
// whole of s; the empty pattern matches only the empty string.
//
// A character is a Unicode code point; in a string that is not valid UTF-8
// each invalid byte counts as one character. The time taken is at most
// proportional to len(pattern) * len(s).
func Match(pattern, s string) bool {
	toks := compile(pattern)
	pi, si := 0, 0
	star, mark := -1, 0 // the last "*" seen, and where in s it resumes
	for si < len(s) {
		_, size := utf8.DecodeRuneInString(s[si:])
		if pi < len(toks) {
			switch t := toks[pi]; {
			case t.kind == tokStar:
				star, mark = pi, si
				pi++
				continue
			case t.kind == tokOne, t.kind == tokLit && s[si:si+size] == t.lit:
				pi++
				si += size
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Let the last "*" take one more character and retry after it.
		_, size = utf8.DecodeRuneInString(s[mark:])
		mark += size
		pi, si = star+1, mark
	}
	for pi < len(toks) && toks[pi].kind == tokStar {
		pi++
	}
	return pi == len(toks)
}

type tokKind uint8

const (
	tokLit  tokKind = iota // one literal character
	tokOne                 // "?"
	tokStar                // "*"
)

type token struct {
	kind tokKind
	lit  string
}

// compile splits a pattern into tokens, resolving escapes and folding runs
// of "*" into one.
func compile(pattern string) []token {
	toks := make([]token, 0, len(pattern))
	for i := 0; i < len(pattern); {
		c := pattern[i]
		switch {
		case c == '*':
			if n := len(toks); n == 0 || toks[n-1].kind != tokStar {
				toks = append(toks, token{kind: tokStar})
			}
			i++
			continue
		case c == '?':
			toks = append(toks, token{kind: tokOne})
			i++
			continue
		case c == '\\' && i+1 < len(pattern):
			i++
		}
		_, size := utf8.DecodeRuneInString(pattern[i:])
		toks = append(toks, token{kind: tokLit, lit: pattern[i : i+size]})
		i += size
	}
	return toks
}
