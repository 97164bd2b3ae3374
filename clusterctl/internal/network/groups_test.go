package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/netfilter"
)

func sshFromAnywhere(id string) api.Group {
	return api.Group{ID: id, Owner: "000000000001",
		Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"0.0.0.0/0"}}},
		Egress:  []api.GroupRule{{Protocol: "all", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}}}
}

func mustGroups(t *testing.T, gs ...api.Group) Groups {
	t.Helper()
	set, err := ParseGroups(gs)
	if err != nil {
		t.Fatal(err)
	}
	return Groups{Received: true, Set: set}
}

func TestSyncEnforcesGroups(t *testing.T) {
	grouped := []Lease{lease("i-1", "10.0.0.5"), lease("i-2", "10.0.0.6")}
	grouped[0].Groups = []string{"sg-web"}
	grouped[1].Groups = []string{"sg-web", "sg-gone"}
	for _, tc := range []struct {
		name    string
		mode    Mode
		groups  bool // a set was received
		enforce bool
	}{
		{"system", System, true, false},
		{"static", Static, true, false},
		{"managed-novlan before groups", ManagedNoVLAN, false, false},
		{"managed-novlan", ManagedNoVLAN, true, true},
		{"managed before groups", Managed, false, false},
		{"managed", Managed, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.mode)
			cfg.Metadata = netip.MustParseAddrPort("10.0.0.1:8080")
			h := newFakeHost("koala0")
			n, _ := newTest(t, cfg, h)
			gs := Groups{}
			if tc.groups {
				gs = mustGroups(t, sshFromAnywhere("sg-web"))
			}
			if err := n.Sync(context.Background(), grouped, gs, Addresses{}); err != nil {
				t.Fatal(err)
			}
			if len(h.scripts) != 1 {
				t.Fatalf("ruleset applied %d times", len(h.scripts))
			}
			script := h.scripts[0]
			if !strings.Contains(script, "dnat to 10.0.0.1:8080") {
				t.Errorf("no metadata redirect:\n%s", script)
			}
			for _, want := range []string{
				"ip daddr vmap { 10.0.0.5 : jump to_i-1, 10.0.0.6 : jump to_i-2 }",
				"chain to_i-2 {", "jump ingress_sg-web", "jump ingress_sg-gone",
				"tcp dport 22 accept", `"sg-gone: unknown group, no rules"`,
			} {
				if strings.Contains(script, want) != tc.enforce {
					t.Errorf("script has %q = %v, want %v:\n%s", want, !tc.enforce, tc.enforce, script)
				}
			}
			rs := n.Ruleset(grouped, gs, Addresses{})
			if (len(rs.Ports) == 2 && len(rs.Groups) == 1) != tc.enforce || (!tc.enforce && (rs.Ports != nil || rs.Groups != nil)) {
				t.Errorf("ruleset ports %v groups %v, enforce %v", rs.Ports, rs.Groups, tc.enforce)
			}
		})
	}
}

func TestGroupChangeReapplies(t *testing.T) {
	h := newFakeHost("koala0")
	n, _ := newTest(t, testConfig(ManagedNoVLAN), h)
	ls := []Lease{lease("i-1", "10.0.0.5")}
	ls[0].Groups = []string{"sg-web"}
	ctx := context.Background()
	web, web80 := sshFromAnywhere("sg-web"), sshFromAnywhere("sg-web")
	web80.Ingress[0].FromPort, web80.Ingress[0].ToPort = 80, 80
	for _, s := range []struct {
		name   string
		groups Groups
		apply  bool
	}{
		{"before groups", Groups{}, true},
		{"unchanged", Groups{}, false},
		{"first set", mustGroups(t, web), true},
		{"same set", mustGroups(t, web), false},
		{"empty set", Groups{Received: true}, true},
		{"rule changed", mustGroups(t, web80), true},
	} {
		before := len(h.scripts)
		if err := n.Sync(ctx, ls, s.groups, Addresses{}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if applied := len(h.scripts) > before; applied != s.apply {
			t.Errorf("%s: ruleset applied = %v, want %v", s.name, applied, s.apply)
		}
	}
	if last := h.scripts[len(h.scripts)-1]; !strings.Contains(last, "tcp dport 80 accept") || strings.Contains(last, "dport 22") {
		t.Errorf("last script does not hold the changed rule:\n%s", last)
	}
}

func TestParseGroups(t *testing.T) {
	got, err := ParseGroups([]api.Group{{ID: "sg-1", Ingress: []api.GroupRule{
		{Protocol: "udp", FromPort: 53, ToPort: 53, CIDRs: []string{"192.0.2.7/24"}, SourceGroups: []string{"sg-2"}},
		{Protocol: "icmp", FromPort: 8, ToPort: -1},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	want := netfilter.Rule{Protocol: "udp", FromPort: 53, ToPort: 53, CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		SourceGroups: []string{"sg-2"}}
	if len(got) != 1 || len(got[0].Ingress) != 2 || got[0].Ingress[0].CIDRs[0] != want.CIDRs[0] ||
		got[0].Ingress[0].SourceGroups[0] != "sg-2" || got[0].Ingress[1].FromPort != 8 {
		t.Errorf("ParseGroups = %+v", got)
	}
	for _, tc := range []struct {
		name string
		g    []api.Group
		want string
	}{
		{"ipv6 cidr", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 1, ToPort: 2, CIDRs: []string{"::/0"}}}}}, "cidr"},
		{"bad cidr", []api.Group{{ID: "sg-1", Egress: []api.GroupRule{{Protocol: "all", CIDRs: []string{"10.0.0.0"}}}}}, "cidr"},
		{"unknown protocol", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "sctp"}}}}, "protocol"},
		{"port out of range", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 0, ToPort: 65536}}}}, "range"},
		{"reversed ports", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "udp", FromPort: 9, ToPort: 8}}}}, "reversed"},
		{"icmp type out of range", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "icmp", FromPort: 256, ToPort: -1}}}}, "range"},
		{"no id", []api.Group{{ID: ""}}, "not an ID"},
		{"bad source group", []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "all", SourceGroups: []string{"sg 2"}}}}}, "source group"},
		{"duplicate", []api.Group{{ID: "sg-1"}, {ID: "sg-1"}}, "duplicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGroups(tc.g)
			if !errors.Is(err, ErrInvalidGroup) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseGroups = %v, want ErrInvalidGroup about %q", err, tc.want)
			}
		})
	}
}

func TestPortsOnDevices(t *testing.T) {
	withIface := func(id, ip, iface string) Lease {
		l := lease(id, ip)
		l.Groups, l.Iface = []string{"sg-web"}, iface
		return l
	}
	for _, tc := range []struct {
		name   string
		leases []Lease
		want   map[string]string // instance -> Iface of its port
	}{
		{"reported", []Lease{withIface("i-1", "10.0.0.5", "vnet3"), withIface("i-2", "10.0.0.6", "vnet4")},
			map[string]string{"i-1": "vnet3", "i-2": "vnet4"}},
		{"not yet reported", []Lease{withIface("i-1", "10.0.0.5", "vnet3"), withIface("i-2", "10.0.0.6", "")},
			map[string]string{"i-1": "vnet3", "i-2": ""}},
		{"claimed twice", []Lease{withIface("i-1", "10.0.0.5", "vnet3"), withIface("i-2", "10.0.0.6", "vnet3"),
			withIface("i-3", "10.0.0.7", "vnet7")}, map[string]string{"i-1": "", "i-2": "", "i-3": "vnet7"}},
		{"not a device name", []Lease{withIface("i-1", "10.0.0.5", "vnet 3"), withIface("i-2", "10.0.0.6", "koala0"),
			withIface("i-3", "10.0.0.7", "a-very-long-device-name")}, map[string]string{"i-1": "", "i-2": "", "i-3": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost("koala0")
			n, _ := newTest(t, testConfig(ManagedNoVLAN), h)
			gs := mustGroups(t, sshFromAnywhere("sg-web"))
			rs := n.Ruleset(tc.leases, gs, Addresses{})
			got := map[string]string{}
			for _, p := range rs.Ports {
				got[p.Instance] = p.Iface
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("port devices %v, want %v", got, tc.want)
			}
			if err := n.Sync(context.Background(), tc.leases, gs, Addresses{}); err != nil {
				t.Fatal(err)
			}
			script := h.scripts[len(h.scripts)-1]
			for _, l := range tc.leases {
				spoof := fmt.Sprintf("%q . %s comment %q", l.Iface, l.IP, l.Instance)
				if strings.Contains(script, spoof) != (tc.want[l.Instance] != "") {
					t.Errorf("script has %s = %v, want %v:\n%s", spoof, !(tc.want[l.Instance] != ""), tc.want[l.Instance] != "", script)
				}
			}
		})
	}
	t.Run("a new device reapplies", func(t *testing.T) {
		h := newFakeHost("koala0")
		n, _ := newTest(t, testConfig(ManagedNoVLAN), h)
		gs := mustGroups(t, sshFromAnywhere("sg-web"))
		ctx := context.Background()
		for i, iface := range []string{"", "vnet3", "vnet3", "vnet8"} {
			before := len(h.scripts)
			if err := n.Sync(ctx, []Lease{withIface("i-1", "10.0.0.5", iface)}, gs, Addresses{}); err != nil {
				t.Fatal(err)
			}
			if applied, want := len(h.scripts) > before, i != 2; applied != want {
				t.Errorf("device %q: applied %v, want %v", iface, applied, want)
			}
		}
		if last := h.scripts[len(h.scripts)-1]; !strings.Contains(last, `"vnet8" . 10.0.0.5`) || strings.Contains(last, `"vnet3"`) {
			t.Errorf("last script does not filter the new device:\n%s", last)
		}
	})
}
