package dhcp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Bridge:  "kzdbr0",
		Subnet:  netip.MustParsePrefix("10.66.0.0/24"),
		Gateway: netip.MustParseAddr("10.66.0.1"),
		DNS:     []netip.Addr{netip.MustParseAddr("10.66.0.1")},
		Dir:     "/var/lib/koala/dhcp",
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no gateway, no dns, domain, lease, user", func(c *Config) {
			c.Gateway, c.DNS, c.Domain, c.LeaseTime, c.User = netip.Addr{}, nil, "cloud.internal", 2*time.Minute, "dnsmasq"
		}, ""},
		{"empty bridge", func(c *Config) { c.Bridge = "" }, "bridge: empty"},
		{"long bridge", func(c *Config) { c.Bridge = "abcdefghijklmnop" }, "longer than 15"},
		{"bridge with slash", func(c *Config) { c.Bridge = "br/0" }, "invalid character"},
		{"bridge with comma", func(c *Config) { c.Bridge = "br,0" }, "invalid character"},
		{"no subnet", func(c *Config) { c.Subnet = netip.Prefix{} }, "want an IPv4 prefix"},
		{"ipv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "want an IPv4 prefix"},
		{"host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.66.0.1/24") }, "host bits set"},
		{"subnet /31", func(c *Config) {
			c.Subnet, c.Gateway, c.DNS = netip.MustParsePrefix("10.66.0.0/31"), netip.Addr{}, nil
		}, "too small"},
		{"gateway outside", func(c *Config) { c.Gateway = netip.MustParseAddr("10.67.0.1") }, "outside subnet"},
		{"gateway is network", func(c *Config) { c.Gateway = netip.MustParseAddr("10.66.0.0") }, "network address"},
		{"gateway is broadcast", func(c *Config) { c.Gateway = netip.MustParseAddr("10.66.0.255") }, "broadcast address"},
		{"gateway ipv6", func(c *Config) { c.Gateway = netip.MustParseAddr("fd00::1") }, "want an IPv4 address"},
		{"dns ipv6", func(c *Config) { c.DNS = []netip.Addr{netip.MustParseAddr("fd00::53")} }, "dns"},
		{"dns zero", func(c *Config) { c.DNS = []netip.Addr{{}} }, "dns"},
		{"bad domain", func(c *Config) { c.Domain = "cloud,internal" }, "domain"},
		{"domain empty label", func(c *Config) { c.Domain = "cloud..internal" }, "domain"},
		{"lease too short", func(c *Config) { c.LeaseTime = time.Minute }, "minimum"},
		{"no dir", func(c *Config) { c.Dir = "" }, "absolute path"},
		{"relative dir", func(c *Config) { c.Dir = "var/dhcp" }, "absolute path"},
		{"bad user", func(c *Config) { c.User = "no body" }, "user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestConfigArgs(t *testing.T) {
	common := func(rng string) []string {
		return []string{
			"--keep-in-foreground",
			"--conf-file=/dev/null",
			"--port=0",
			"--no-resolv",
			"--no-hosts",
			"--interface=kzdbr0",
			"--bind-dynamic",
			"--except-interface=lo",
			"--dhcp-range=" + rng,
			"--dhcp-hostsfile=/var/lib/koala/dhcp/hosts",
			"--dhcp-leasefile=/var/lib/koala/dhcp/leases",
			"--dhcp-authoritative",
			"--dhcp-ignore=tag:!known",
		}
	}
	tail := []string{"--pid-file=/var/lib/koala/dhcp/dnsmasq.pid", "--log-facility=-"}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, slices.Concat(common("10.66.0.0,static,255.255.255.0,3600"), []string{
			"--dhcp-option=option:router,10.66.0.1",
			"--dhcp-option=option:dns-server,10.66.0.1",
		}, tail)},
		{"no gateway and no dns: send neither", func(c *Config) {
			c.Gateway, c.DNS = netip.Addr{}, nil
		}, slices.Concat(common("10.66.0.0,static,255.255.255.0,3600"), []string{
			"--dhcp-option=option:router",
			"--dhcp-option=option:dns-server",
		}, tail)},
		{"everything", func(c *Config) {
			c.Subnet = netip.MustParsePrefix("172.16.0.0/12")
			c.Gateway = netip.MustParseAddr("172.16.0.1")
			c.DNS = []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")}
			c.Domain = "cloud.internal"
			c.LeaseTime = 90 * time.Minute
			c.LogDHCP = true
			c.User = "dnsmasq"
		}, slices.Concat(common("172.16.0.0,static,255.240.0.0,5400"), []string{
			"--dhcp-option=option:router,172.16.0.1",
			"--dhcp-option=option:dns-server,192.0.2.53,192.0.2.54",
			"--dhcp-option=option:domain-name,cloud.internal",
		}, tail, []string{"--log-dhcp", "--user=dnsmasq"})},
		{"/30 and sub-second lease rounded down", func(c *Config) {
			c.Subnet = netip.MustParsePrefix("10.66.0.4/30")
			c.Gateway = netip.MustParseAddr("10.66.0.5")
			c.DNS = nil
			c.LeaseTime = 2*time.Minute + 500*time.Millisecond
		}, slices.Concat(common("10.66.0.4,static,255.255.255.252,120"), []string{
			"--dhcp-option=option:router,10.66.0.5",
			"--dhcp-option=option:dns-server",
		}, tail)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.args(); !slices.Equal(got, tt.want) {
				t.Errorf("args() =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestConfigCommand(t *testing.T) {
	tests := []struct {
		name       string
		exec       []string
		binary     string
		wantPrefix []string
	}{
		{"default binary", nil, "", []string{"dnsmasq", "--keep-in-foreground"}},
		{"binary path", nil, "/usr/sbin/dnsmasq", []string{"/usr/sbin/dnsmasq", "--keep-in-foreground"}},
		{"exec prefix", []string{"ip", "netns", "exec", "ns1"}, "",
			[]string{"ip", "netns", "exec", "ns1", "dnsmasq", "--keep-in-foreground"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.Exec, c.Binary = tt.exec, tt.binary
			got := c.command()
			if !slices.Equal(got[:len(tt.wantPrefix)], tt.wantPrefix) {
				t.Errorf("command() starts %q, want %q", got[:len(tt.wantPrefix)], tt.wantPrefix)
			}
			if len(got) != len(tt.wantPrefix)-1+len(c.args()) {
				t.Errorf("command() has %d words, want the prefix and %d args", len(got), len(c.args()))
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"10.66.0.0/24": "10.66.0.255", "172.16.0.0/12": "172.31.255.255", "10.66.0.4/30": "10.66.0.7",
		"0.0.0.0/0": "255.255.255.255",
	} {
		if got := broadcast(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}
