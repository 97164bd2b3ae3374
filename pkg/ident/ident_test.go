package ident

import (
	"regexp"
	"testing"
)

func TestForms(t *testing.T) {
	for _, tc := range []struct {
		name, re string
		gen      func() string
	}{
		{"account", `^[1-9][0-9]{11}$`, AccountID},
		{"canonical", `^[0-9a-f]{64}$`, CanonicalID},
		{"access key", `^AKIA[A-Z2-7]{16}$`, AccessKeyID},
		{"secret", `^[A-Za-z0-9+/]{40}$`, SecretKey},
		{"resource", `^sg-[0-9a-f]{17}$`, func() string { return Resource("sg") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp.MustCompile(tc.re)
			seen := map[string]bool{}
			for range 1000 {
				v := tc.gen()
				if !re.MatchString(v) {
					t.Fatalf("%q does not match %s", v, tc.re)
				}
				if seen[v] {
					t.Fatalf("%q twice in 1000", v)
				}
				seen[v] = true
			}
		})
	}
}
