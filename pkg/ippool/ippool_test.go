package ippool

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		want  string // addresses joined by spaces
	}{
		{nil, ""},
		{[]string{"192.0.2.10"}, "192.0.2.10"},
		{[]string{"192.0.2.12-192.0.2.14", " 192.0.2.10 "}, "192.0.2.10 192.0.2.12 192.0.2.13 192.0.2.14"},
		{[]string{"192.0.2.16/30"}, "192.0.2.17 192.0.2.18"},
		{[]string{"192.0.2.17/31"}, "192.0.2.16 192.0.2.17"},
		{[]string{"192.0.2.9/32", "192.0.2.8-192.0.2.9"}, "192.0.2.8 192.0.2.9"},
		{[]string{"192.0.2.255-192.0.3.1"}, "192.0.2.255 192.0.3.0 192.0.3.1"},
	} {
		got, err := Parse(tc.specs)
		if err != nil {
			t.Errorf("%q: %v", tc.specs, err)
			continue
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%q = %q, want %q", tc.specs, s, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, spec := range []string{
		"", "192.0.2.300", "2001:db8::1", "192.0.2.10-192.0.2.9", "192.0.2.0/33", "127.0.0.1", "0.0.0.0",
		"224.0.0.1", "169.254.169.254", "255.255.255.255", "192.0.2.1-", "10.0.0.0/8",
	} {
		if _, err := Parse([]string{spec}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err %v, want ErrInvalid", spec, err)
		}
	}
	if got, err := Parse([]string{"10.0.0.0/16"}); err != nil || len(got) != 65534 || got[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("a /16: %d addresses, %v", len(got), err)
	}
}
