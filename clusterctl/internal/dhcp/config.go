package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultLeaseTime = time.Hour
	DefaultBinary    = "dnsmasq"
)

// minLeaseTime is the shortest lease dnsmasq accepts.
const minLeaseTime = 2 * time.Minute

// Names of the files the server keeps in Config.Dir.
const (
	hostsName = "hosts"
	leaseName = "leases"
	pidName   = "dnsmasq.pid"
)

// Config describes the DHCP service on one bridge.
type Config struct {
	// Bridge is the interface to serve. It need not exist yet.
	Bridge string
	// Subnet is the cluster's private IPv4 network, in canonical form
	// (10.66.0.0/24, not 10.66.0.1/24).
	Subnet netip.Prefix
	// Gateway is sent as the router option. The zero Addr sends none.
	Gateway netip.Addr
	// DNS are sent as the domain-name-servers option (6); empty sends none.
	DNS []netip.Addr
	// Domain is sent as the domain-name option (15) when not empty.
	Domain string
	// LeaseTime is the lease duration; zero means DefaultLeaseTime.
	LeaseTime time.Duration
	// Dir holds the hosts file, the lease file and the pid file. It must be
	// an absolute path that User can read: dnsmasq re-reads the hosts file
	// after it has dropped root.
	Dir string
	// Binary is the dnsmasq executable; empty means DefaultBinary.
	Binary string
	// User is the account dnsmasq drops to after binding its socket; empty
	// keeps dnsmasq's default (nobody).
	User string
	// Exec is prepended to the dnsmasq command line, e.g.
	// ["ip", "netns", "exec", "ns1"]. The prefix must exec dnsmasq in place
	// (not fork it), so that the started process is dnsmasq itself.
	Exec []string
	// LogDHCP adds --log-dhcp: the options sent and tags matched for every
	// request, logged at debug level.
	LogDHCP bool
}

// withDefaults returns c with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.Binary == "" {
		c.Binary = DefaultBinary
	}
	return c
}

// Validate reports the first problem that would keep dnsmasq from serving
// c. Zero LeaseTime and Binary are valid (they take the defaults).
func (c Config) Validate() error {
	if err := checkIfName(c.Bridge); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() {
		return fmt.Errorf("subnet %q: want an IPv4 prefix", c.Subnet)
	}
	if c.Subnet != c.Subnet.Masked() {
		return fmt.Errorf("subnet %s: host bits set (want %s)", c.Subnet, c.Subnet.Masked())
	}
	if c.Subnet.Bits() > 30 {
		return fmt.Errorf("subnet %s: too small, want /30 or larger", c.Subnet)
	}
	if c.Gateway.IsValid() {
		if err := checkHostAddr(c.Subnet, c.Gateway); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	for _, a := range c.DNS {
		if !a.IsValid() || !a.Is4() {
			return fmt.Errorf("dns %q: want an IPv4 address", a)
		}
	}
	if c.Domain != "" {
		if err := checkDomain(c.Domain); err != nil {
			return fmt.Errorf("domain: %w", err)
		}
	}
	if c.LeaseTime != 0 && c.LeaseTime < minLeaseTime {
		return fmt.Errorf("lease time %s: dnsmasq's minimum is %s", c.LeaseTime, minLeaseTime)
	}
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("dir %q: want an absolute path", c.Dir)
	}
	if strings.ContainsAny(c.User, " \t\n,") {
		return fmt.Errorf("user %q: invalid", c.User)
	}
	return nil
}

// hostsPath is the file dnsmasq reads its MAC to IP map from.
func (c Config) hostsPath() string { return filepath.Join(c.Dir, hostsName) }

// leasePath is dnsmasq's lease database.
func (c Config) leasePath() string { return filepath.Join(c.Dir, leaseName) }

// pidPath is where dnsmasq writes its process ID once it serves.
func (c Config) pidPath() string { return filepath.Join(c.Dir, pidName) }

// command is the full command line: the Exec prefix, the binary, and args.
func (c Config) command() []string {
	c = c.withDefaults()
	cmd := append([]string(nil), c.Exec...)
	cmd = append(cmd, c.Binary)
	return append(cmd, c.args()...)
}

// args are dnsmasq's arguments for c: in the foreground, no configuration
// or host files and no DNS; DHCP on the bridge only, following it as it
// comes and goes (--bind-dynamic); static addresses from the hosts file for
// known MACs only, everyone else ignored; the lease file and the pid file in
// Dir; logs on stderr.
func (c Config) args() []string {
	c = c.withDefaults()
	mask := netip.AddrFrom4([4]byte(net.CIDRMask(c.Subnet.Bits(), 32)))
	a := []string{
		"--keep-in-foreground",
		"--conf-file=/dev/null",
		"--port=0",
		"--no-resolv",
		"--no-hosts",
		"--interface=" + c.Bridge,
		"--bind-dynamic",
		"--except-interface=lo",
		"--dhcp-range=" + c.Subnet.Addr().String() + ",static," + mask.String() + "," +
			strconv.FormatInt(int64(c.LeaseTime/time.Second), 10),
		"--dhcp-hostsfile=" + c.hostsPath(),
		"--dhcp-leasefile=" + c.leasePath(),
		"--dhcp-authoritative",
		"--dhcp-ignore=tag:!known",
	}
	// An option given without a value makes dnsmasq send none instead of
	// its own address.
	if c.Gateway.IsValid() {
		a = append(a, "--dhcp-option=option:router,"+c.Gateway.String())
	} else {
		a = append(a, "--dhcp-option=option:router")
	}
	if len(c.DNS) > 0 {
		s := make([]string, len(c.DNS))
		for i, d := range c.DNS {
			s[i] = d.String()
		}
		a = append(a, "--dhcp-option=option:dns-server,"+strings.Join(s, ","))
	} else {
		a = append(a, "--dhcp-option=option:dns-server")
	}
	if c.Domain != "" {
		a = append(a, "--dhcp-option=option:domain-name,"+c.Domain)
	}
	a = append(a, "--pid-file="+c.pidPath(), "--log-facility=-")
	if c.LogDHCP {
		a = append(a, "--log-dhcp")
	}
	if c.User != "" {
		a = append(a, "--user="+c.User)
	}
	return a
}

// checkIfName accepts a Linux interface name.
func checkIfName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > 15:
		return fmt.Errorf("%q: longer than 15 bytes", s)
	case s == "." || s == "..":
		return fmt.Errorf("%q: invalid", s)
	case strings.ContainsAny(s, "/:, \t\n"):
		return fmt.Errorf("%q: invalid character", s)
	}
	return nil
}

// checkHostAddr accepts an IPv4 address usable by a host in subnet: inside
// it, and neither its network nor its broadcast address.
func checkHostAddr(subnet netip.Prefix, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("%q: want an IPv4 address", a)
	}
	if !subnet.Contains(a) {
		return fmt.Errorf("%s: outside subnet %s", a, subnet)
	}
	if a == subnet.Addr() {
		return fmt.Errorf("%s: network address of %s", a, subnet)
	}
	if a == broadcast(subnet) {
		return fmt.Errorf("%s: broadcast address of %s", a, subnet)
	}
	return nil
}

// broadcast is the last address of an IPv4 subnet.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// checkLabel accepts one DNS label (RFC 1123 host name syntax).
func checkLabel(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("%q: want 1 to 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q: invalid character %q at %d", s, ch, i)
		}
	}
	return nil
}

// checkDomain accepts a DNS domain name of one or more labels.
func checkDomain(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("%q: longer than 253 characters", s)
	}
	for _, l := range strings.Split(s, ".") {
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	return nil
}
