package netfilter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
func cidrs(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// allEgress is the EC2 default egress rule.
var allEgress = []Rule{{Protocol: All, CIDRs: cidrs("0.0.0.0/0")}}

func portA(groups ...string) Port {
	return Port{Instance: "i-a", Iface: "vnet0", MAC: mustMAC("02:77:00:00:00:0a"), IP: ip("10.77.0.10"), Groups: groups}
}

func portB(groups ...string) Port {
	return Port{Instance: "i-b", Iface: "vnet1", MAC: mustMAC("02:77:00:00:00:0b"), IP: ip("10.77.0.11"), Groups: groups}
}

// goldenCases are the rulesets rendered against testdata/<name>.nft.
func goldenCases() []struct {
	name string
	rs   Ruleset
} {
	return []struct {
		name string
		rs   Ruleset
	}{
		{"empty", Ruleset{Bridge: "br0"}},
		{"cidr_rule", Ruleset{
			Bridge: "br0",
			Ports:  []Port{portA("sg-web")},
			Groups: []Group{{ID: "sg-web", Egress: allEgress, Ingress: []Rule{
				{Protocol: TCP, FromPort: 8080, ToPort: 8080, CIDRs: cidrs("10.78.0.0/24")},
			}}},
		}},
		{"source_group", Ruleset{
			Bridge: "br0",
			Ports: []Port{
				portA("sg-web"),
				portB("sg-app"),
				// A member on another node: in the sets, not on this bridge.
				{Instance: "i-r", IP: ip("10.77.1.5"), Groups: []string{"sg-app"}},
			},
			Groups: []Group{
				{ID: "sg-web", Egress: allEgress, Ingress: []Rule{
					{Protocol: TCP, FromPort: 5432, ToPort: 5432, SourceGroups: []string{"sg-app"}},
					{Protocol: UDP, FromPort: 1000, ToPort: 2000, SourceGroups: []string{"sg-app", "sg-empty"}},
				}},
				{ID: "sg-app", Egress: allEgress},
			},
		}},
		{"icmp", Ruleset{
			Bridge: "br0",
			Ports:  []Port{portA("sg-ping")},
			Groups: []Group{{ID: "sg-ping", Egress: allEgress, Ingress: []Rule{
				{Protocol: ICMP, FromPort: Any, ToPort: Any, CIDRs: cidrs("10.0.0.0/8")},
				{Protocol: ICMP, FromPort: 8, ToPort: Any, CIDRs: cidrs("0.0.0.0/0")},
				{Protocol: ICMP, FromPort: 3, ToPort: 4, CIDRs: cidrs("192.0.2.7/32")},
			}}},
		}},
		{"all_protocol", Ruleset{
			Bridge: "br0",
			Ports:  []Port{portA("sg-open"), portB("sg-lan")},
			Groups: []Group{
				{ID: "sg-open", Egress: allEgress, Ingress: []Rule{{Protocol: All, CIDRs: cidrs("0.0.0.0/0")}}},
				{ID: "sg-lan", Egress: allEgress, Ingress: []Rule{
					{Protocol: All, CIDRs: cidrs("10.77.0.0/16", "192.168.1.9/24")},
					{Protocol: TCP, FromPort: 0, ToPort: 65535, CIDRs: cidrs("172.16.0.0/12")},
					{Protocol: UDP, FromPort: Any, ToPort: Any, CIDRs: cidrs("172.16.0.0/12")},
				}},
			},
		}},
		{"egress_restricted", Ruleset{
			Bridge: "br0",
			Ports:  []Port{portA("sg-locked")},
			Groups: []Group{{ID: "sg-locked", Egress: []Rule{
				{Protocol: TCP, FromPort: 443, ToPort: 443, CIDRs: cidrs("0.0.0.0/0")},
				{Protocol: UDP, FromPort: 53, ToPort: 53, CIDRs: cidrs("10.77.0.1/32")},
			}}},
		}},
		{"elastic_ip", Ruleset{
			Bridge:  "br0",
			Ports:   []Port{portA("sg-web"), portB("sg-web")},
			Groups:  []Group{{ID: "sg-web", Egress: allEgress}},
			Elastic: []NAT{{Public: ip("203.0.113.11"), Private: ip("10.77.0.11")}, {Public: ip("203.0.113.10"), Private: ip("10.77.0.10")}},
		}},
		{"metadata", Ruleset{
			Bridge:   "br0",
			Ports:    []Port{portA("sg-web")},
			Groups:   []Group{{ID: "sg-web", Egress: allEgress}},
			Metadata: &MetadataRedirect{To: netip.MustParseAddrPort("10.77.0.1:8773")},
		}},
		{"anti_spoofing", Ruleset{
			Bridge: "br0",
			Ports: []Port{
				portB(),
				portA("sg-unknown"),
				{Instance: "i-c", Iface: "vnet2", MAC: mustMAC("02:77:00:00:00:0c"), IP: ip("10.77.0.12")},
			},
		}},
		{"segments", Ruleset{
			Bridge:    "br0",
			Segmented: true,
			Ports: func() []Port {
				a, b := portA("sg-web"), portB("sg-db", "sg-web")
				a.Segment, b.Segment = "sg-web", "sg-db"
				c := Port{Instance: "i-c", Iface: "vnet2", MAC: mustMAC("02:77:00:00:00:0c"), IP: ip("10.77.0.12"),
					Groups: []string{"sg-web"}, Segment: "sg-web"}
				return []Port{a, b, c}
			}(),
			Groups: []Group{{ID: "sg-web", Egress: allEgress}, {ID: "sg-db", Egress: allEgress}},
		}},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.rs)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Render differs from %s (go test -update rewrites it):\n%s", path, diff(string(want), got))
			}
		})
	}
}

// TestRenderGoldenNftCheck has the kernel parse every golden script
// (nft --check, which changes nothing). It needs root and nft.
func TestRenderGoldenNftCheck(t *testing.T) {
	requireNft(t)
	r := Runner{}
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			script, err := Render(tc.rs)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Check(context.Background(), script); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := r.Check(context.Background(), RemoveScript("br0")); err != nil {
		t.Fatal(err)
	}
}

// requireNft skips the test unless it runs as root with nft installed;
// under CI=true it fails instead, so CI cannot pass by skipping.
func requireNft(t *testing.T) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := exec.LookPath("nft"); err != nil {
		why = "needs nft"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs ip (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, and CI=true does not allow skipping", why)
	}
	t.Skip(why)
}

func TestRenderDeterministic(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			want, err := Render(tc.rs)
			if err != nil {
				t.Fatal(err)
			}
			rs := tc.rs
			rs.Ports = slices.Clone(rs.Ports)
			slices.Reverse(rs.Ports)
			for i := range rs.Ports {
				rs.Ports[i].Groups = slices.Clone(rs.Ports[i].Groups)
				slices.Reverse(rs.Ports[i].Groups)
			}
			rs.Groups = slices.Clone(rs.Groups)
			slices.Reverse(rs.Groups)
			for i, g := range rs.Groups {
				g.Ingress = slices.Clone(g.Ingress)
				slices.Reverse(g.Ingress)
				rs.Groups[i] = g
			}
			rs.Elastic = slices.Clone(rs.Elastic)
			slices.Reverse(rs.Elastic)
			got, err := Render(rs)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("reordered input renders differently:\n%s", diff(want, got))
			}
		})
	}
}

func TestRenderOnlyOwnTables(t *testing.T) {
	for _, tc := range goldenCases() {
		script, err := Render(tc.rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(script, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] == "#" || strings.HasPrefix(line, "\t") || f[0] == "}" {
				continue
			}
			if f[0] == "flush" && (len(f) < 2 || f[1] == "ruleset") {
				t.Errorf("%s: flushes the ruleset: %q", tc.name, line)
			}
			// Every top-level command names one of our tables.
			ok := false
			for _, own := range TablesFor(tc.rs.Bridge).list() {
				if strings.Contains(line, " "+own+" ") || strings.HasSuffix(line, " "+own) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: top-level command outside our tables: %q", tc.name, line)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Ruleset{Bridge: "br0", Ports: []Port{portA("sg-web")}, Groups: []Group{{ID: "sg-web", Egress: allEgress}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid ruleset: %v", err)
	}
	with := func(f func(rs *Ruleset)) Ruleset {
		rs := ok
		rs.Ports = slices.Clone(ok.Ports)
		rs.Groups = slices.Clone(ok.Groups)
		f(&rs)
		return rs
	}
	rule := func(r Rule) Ruleset {
		return with(func(rs *Ruleset) { rs.Groups[0].Ingress = []Rule{r} })
	}
	for _, tc := range []struct {
		name string
		rs   Ruleset
		want string
	}{
		{"no bridge", with(func(rs *Ruleset) { rs.Bridge = "" }), "bridge"},
		{"bridge with space", with(func(rs *Ruleset) { rs.Bridge = "br 0" }), "bridge"},
		{"bridge name too long", with(func(rs *Ruleset) { rs.Bridge = "abcdefghijklmnop" }), "bridge"},
		{"instance with quote", with(func(rs *Ruleset) { rs.Ports[0].Instance = `i-"a` }), "instance"},
		{"duplicate instance", with(func(rs *Ruleset) { rs.Ports = append(rs.Ports, portB()); rs.Ports[1].Instance = "i-a" }), "duplicate instance"},
		{"duplicate ip", with(func(rs *Ruleset) { rs.Ports = append(rs.Ports, portB()); rs.Ports[1].IP = ip("10.77.0.10") }), "already used"},
		{"duplicate iface", with(func(rs *Ruleset) { rs.Ports = append(rs.Ports, portB()); rs.Ports[1].Iface = "vnet0" }), "already used"},
		{"duplicate mac", with(func(rs *Ruleset) {
			rs.Ports = append(rs.Ports, portB())
			rs.Ports[1].MAC = mustMAC("02:77:00:00:00:0a")
		}), "already used"},
		{"ipv6 port", with(func(rs *Ruleset) { rs.Ports[0].IP = ip("fd00::1") }), "IPv4"},
		{"no ip", with(func(rs *Ruleset) { rs.Ports[0].IP = netip.Addr{} }), "IPv4"},
		{"no mac", with(func(rs *Ruleset) { rs.Ports[0].MAC = nil }), "mac"},
		{"multicast mac", with(func(rs *Ruleset) { rs.Ports[0].MAC = mustMAC("01:00:5e:00:00:01") }), "mac"},
		{"iface is bridge", with(func(rs *Ruleset) { rs.Ports[0].Iface = "br0" }), "iface"},
		{"bad port group", with(func(rs *Ruleset) { rs.Ports[0].Groups = []string{"sg web"} }), "group"},
		{"duplicate group", with(func(rs *Ruleset) { rs.Groups = append(rs.Groups, rs.Groups[0]) }), "duplicate"},
		{"bad group id", with(func(rs *Ruleset) { rs.Groups[0].ID = "-x" }), "group"},
		{"protocol number", rule(Rule{Protocol: "6", FromPort: 1, ToPort: 2, CIDRs: cidrs("0.0.0.0/0")}), "protocol"},
		{"reversed ports", rule(Rule{Protocol: TCP, FromPort: 90, ToPort: 80, CIDRs: cidrs("0.0.0.0/0")}), "reversed"},
		{"port too big", rule(Rule{Protocol: UDP, FromPort: 1, ToPort: 70000, CIDRs: cidrs("0.0.0.0/0")}), "range"},
		{"negative port", rule(Rule{Protocol: TCP, FromPort: -2, ToPort: 80, CIDRs: cidrs("0.0.0.0/0")}), "range"},
		{"icmp type too big", rule(Rule{Protocol: ICMP, FromPort: 256, ToPort: Any, CIDRs: cidrs("0.0.0.0/0")}), "range"},
		{"icmp code without type", rule(Rule{Protocol: ICMP, FromPort: Any, ToPort: 3, CIDRs: cidrs("0.0.0.0/0")}), "without a type"},
		{"ipv6 cidr", rule(Rule{Protocol: All, CIDRs: cidrs("::/0")}), "IPv4 prefix"},
		{"bad source group", rule(Rule{Protocol: All, SourceGroups: []string{"sg;drop"}}), "source group"},
		{"elastic ip twice", with(func(rs *Ruleset) {
			rs.Elastic = []NAT{{ip("203.0.113.1"), ip("10.77.0.10")}, {ip("203.0.113.1"), ip("10.77.0.11")}}
		}), "associated twice"},
		{"two elastic ips for one address", with(func(rs *Ruleset) {
			rs.Elastic = []NAT{{ip("203.0.113.1"), ip("10.77.0.10")}, {ip("203.0.113.2"), ip("10.77.0.10")}}
		}), "another elastic ip"},
		{"elastic ipv6", with(func(rs *Ruleset) { rs.Elastic = []NAT{{ip("2001:db8::1"), ip("10.77.0.10")}} }), "IPv4"},
		{"metadata without port", with(func(rs *Ruleset) {
			rs.Metadata = &MetadataRedirect{To: netip.AddrPortFrom(ip("10.77.0.1"), 0)}
		}), "metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rs.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if _, err := Render(tc.rs); !errors.Is(err, ErrInvalid) {
				t.Errorf("Render = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestProtoMatch(t *testing.T) {
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{Protocol: TCP, FromPort: 22, ToPort: 22}, "tcp dport 22"},
		{Rule{Protocol: TCP, FromPort: 8000, ToPort: 8080}, "tcp dport 8000-8080"},
		{Rule{Protocol: UDP, FromPort: Any, ToPort: Any}, "meta l4proto udp"},
		{Rule{Protocol: UDP, FromPort: 0, ToPort: 65535}, "meta l4proto udp"},
		{Rule{Protocol: ICMP, FromPort: Any, ToPort: Any}, "meta l4proto icmp"},
		{Rule{Protocol: ICMP, FromPort: 0, ToPort: Any}, "icmp type 0"},
		{Rule{Protocol: ICMP, FromPort: 3, ToPort: 4}, "icmp type 3 icmp code 4"},
		{Rule{Protocol: All, FromPort: 1, ToPort: 2}, ""},
	} {
		if got := protoMatch(tc.r); got != tc.want {
			t.Errorf("protoMatch(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// diff shows the first differing line of two texts with some context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}
