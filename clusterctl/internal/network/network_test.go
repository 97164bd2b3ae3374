package network

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/koala-cloud/koala/clusterctl/internal/dhcp"
)

// fakeHost records commands and plays a host with a set of links.
type fakeHost struct {
	mu      sync.Mutex
	links   map[string]bool
	cmds    []string            // argv joined by spaces; sysctls as "sysctl KEY=VALUE"
	scripts []string            // stdin of each nft run
	fail    map[string]error    // command prefix -> error
	sysctls map[string]string   // written values
	addrs   map[string][]string // device -> "a.b.c.d/len" held, for ip addr
}

func newFakeHost(links ...string) *fakeHost {
	h := &fakeHost{links: map[string]bool{}, fail: map[string]error{}, sysctls: map[string]string{},
		addrs: map[string][]string{}}
	for _, l := range links {
		h.links[l] = true
	}
	return h
}

func (h *fakeHost) failing(cmd string) error {
	for prefix, err := range h.fail {
		if strings.HasPrefix(cmd, prefix) {
			return err
		}
	}
	return nil
}

func (h *fakeHost) Run(ctx context.Context, stdin string, argv ...string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := strings.Join(argv, " ")
	h.cmds = append(h.cmds, cmd)
	if err := h.failing(cmd); err != nil {
		return nil, err
	}
	switch {
	case len(argv) == 5 && argv[1] == "link" && argv[2] == "show":
		if !h.links[argv[4]] {
			return nil, errors.New(`Device "` + argv[4] + `" does not exist.`)
		}
	case len(argv) == 6 && argv[1] == "link" && argv[2] == "add":
		h.links[argv[3]] = true
	case argv[0] == "nft":
		h.scripts = append(h.scripts, stdin)
	case len(argv) == 7 && argv[3] == "addr" && argv[4] == "show": // ip -4 -j addr show dev X
		type ai struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		}
		var infos []ai
		for _, a := range h.addrs[argv[6]] {
			p := netip.MustParsePrefix(a)
			infos = append(infos, ai{"inet", p.Addr().String(), p.Bits()})
		}
		return json.Marshal([]struct {
			AddrInfo []ai `json:"addr_info"`
		}{{infos}})
	case len(argv) == 6 && argv[1] == "addr" && argv[2] == "replace" && argv[4] == "dev":
		if !slices.Contains(h.addrs[argv[5]], argv[3]) {
			h.addrs[argv[5]] = append(h.addrs[argv[5]], argv[3])
		}
	case len(argv) == 6 && argv[1] == "addr" && argv[2] == "del" && argv[4] == "dev":
		h.addrs[argv[5]] = slices.DeleteFunc(h.addrs[argv[5]], func(a string) bool { return a == argv[3] })
	case len(argv) == 4 && argv[1] == "-j" && argv[2] == "link" && argv[3] == "show":
		var links []map[string]string
		for l := range h.links {
			links = append(links, map[string]string{"ifname": l})
		}
		return json.Marshal(links)
	case len(argv) >= 8 && argv[1] == "link" && argv[2] == "add" && argv[3] == "link":
		h.links[argv[6]] = true
	case slices.Contains(argv, "-j"):
		return []byte("[]"), nil
	}
	return nil, nil
}

func (h *fakeHost) WriteSysctl(ctx context.Context, key, value string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := "sysctl " + key + "=" + value
	h.cmds = append(h.cmds, cmd)
	if err := h.failing(cmd); err != nil {
		return err
	}
	h.sysctls[key] = value
	return nil
}

// take returns the commands run since the last take.
func (h *fakeHost) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cmds
	h.cmds = nil
	return c
}

// fakeDHCP records what the network asks of the DHCP server.
type fakeDHCP struct {
	cfg      dhcp.Config
	starts   int
	startErr error
	hosts    []dhcp.Host
	sets     int
	closed   bool
}

func (d *fakeDHCP) Start(context.Context) error {
	d.starts++
	return d.startErr
}

func (d *fakeDHCP) SetHosts(_ context.Context, hosts []dhcp.Host) error {
	d.sets++
	d.hosts = slices.Clone(hosts)
	return nil
}

func (d *fakeDHCP) Close() error { d.closed = true; return nil }

func testConfig(mode Mode) Config {
	return Config{
		Mode:    mode,
		Bridge:  "koala0",
		Subnet:  netip.MustParsePrefix("10.0.0.0/24"),
		Gateway: netip.MustParseAddr("10.0.0.1"),
		DHCPDir: "/var/lib/clusterctl/dhcp",
	}
}

func newTest(t *testing.T, cfg Config, h *fakeHost) (*Network, *fakeDHCP) {
	t.Helper()
	d := &fakeDHCP{}
	made := false
	n, err := New(cfg, Deps{Host: h, NewDHCP: func(c dhcp.Config, _ *slog.Logger) (DHCP, error) {
		made, d.cfg = true, c
		return d, nil
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !made {
		d = nil
	}
	return n, d
}

func lease(id, ip string) Lease {
	a := netip.MustParseAddr(ip)
	b := a.As4()
	return Lease{Instance: id, IP: a, MAC: net.HardwareAddr{0xd0, 0x0d, b[0], b[1], b[2], b[3]}}
}

var leases = []Lease{lease("i-2", "10.0.0.3"), lease("i-1", "10.0.0.2")}

func TestSyncByMode(t *testing.T) {
	bridgeUp := []string{
		"ip link show dev koala0",
		"ip link add koala0 type bridge",
		"ip addr replace 10.0.0.1/24 dev koala0",
		"ip link set dev koala0 up",
		"sysctl net/ipv4/ip_forward=1",
	}
	for _, tc := range []struct {
		name     string
		mode     Mode
		metadata string
		want     []string // commands of the first Sync
		dhcp     bool
		nft      bool
	}{
		{name: "system does nothing", mode: System},
		{name: "system with metadata applies only the redirect", mode: System, metadata: "10.0.0.1:8080",
			want: []string{"nft -f -"}, nft: true},
		{name: "system with metadata on loopback", mode: System, metadata: "127.0.0.1:8080",
			want: []string{"sysctl net/ipv4/conf/koala0/route_localnet=1", "nft -f -"}, nft: true},
		{name: "static", mode: Static, want: append(slices.Clone(bridgeUp), "nft -f -"), dhcp: true, nft: true},
		{name: "managed-novlan with metadata", mode: ManagedNoVLAN, metadata: "10.0.0.1:8080",
			want: append(slices.Clone(bridgeUp), "nft -f -"), dhcp: true, nft: true},
		{name: "managed", mode: Managed, want: append(slices.Clone(bridgeUp), "sysctl net/ipv4/conf/koala0/proxy_arp=1",
			"sysctl net/ipv4/conf/koala0/proxy_arp_pvlan=1", "nft -f -"), dhcp: true, nft: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.mode)
			if tc.metadata != "" {
				cfg.Metadata = netip.MustParseAddrPort(tc.metadata)
			}
			h := newFakeHost()
			n, d := newTest(t, cfg, h)
			if err := n.Sync(context.Background(), leases, Groups{}, Addresses{}); err != nil {
				t.Fatal(err)
			}
			if got := h.take(); !slices.Equal(got, tc.want) {
				t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if (d != nil) != tc.dhcp {
				t.Fatalf("dhcp server made = %v, want %v", d != nil, tc.dhcp)
			}
			if d != nil {
				if d.starts != 1 || d.sets != 1 || len(d.hosts) != 2 {
					t.Errorf("dhcp: %d starts, %d sets, hosts %v", d.starts, d.sets, d.hosts)
				}
				if d.cfg.Bridge != "koala0" || d.cfg.Gateway != cfg.Gateway || d.cfg.Subnet != cfg.Subnet || d.cfg.Dir != cfg.DHCPDir {
					t.Errorf("dhcp config %+v", d.cfg)
				}
			}
			if tc.nft {
				script := h.scripts[0]
				redirect := strings.Contains(script, "ip daddr 169.254.169.254 tcp dport 80 dnat to "+tc.metadata)
				if redirect != (tc.metadata != "") {
					t.Errorf("metadata redirect in script = %v, want %v:\n%s", redirect, tc.metadata != "", script)
				}
				if strings.Contains(script, "flush ruleset") || strings.Contains(script, "jump from_") {
					t.Errorf("script flushes the ruleset or filters ports:\n%s", script)
				}
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if d != nil && !d.closed {
				t.Error("Close left dnsmasq running")
			}
			if err := n.Sync(context.Background(), leases, Groups{}, Addresses{}); !errors.Is(err, ErrClosed) {
				t.Errorf("Sync after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestSyncIdempotent(t *testing.T) {
	cfg := testConfig(ManagedNoVLAN)
	cfg.Metadata = netip.MustParseAddrPort("10.0.0.1:8080")
	h := newFakeHost("koala0") // the bridge exists already (nodectl made it)
	n, d := newTest(t, cfg, h)
	ctx := context.Background()
	for i := range 3 {
		if err := n.Sync(ctx, leases, Groups{}, Addresses{}); err != nil {
			t.Fatal(err)
		}
		got := h.take()
		want := []string{"ip link show dev koala0", "ip addr replace 10.0.0.1/24 dev koala0", "ip link set dev koala0 up",
			"sysctl net/ipv4/ip_forward=1"}
		if i == 0 {
			want = append(want, "nft -f -")
		}
		if !slices.Equal(got, want) {
			t.Errorf("sync %d commands:\n%s\nwant:\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if d.starts != 1 {
		t.Errorf("dnsmasq started %d times", d.starts)
	}
	if len(h.scripts) != 1 {
		t.Errorf("ruleset applied %d times, want once", len(h.scripts))
	}
}

func TestSyncRetriesFailures(t *testing.T) {
	cfg := testConfig(Static)
	cfg.Metadata = netip.MustParseAddrPort("10.0.0.1:8080")
	h := newFakeHost()
	h.fail["nft"] = errors.New("nft: no such file")
	h.fail["ip link add"] = errors.New("operation not permitted")
	h.fail["sysctl net/ipv4/ip_forward"] = errors.New("read-only file system")
	n, d := newTest(t, cfg, h)
	d.startErr = errors.New("dnsmasq: not found")
	ctx := context.Background()

	err := n.Sync(ctx, leases, Groups{}, Addresses{})
	for _, want := range []string{"create bridge koala0", "dhcp: dnsmasq: not found", "apply nft ruleset"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sync error %v does not say %q", err, want)
		}
	}
	if d.sets != 1 {
		t.Errorf("hosts not given to dhcp despite the bridge failure: %d", d.sets)
	}
	h.take()

	clear(h.fail)
	d.startErr = nil
	if err := n.Sync(ctx, leases, Groups{}, Addresses{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got := h.take()
	for _, want := range []string{"ip link add koala0 type bridge", "nft -f -", "sysctl net/ipv4/ip_forward=1"} {
		if !slices.Contains(got, want) {
			t.Errorf("retry did not run %q: %v", want, got)
		}
	}
	if d.starts != 2 {
		t.Errorf("dnsmasq start attempts = %d, want 2", d.starts)
	}
}

func TestHosts(t *testing.T) {
	got := Hosts([]Lease{lease("i-b", "10.0.0.12"), lease("i-a", "10.0.0.2"), {Instance: "i-c",
		MAC: net.HardwareAddr{0xd0, 0x0d, 10, 0, 0, 9}, IP: netip.MustParseAddr("::ffff:10.0.0.9")}})
	want := []string{"d0:0d:0a:00:00:02,10.0.0.2,ip-10-0-0-2", "d0:0d:0a:00:00:09,10.0.0.9,ip-10-0-0-9",
		"d0:0d:0a:00:00:0c,10.0.0.12,ip-10-0-0-12"}
	var lines []string
	for _, h := range got {
		lines = append(lines, h.String())
	}
	if !slices.Equal(lines, want) {
		t.Errorf("hosts %v, want %v", lines, want)
	}
	if got := Hosts(nil); got == nil || len(got) != 0 {
		t.Errorf("Hosts(nil) = %#v, want an empty set (serve nobody)", got)
	}
}

func TestHostsChangeReachDHCP(t *testing.T) {
	n, d := newTest(t, testConfig(Static), newFakeHost())
	ctx := context.Background()
	if err := n.Sync(ctx, leases, Groups{}, Addresses{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Sync(ctx, leases[:1], Groups{}, Addresses{}); err != nil {
		t.Fatal(err)
	}
	if len(d.hosts) != 1 || d.hosts[0].IP != netip.MustParseAddr("10.0.0.3") || d.hosts[0].Name != "ip-10-0-0-3" {
		t.Errorf("hosts after a release: %v", d.hosts)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"bad mode", func(c *Config) { c.Mode = "VLAN" }, "mode"},
		{"bad bridge", func(c *Config) { c.Bridge = "a-very-long-bridge-name" }, "bridge"},
		{"ipv6 metadata", func(c *Config) { c.Metadata = netip.MustParseAddrPort("[::1]:80") }, "metadata"},
		{"relative dhcp dir", func(c *Config) { c.DHCPDir = "var/dhcp" }, "dir"},
		{"gateway outside subnet", func(c *Config) { c.Gateway = netip.MustParseAddr("10.1.0.1") }, "gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(Static)
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error about %s", err, tc.want)
			}
		})
	}
	sys := Config{Mode: System, Bridge: "br0"} // no subnet or dhcp dir needed
	if err := sys.Validate(); err != nil {
		t.Errorf("SYSTEM: %v", err)
	}
}
