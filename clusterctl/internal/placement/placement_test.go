package placement

import (
	"strings"
	"testing"
)

func TestPool(t *testing.T) {
	tests := []struct {
		name        string
		cidr        string
		size        int
		first, last string
		wantErr     bool
	}{
		{name: "slash 24", cidr: "10.0.0.0/24", size: 253, first: "10.0.0.2", last: "10.0.0.254"},
		{name: "unmasked", cidr: "192.168.7.9/29", size: 5, first: "192.168.7.10", last: "192.168.7.14"},
		{name: "slash 30", cidr: "10.1.0.0/30", size: 1, first: "10.1.0.2", last: "10.1.0.2"},
		{name: "too small", cidr: "10.0.0.0/31", wantErr: true},
		{name: "ipv6", cidr: "fd00::/64", wantErr: true},
		{name: "garbage", cidr: "ten", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(tc.cidr)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Size() != tc.size {
				t.Errorf("size %d, want %d", p.Size(), tc.size)
			}
			used := map[string]bool{}
			var got []string
			for {
				ip, ok := p.Next(func(ip string) bool { return used[ip] })
				if !ok {
					break
				}
				used[ip] = true
				got = append(got, ip)
			}
			if len(got) != tc.size || got[0] != tc.first || got[len(got)-1] != tc.last {
				t.Errorf("leased %d from %s to %s", len(got), got[0], got[len(got)-1])
			}
			if !p.Contains(tc.first) || p.Contains("1.2.3.4") {
				t.Error("Contains")
			}
		})
	}
}

func TestMAC(t *testing.T) {
	for ip, want := range map[string]string{"10.0.0.5": "d0:0d:0a:00:00:05", "192.168.255.254": "d0:0d:c0:a8:ff:fe", "nope": ""} {
		if got := MAC(ip); got != want {
			t.Errorf("MAC(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestStaticPool(t *testing.T) {
	p, err := NewStaticPool("10.0.0.0/24", []string{" 52:54:00:AA:00:09 = 10.0.0.9", "52:54:00:aa:00:03=10.0.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 2 || !p.Contains("10.0.0.9") || p.Contains("10.0.0.4") || p.MAC("10.0.0.9") != "52:54:00:aa:00:09" {
		t.Errorf("pool: size %d, mac of .9 %q", p.Size(), p.MAC("10.0.0.9"))
	}
	used := map[string]bool{}
	var order []string
	for {
		ip, ok := p.Next(func(ip string) bool { return used[ip] })
		if !ok {
			break
		}
		used[ip] = true
		order = append(order, ip)
	}
	if strings.Join(order, " ") != "10.0.0.3 10.0.0.9" {
		t.Errorf("leased in order %q", order)
	}
	for _, bad := range [][]string{
		nil,
		{"52:54:00:00:00:01"},
		{"52:54:00:00:00:01=10.0.1.5"},   // outside the subnet
		{"52:54:00:00:00:01=10.0.0.1"},   // the gateway
		{"52:54:00:00:00:01=10.0.0.255"}, // broadcast
		{"53:54:00:00:00:01=10.0.0.5"},   // multicast MAC
		{"52:54:00:00:00:01=10.0.0.5", "52:54:00:00:00:01=10.0.0.6"}, // MAC twice
		{"52:54:00:00:00:01=10.0.0.5", "52:54:00:00:00:02=10.0.0.5"}, // address twice
	} {
		if _, err := NewStaticPool("10.0.0.0/24", bad); err == nil {
			t.Errorf("map %q was taken", bad)
		}
	}
}
