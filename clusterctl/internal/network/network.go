package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/koala-cloud/koala/clusterctl/internal/dhcp"
	"github.com/koala-cloud/koala/pkg/netfilter"
)

// Mode is a cluster network mode.
type Mode string

// The network modes.
const (
	System        Mode = "SYSTEM"
	Static        Mode = "STATIC"
	ManagedNoVLAN Mode = "MANAGED-NOVLAN"
	Managed       Mode = "MANAGED"
)

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case System, Static, ManagedNoVLAN, Managed:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want SYSTEM, STATIC, MANAGED-NOVLAN or MANAGED", s)
}

// ErrClosed is returned by Sync after Close.
var ErrClosed = errors.New("network closed")

// Config is the desired network of a cluster host.
type Config struct {
	Mode Mode
	// Bridge is the cluster bridge the guests' NICs are on.
	Bridge string
	// Subnet is the cluster's private network (canonical form).
	Subnet netip.Prefix
	// Gateway is the bridge's address, outside the lease pool; DHCP sends
	// it as the router.
	Gateway netip.Addr
	// DNS are the name servers DHCP sends; empty sends none.
	DNS []netip.Addr
	// Metadata is where guests' requests to 169.254.169.254:80 are sent
	// (DNAT, keeping the guest's source address); the zero value sends
	// them nowhere.
	Metadata netip.AddrPort
	// DHCPDir holds dnsmasq's hosts, lease and pid files (absolute).
	DHCPDir string
	// DHCPUser is the user dnsmasq drops to; empty keeps dnsmasq's
	// default (nobody), which must then be able to read DHCPDir.
	DHCPUser string
	// DHCPBinary is the dnsmasq executable; empty means dnsmasq.
	DHCPBinary string
	// DHCPExec is prepended to dnsmasq's command line (see dhcp.Config).
	DHCPExec []string
	// LogDHCP logs dnsmasq's DHCP transactions at debug level.
	LogDHCP bool
	// PublicInterface, when set, holds the public addresses associated
	// with instances (see Addresses), each as a /32.
	PublicInterface string
}

// String describes c, for logs and tests.
func (c Config) String() string {
	return fmt.Sprintf("mode=%s bridge=%s subnet=%s gateway=%s dns=%v metadata=%s dhcp_dir=%s dhcp_user=%s public_interface=%s",
		c.Mode, c.Bridge, c.Subnet, c.Gateway, c.DNS, c.Metadata, c.DHCPDir, c.DHCPUser, c.PublicInterface)
}

// Validate reports what keeps c from being served.
func (c Config) Validate() error {
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Bridge == "" || len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/:, \t\n") {
		return fmt.Errorf("bridge %q: not an interface name", c.Bridge)
	}
	if c.PublicInterface != "" && (!IsIface(c.PublicInterface) || c.PublicInterface == c.Bridge) {
		return fmt.Errorf("public interface %q: not an interface name other than the bridge", c.PublicInterface)
	}
	if c.Metadata.IsValid() && (!c.Metadata.Addr().Is4() || c.Metadata.Addr().IsUnspecified() || c.Metadata.Port() == 0) {
		return fmt.Errorf("metadata %s: want an IPv4 address and port", c.Metadata)
	}
	if c.Mode == System {
		return nil
	}
	return c.dhcpConfig().Validate()
}

// dhcpConfig is the DHCP service c describes.
func (c Config) dhcpConfig() dhcp.Config {
	return dhcp.Config{
		Bridge: c.Bridge, Subnet: c.Subnet, Gateway: c.Gateway, DNS: c.DNS,
		Dir: c.DHCPDir, Binary: c.DHCPBinary, User: c.DHCPUser, Exec: c.DHCPExec, LogDHCP: c.LogDHCP,
	}
}

// Lease is a private address the cluster leased to an instance, with the
// IDs of the instance's security groups and the host device of its NIC
// on the bridge ("" while its node has not reported one).
type Lease struct {
	Instance string
	MAC      net.HardwareAddr
	IP       netip.Addr
	Groups   []string
	Iface    string
}

// DHCP is what the network needs of a DHCP server; *dhcp.Server is one.
type DHCP interface {
	Start(ctx context.Context) error
	SetHosts(ctx context.Context, hosts []dhcp.Host) error
	Close() error
}

// Deps are the network's collaborators; the zero value works on this host.
type Deps struct {
	// Host runs commands; nil means Exec{}.
	Host Host
	// NewDHCP makes the DHCP server; nil means dhcp.New.
	NewDHCP func(dhcp.Config, *slog.Logger) (DHCP, error)
}

// Network keeps a host's network as a cluster wants it.
type Network struct {
	cfg  Config
	host Host
	log  *slog.Logger

	mu         sync.Mutex // serializes Sync and Close
	dhcp       DHCP       // nil in SYSTEM mode
	started    bool       // dhcp started
	applied    string     // the nft script last applied successfully
	forwardErr string     // why ip_forward could not be written last time
	closed     bool
}

// New checks cfg and prepares the DHCP server (not started: the first
// Sync starts it). Nothing on the host changes before Sync.
func New(cfg Config, deps Deps, log *slog.Logger) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if deps.Host == nil {
		deps.Host = Exec{}
	}
	if deps.NewDHCP == nil {
		deps.NewDHCP = func(c dhcp.Config, log *slog.Logger) (DHCP, error) { return dhcp.New(c, log) }
	}
	n := &Network{cfg: cfg, host: deps.Host, log: log.With("bridge", cfg.Bridge, "network_mode", string(cfg.Mode))}
	if cfg.Mode != System {
		d, err := deps.NewDHCP(cfg.dhcpConfig(), log)
		if err != nil {
			return nil, err
		}
		n.dhcp = d
	}
	return n, nil
}

// Sync makes the host match cfg with leases as the complete lease set
// and groups as the security groups (see the package comment). It is
// idempotent: the bridge, its address and its state are ensured every
// time (cheap, and repairs what someone changed), dnsmasq is started if
// it is not and given the hosts (a no-op when unchanged), and the ruleset
// is applied when it differs from the last one applied. A failed step
// does not stop the others; the error joins their failures and a later
// Sync tries again.
func (n *Network) Sync(ctx context.Context, leases []Lease, groups Groups, addrs Addresses) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	if n.cfg.Mode != System {
		if err := n.ensureBridge(ctx); err != nil {
			errs = append(errs, err)
		}
		n.forwarding(ctx)
		if n.cfg.Mode == Managed {
			if err := n.segmentsRouted(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := n.syncDHCP(ctx, Hosts(leases)); err != nil {
			errs = append(errs, err)
		}
	}
	rs := n.Ruleset(leases, groups, addrs)
	if n.cfg.Mode != System || n.cfg.Metadata.IsValid() {
		if err := n.syncFilter(ctx, rs); err != nil {
			errs = append(errs, err)
		}
	}
	if n.cfg.PublicInterface != "" && n.cfg.Mode.enforcesGroups() {
		if err := n.syncPublic(ctx, addrs, rs.Elastic); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops dnsmasq. The bridge, its address and the ruleset stay, so
// that guests keep their network while clusterctl is down.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.dhcp != nil {
		return n.dhcp.Close()
	}
	return nil
}

// ensureBridge creates the bridge when it is missing, gives it the
// gateway address and sets it up.
func (n *Network) ensureBridge(ctx context.Context) error {
	br := n.cfg.Bridge
	if _, err := n.host.Run(ctx, "", "ip", "link", "show", "dev", br); err != nil {
		if _, err := n.host.Run(ctx, "", "ip", "link", "add", br, "type", "bridge"); err != nil {
			return fmt.Errorf("create bridge %s: %w", br, err)
		}
		n.log.Info("bridge created")
	}
	addr := netip.PrefixFrom(n.cfg.Gateway, n.cfg.Subnet.Bits()).String()
	if _, err := n.host.Run(ctx, "", "ip", "addr", "replace", addr, "dev", br); err != nil {
		return fmt.Errorf("address bridge %s: %w", br, err)
	}
	if _, err := n.host.Run(ctx, "", "ip", "link", "set", "dev", br, "up"); err != nil {
		return fmt.Errorf("bridge %s up: %w", br, err)
	}
	return nil
}

// forwarding enables IPv4 forwarding, and logs when it cannot: guests
// then reach the host (DHCP, metadata) but not beyond it.
func (n *Network) forwarding(ctx context.Context) {
	msg := ""
	if err := n.host.WriteSysctl(ctx, "net/ipv4/ip_forward", "1"); err != nil {
		msg = err.Error()
	}
	if msg != "" && msg != n.forwardErr { // once, not on every Sync
		n.log.Warn("cannot enable ipv4 forwarding; guests reach only this host", "err", msg)
	}
	n.forwardErr = msg
}

// syncDHCP serves hosts, starting dnsmasq when it does not run yet.
func (n *Network) syncDHCP(ctx context.Context, hosts []dhcp.Host) error {
	if err := n.dhcp.SetHosts(ctx, hosts); err != nil {
		return fmt.Errorf("dhcp hosts: %w", err)
	}
	if n.started {
		return nil
	}
	if err := n.dhcp.Start(ctx); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	n.started = true
	return nil
}

// syncFilter applies the ruleset when it changed since the last success.
// A metadata target on a loopback address needs route_localnet on the
// bridge, or the kernel drops the redirected packets as martians.
func (n *Network) syncFilter(ctx context.Context, rs netfilter.Ruleset) error {
	if m := n.cfg.Metadata; m.IsValid() && m.Addr().IsLoopback() {
		if err := n.host.WriteSysctl(ctx, "net/ipv4/conf/"+n.cfg.Bridge+"/route_localnet", "1"); err != nil {
			return fmt.Errorf("metadata on loopback: route_localnet on %s: %w", n.cfg.Bridge, err)
		}
	}
	script, err := netfilter.Render(rs)
	if err != nil {
		return err
	}
	if script == n.applied {
		return nil
	}
	if _, err := n.host.Run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("apply nft ruleset: %w", err)
	}
	n.applied = script
	n.log.Info("packet filter applied", "metadata", n.cfg.Metadata.String(), "ports", len(rs.Ports),
		"groups", len(rs.Groups), "elastic_ips", len(rs.Elastic))
	return nil
}

// Ruleset is the packet filter for the bridge: the metadata redirect
// and, in the MANAGED modes, the public addresses' NAT (see nats) and,
// once groups were received, the security groups: every lease is a port
// in its instance's groups. A port whose node reported the guest's host
// device is filtered on that device too: its frames must carry the
// lease's MAC and address (anti-spoofing). A device that is no interface
// name, is the bridge, or that two leases claim (a stale report racing a
// restart) is left out, so that one bad report cannot keep the whole
// filter from being applied; the port is then known by address only
// until a later sync. Before groups are received, and in SYSTEM and
// STATIC mode, there are no ports and no groups, so nothing is blocked
// (a port without groups drops its traffic).
func (n *Network) Ruleset(leases []Lease, groups Groups, addrs Addresses) netfilter.Ruleset {
	rs := netfilter.Ruleset{Bridge: n.cfg.Bridge}
	if n.cfg.Metadata.IsValid() {
		rs.Metadata = &netfilter.MetadataRedirect{To: n.cfg.Metadata}
	}
	if !n.cfg.Mode.enforcesGroups() {
		return rs
	}
	rs.Elastic = n.nats(leases, addrs)
	if !groups.Received {
		return rs
	}
	rs.Groups = groups.Set
	rs.Ports = n.ports(leases)
	if n.cfg.Mode == Managed {
		rs.Segmented = true
		for i, p := range rs.Ports { // the instance's first group, as launched
			if len(p.Groups) > 0 {
				rs.Ports[i].Segment = p.Groups[0]
			}
		}
	}
	return rs
}

// ports are the leases as packet-filter ports, sorted by address, each
// with its device when the device can be filtered (see Ruleset). A
// device it leaves out is logged.
func (n *Network) ports(leases []Lease) []netfilter.Port {
	claims := map[string]int{}
	for _, l := range leases {
		claims[l.Iface]++
	}
	out := make([]netfilter.Port, 0, len(leases))
	for _, l := range leases {
		p := netfilter.Port{Instance: l.Instance, MAC: l.MAC, IP: l.IP.Unmap(), Groups: l.Groups}
		if l.Iface != "" {
			if claims[l.Iface] == 1 && IsIface(l.Iface) && l.Iface != n.cfg.Bridge && len(l.MAC) == 6 {
				p.Iface = l.Iface
			} else {
				n.log.Warn("port not filtered on its device", "instance_id", l.Instance, "iface", l.Iface,
					"claims", claims[l.Iface])
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netfilter.Port) int { return a.IP.Compare(b.IP) })
	return out
}

// IsIface reports whether s is a Linux interface name the packet filter
// can match: 1 to 15 letters, digits, '_', '.' and '-', starting with a
// letter or digit.
func IsIface(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// enforcesGroups reports whether the cluster filters its guests' traffic
// by security group in mode m.
func (m Mode) enforcesGroups() bool { return m == ManagedNoVLAN || m == Managed }

// Hosts are the DHCP reservations of leases, sorted by address, each named
// after its address (ip-10-0-0-5).
func Hosts(leases []Lease) []dhcp.Host {
	hosts := make([]dhcp.Host, 0, len(leases))
	for _, l := range leases {
		ip := l.IP.Unmap()
		hosts = append(hosts, dhcp.Host{MAC: l.MAC, IP: ip, Name: HostName(ip)})
	}
	slices.SortFunc(hosts, func(a, b dhcp.Host) int { return a.IP.Compare(b.IP) })
	return hosts
}

// HostName is the host name of a private address: ip-a-b-c-d.
func HostName(ip netip.Addr) string {
	ip = ip.Unmap()
	if !ip.Is4() {
		return ""
	}
	b := ip.As4()
	return "ip-" + strconv.Itoa(int(b[0])) + "-" + strconv.Itoa(int(b[1])) + "-" +
		strconv.Itoa(int(b[2])) + "-" + strconv.Itoa(int(b[3]))
}

// DefaultDHCPDir is where dnsmasq's files live inside a data directory.
func DefaultDHCPDir(dataDir string) (string, error) {
	return filepath.Abs(filepath.Join(dataDir, "dhcp"))
}

// segmentsRouted has the host route between MANAGED mode's segments:
// with proxy ARP for the bridge's own subnet (proxy_arp_pvlan), a guest
// asking for a guest of another segment, whose frames the packet filter
// keeps apart, is answered with the bridge's address and sends through
// the host, whose inet table applies the security groups.
func (n *Network) segmentsRouted(ctx context.Context) error {
	var errs []error
	for _, key := range []string{"proxy_arp", "proxy_arp_pvlan"} {
		if err := n.host.WriteSysctl(ctx, "net/ipv4/conf/"+n.cfg.Bridge+"/"+key, "1"); err != nil {
			errs = append(errs, fmt.Errorf("managed segments: %w", err))
		}
	}
	return errors.Join(errs...)
}
