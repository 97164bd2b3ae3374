package dhcp

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func host(t testing.TB, mac, ip, name string) Host {
	return Host{MAC: mustMAC(t, mac), IP: netip.MustParseAddr(ip), Name: name}
}

func TestRenderHosts(t *testing.T) {
	tests := []struct {
		name  string
		hosts []Host
		want  string
	}{
		{"none", nil, ""},
		{"one with name", []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "i-0a1b2c3d")},
			"02:00:00:00:00:01,10.66.0.10,i-0a1b2c3d\n"},
		{"sorted, lower case, name optional", []Host{
			host(t, "D0:0D:00:00:00:02", "10.66.0.9", ""),
			host(t, "02:00:00:00:00:01", "10.66.0.10", "guest1"),
			host(t, "02:00:00:00:00:0A", "10.66.0.200", "guest10"),
		}, "02:00:00:00:00:01,10.66.0.10,guest1\n02:00:00:00:00:0a,10.66.0.200,guest10\nd0:0d:00:00:00:02,10.66.0.9\n"},
		{"ipv4-mapped written plain", []Host{host(t, "02:00:00:00:00:01", "::ffff:10.66.0.10", "")},
			"02:00:00:00:00:01,10.66.0.10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkHosts(netip.MustParsePrefix("10.66.0.0/24"), netip.MustParseAddr("10.66.0.1"), tt.hosts); err != nil {
				t.Fatalf("checkHosts: %v", err)
			}
			got := string(renderHosts(tt.hosts))
			if got != tt.want {
				t.Fatalf("renderHosts =\n%q\nwant\n%q", got, tt.want)
			}
			// Order of the input does not matter.
			rev := slices.Clone(tt.hosts)
			slices.Reverse(rev)
			if again := string(renderHosts(rev)); again != got {
				t.Errorf("reversed input renders %q, want %q", again, got)
			}
			// What is written reads back.
			back, err := parseHosts([]byte(got))
			if err != nil {
				t.Fatalf("parseHosts: %v", err)
			}
			if again := string(renderHosts(back)); again != got {
				t.Errorf("parse and render again = %q, want %q", again, got)
			}
		})
	}
}

func TestCheckHosts(t *testing.T) {
	ok := func(mac, ip string) Host { return host(t, mac, ip, "") }
	tests := []struct {
		name  string
		hosts []Host
		want  string // substring of the error; "" for valid
	}{
		{"empty", nil, ""},
		{"two", []Host{ok("02:00:00:00:00:01", "10.66.0.10"), ok("02:00:00:00:00:02", "10.66.0.254")}, ""},
		{"outside subnet", []Host{ok("02:00:00:00:00:01", "10.67.0.10")}, "outside subnet"},
		{"network address", []Host{ok("02:00:00:00:00:01", "10.66.0.0")}, "network address"},
		{"broadcast address", []Host{ok("02:00:00:00:00:01", "10.66.0.255")}, "broadcast address"},
		{"gateway", []Host{ok("02:00:00:00:00:01", "10.66.0.1")}, "is the gateway"},
		{"ipv6", []Host{ok("02:00:00:00:00:01", "fd00::10")}, "want an IPv4 address"},
		{"no ip", []Host{{MAC: mustMAC(t, "02:00:00:00:00:01")}}, "want an IPv4 address"},
		{"no mac", []Host{{IP: netip.MustParseAddr("10.66.0.10")}}, "48-bit"},
		{"long mac", []Host{{MAC: mustMAC(t, "02:00:00:00:00:00:00:01"), IP: netip.MustParseAddr("10.66.0.10")}}, "48-bit"},
		{"multicast mac", []Host{ok("01:00:5e:00:00:01", "10.66.0.10")}, "multicast"},
		{"name with comma", []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "a,b")}, "invalid character"},
		{"name with dot", []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "a.b")}, "invalid character"},
		{"name leading hyphen", []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "-a")}, "invalid character"},
		{"name too long", []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", strings.Repeat("a", 64))}, "1 to 63"},
		{"same mac twice", []Host{ok("02:00:00:00:00:01", "10.66.0.10"), ok("02:00:00:00:00:01", "10.66.0.11")}, "same mac"},
		{"same ip twice", []Host{ok("02:00:00:00:00:01", "10.66.0.10"), ok("02:00:00:00:00:02", "10.66.0.10")}, "same ip"},
		{"same ip, one mapped", []Host{ok("02:00:00:00:00:01", "10.66.0.10"), ok("02:00:00:00:00:02", "::ffff:10.66.0.10")}, "same ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHosts(netip.MustParsePrefix("10.66.0.0/24"), netip.MustParseAddr("10.66.0.1"), tt.hosts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("checkHosts = %v, want nil", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("checkHosts = nil, want an error with %q", tt.want)
			case !errors.Is(err, ErrInvalidHost):
				t.Fatalf("checkHosts = %v, want it to wrap ErrInvalidHost", err)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("checkHosts = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestParseHostsRejects(t *testing.T) {
	for _, in := range []string{"02:00:00:00:00:01\n", "zz,10.66.0.10\n", "02:00:00:00:00:01,ten\n", "a,b,c,d\n"} {
		if _, err := parseHosts([]byte(in)); err == nil {
			t.Errorf("parseHosts(%q) = nil error", in)
		}
	}
}

func TestDropStaleLeases(t *testing.T) {
	const (
		l1 = "1795320370 02:00:00:00:00:01 10.66.0.10 guest1 01:02:00:00:00:00:01\n"
		l2 = "1795320371 02:00:00:00:00:02 10.66.0.20 * *\n"
		v6 = "duid 00:01:00:01:2c:00:00:00:02:00:00:00:00:01\n"
	)
	tests := []struct {
		name     string
		leases   string
		hosts    []Host
		keep     string
		dropAddr []string
	}{
		{"nothing", "", nil, "", nil},
		{"leases of current hosts stay", l1 + l2, []Host{
			host(t, "02:00:00:00:00:01", "10.66.0.10", ""), host(t, "02:00:00:00:00:02", "10.66.0.20", ""),
		}, l1 + l2, nil},
		{"lease of a removed host stays (harmless)", l1 + l2, []Host{host(t, "02:00:00:00:00:02", "10.66.0.20", "")},
			l1 + l2, nil},
		{"lease of a host that moved stays (dnsmasq moves it)", l1, []Host{host(t, "02:00:00:00:00:01", "10.66.0.11", "")},
			l1, nil},
		{"address given to another mac: dropped", v6 + l1 + l2, []Host{
			host(t, "02:00:00:00:00:03", "10.66.0.10", ""), host(t, "02:00:00:00:00:02", "10.66.0.20", ""),
		}, v6 + l2, []string{"10.66.0.10"}},
		{"upper-case mac in file is the same mac", strings.ToUpper(l1), []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "")},
			strings.ToUpper(l1), nil},
		{"last line without newline", strings.TrimSuffix(l1, "\n"), []Host{host(t, "02:00:00:00:00:09", "10.66.0.10", "")},
			"", []string{"10.66.0.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, dropped := dropStaleLeases([]byte(tt.leases), tt.hosts)
			if string(keep) != tt.keep {
				t.Errorf("keep = %q, want %q", keep, tt.keep)
			}
			if len(dropped) != len(tt.dropAddr) {
				t.Fatalf("dropped = %q, want leases of %q", dropped, tt.dropAddr)
			}
			for i, a := range tt.dropAddr {
				if !strings.Contains(dropped[i], " "+a+" ") {
					t.Errorf("dropped[%d] = %q, want the lease of %s", i, dropped[i], a)
				}
			}
		})
	}
}

func TestIsOurDnsmasq(t *testing.T) {
	const hosts = "/var/lib/koala/dhcp/hosts"
	args := func(a ...string) []byte { return []byte(strings.Join(a, "\x00") + "\x00") }
	tests := []struct {
		name    string
		cmdline []byte
		binary  string
		want    bool
	}{
		{"ours", args("dnsmasq", "--keep-in-foreground", "--dhcp-hostsfile="+hosts), "dnsmasq", true},
		{"ours by path", args("/usr/sbin/dnsmasq", "--dhcp-hostsfile="+hosts), "dnsmasq", true},
		{"ours, custom binary name", args("/opt/bin/dnsmasq-2.90", "--dhcp-hostsfile="+hosts), "/opt/bin/dnsmasq-2.90", true},
		{"another dnsmasq (libvirt's)", args("/usr/sbin/dnsmasq", "--conf-file=/var/lib/libvirt/dnsmasq/default.conf"), "dnsmasq", false},
		{"dnsmasq with another hosts file", args("dnsmasq", "--dhcp-hostsfile=/other/hosts"), "dnsmasq", false},
		{"hosts path only as a prefix", args("dnsmasq", "--dhcp-hostsfile="+hosts+".old"), "dnsmasq", false},
		{"not dnsmasq", args("sleep", "--dhcp-hostsfile="+hosts), "dnsmasq", false},
		{"wrapper naming it", args("ip", "netns", "exec", "x", "dnsmasq", "--dhcp-hostsfile="+hosts), "dnsmasq", false},
		{"zombie", nil, "dnsmasq", false},
		{"argv0 only", args("dnsmasq"), "dnsmasq", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isOurDnsmasq(tt.cmdline, tt.binary, hosts); got != tt.want {
				t.Errorf("isOurDnsmasq = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dnsmasq-dhcp[22123]: read /tmp/kzdexp/hosts", "read /tmp/kzdexp/hosts"},
		{"dnsmasq[22123]: started, version 2.90 DNS disabled", "started, version 2.90 DNS disabled"},
		{"dnsmasq: unknown interface kzdbr0", "unknown interface kzdbr0"},
		{"dnsmasq-dhcp[1]: DHCPACK(kzdbr0) 10.66.0.10 02:00:00:00:00:01 guest1",
			"DHCPACK(kzdbr0) 10.66.0.10 02:00:00:00:00:01 guest1"},
		{"something else: entirely", "something else: entirely"},
		{"dnsmasq said hello: there", "dnsmasq said hello: there"},
	}
	for _, tt := range tests {
		if got := logMessage(tt.in); got != tt.want {
			t.Errorf("logMessage(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
