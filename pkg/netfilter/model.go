package netfilter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrInvalid reports a Ruleset that cannot be rendered; the wrapping error
// names the offending field.
var ErrInvalid = errors.New("invalid ruleset")

// Protocols a Rule may name.
const (
	TCP  = "tcp"
	UDP  = "udp"
	ICMP = "icmp"
	All  = "all"
)

// Any in Rule.FromPort or Rule.ToPort means any port (tcp, udp) or any ICMP
// type or code.
const Any = -1

// metadataAddr is the link-local address of the instance metadata service.
const metadataAddr = "169.254.169.254"

// Ruleset is the desired packet-filter state of one host's cluster bridge.
type Ruleset struct {
	// Bridge is the name of the cluster bridge the guests' ports belong to.
	Bridge string
	// Ports are the guests' network ports.
	Ports []Port
	// Groups are the security groups with their rules.
	Groups []Group
	// Elastic are the elastic IP associations.
	Elastic []NAT
	// Metadata, when set, redirects guests' metadata requests.
	Metadata *MetadataRedirect
	// Segmented puts each port's Segment on its own layer 2 (MANAGED
	// mode): frames between local ports of different segments are
	// dropped, so such guests reach each other only through the host,
	// which routes (answering their ARP: proxy_arp_pvlan on the bridge)
	// and filters them in the inet table. The host sends no ICMP
	// redirects onto the bridge, which would point them at each other.
	Segmented bool
}

// Port is one guest network interface.
type Port struct {
	// Instance is the instance ID; it names the port's chains.
	Instance string
	// Iface is the host-side device of the port on the bridge (the tap or
	// vnet device libvirt creates). Empty means the guest is not on this
	// host's bridge: its address still counts for source groups and routed
	// traffic, but it gets no port filter here.
	Iface string
	// MAC is the guest's hardware address; required when Iface is set.
	MAC net.HardwareAddr
	// IP is the guest's private IPv4 address.
	IP netip.Addr
	// Groups are the IDs of the security groups the port is a member of.
	// An ID without a Group entry counts as a group without rules.
	Groups []string
	// Segment names the port's layer 2 segment when the Ruleset is
	// Segmented (the instance's first group); empty is a segment of its
	// own.
	Segment string
}

// Group is a security group.
type Group struct {
	// ID is the group ID, for example sg-0123456789abcdef0.
	ID string
	// Ingress rules allow traffic to members; Egress rules traffic from them.
	Ingress, Egress []Rule
}

// Rule allows one kind of traffic. Sources of an ingress rule (CIDRs and
// SourceGroups) are destinations for an egress rule.
type Rule struct {
	// Protocol is TCP, UDP, ICMP or All.
	Protocol string
	// FromPort and ToPort are the destination port range for TCP and UDP,
	// and the ICMP type and code for ICMP. Any (-1) in either means any;
	// 0-65535 also means any port. Ignored for All.
	FromPort, ToPort int
	// CIDRs are allowed IPv4 peers.
	CIDRs []netip.Prefix
	// SourceGroups are group IDs whose members (by Port.IP) are allowed peers.
	SourceGroups []string
}

// NAT is an elastic IP association: inbound traffic to Public is sent to
// Private, and traffic from Private leaving the bridge appears from Public.
type NAT struct {
	Public  netip.Addr
	Private netip.Addr
}

// MetadataRedirect sends guests' requests for 169.254.169.254:80 to To,
// keeping the guest's source address so the listener can identify it.
type MetadataRedirect struct {
	To netip.AddrPort
}

// isName reports whether s is 1 to max bytes of letters, digits, '_', '.'
// and '-', starting with a letter or digit: safe inside nft quoted strings,
// chain and set names, and comments.
func isName(s string, max int) bool {
	if s == "" || len(s) > max {
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

// isIface reports whether s is a usable Linux interface name (IFNAMSIZ-1
// bytes at most).
func isIface(s string) bool { return isName(s, 15) }

// isID reports whether s is usable as a group or instance ID.
func isID(s string) bool { return isName(s, 100) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports whether rs can be rendered. The returned error wraps
// ErrInvalid.
func (rs Ruleset) Validate() error {
	if !isIface(rs.Bridge) {
		return invalid("bridge %q: not an interface name", rs.Bridge)
	}
	instances := map[string]bool{}
	ifaces := map[string]string{}
	macs := map[string]string{}
	ips := map[netip.Addr]string{}
	for _, p := range rs.Ports {
		if !isID(p.Instance) {
			return invalid("port instance %q: not an ID", p.Instance)
		}
		if instances[p.Instance] {
			return invalid("port %s: duplicate instance", p.Instance)
		}
		instances[p.Instance] = true
		if !p.IP.Is4() || p.IP.IsUnspecified() {
			return invalid("port %s: ip %v: not an IPv4 address", p.Instance, p.IP)
		}
		if other, ok := ips[p.IP]; ok {
			return invalid("port %s: ip %v already used by %s", p.Instance, p.IP, other)
		}
		ips[p.IP] = p.Instance
		for _, g := range p.Groups {
			if !isID(g) {
				return invalid("port %s: group %q: not an ID", p.Instance, g)
			}
		}
		if p.Segment != "" && !isID(p.Segment) {
			return invalid("port %s: segment %q: not an ID", p.Instance, p.Segment)
		}
		if p.Iface == "" {
			continue
		}
		if !isIface(p.Iface) || p.Iface == rs.Bridge {
			return invalid("port %s: iface %q: not a port name", p.Instance, p.Iface)
		}
		if other, ok := ifaces[p.Iface]; ok {
			return invalid("port %s: iface %s already used by %s", p.Instance, p.Iface, other)
		}
		ifaces[p.Iface] = p.Instance
		if len(p.MAC) != 6 || p.MAC[0]&1 == 1 {
			return invalid("port %s: mac %q: not a unicast Ethernet address", p.Instance, p.MAC)
		}
		if other, ok := macs[p.MAC.String()]; ok {
			return invalid("port %s: mac %s already used by %s", p.Instance, p.MAC, other)
		}
		macs[p.MAC.String()] = p.Instance
	}
	groups := map[string]bool{}
	for _, g := range rs.Groups {
		if !isID(g.ID) {
			return invalid("group %q: not an ID", g.ID)
		}
		if groups[g.ID] {
			return invalid("group %s: duplicate", g.ID)
		}
		groups[g.ID] = true
		for i, r := range g.Ingress {
			if err := r.validate(); err != nil {
				return fmt.Errorf("group %s ingress rule %d: %w", g.ID, i, err)
			}
		}
		for i, r := range g.Egress {
			if err := r.validate(); err != nil {
				return fmt.Errorf("group %s egress rule %d: %w", g.ID, i, err)
			}
		}
	}
	public := map[netip.Addr]bool{}
	private := map[netip.Addr]bool{}
	for _, n := range rs.Elastic {
		if !n.Public.Is4() || n.Public.IsUnspecified() || !n.Private.Is4() || n.Private.IsUnspecified() {
			return invalid("elastic ip %v -> %v: not IPv4 addresses", n.Public, n.Private)
		}
		if public[n.Public] {
			return invalid("elastic ip %v: associated twice", n.Public)
		}
		if private[n.Private] {
			return invalid("elastic ip %v: private address %v has another elastic ip", n.Public, n.Private)
		}
		public[n.Public], private[n.Private] = true, true
	}
	if m := rs.Metadata; m != nil {
		if !m.To.Addr().Is4() || m.To.Addr().IsUnspecified() || m.To.Port() == 0 {
			return invalid("metadata target %v: not an IPv4 address and port", m.To)
		}
	}
	return nil
}

func (r Rule) validate() error {
	switch r.Protocol {
	case TCP, UDP:
		for _, p := range []int{r.FromPort, r.ToPort} {
			if p != Any && (p < 0 || p > 65535) {
				return invalid("port %d out of range", p)
			}
		}
		if r.FromPort != Any && r.ToPort != Any && r.FromPort > r.ToPort {
			return invalid("port range %d-%d is reversed", r.FromPort, r.ToPort)
		}
	case ICMP:
		for _, p := range []int{r.FromPort, r.ToPort} {
			if p != Any && (p < 0 || p > 255) {
				return invalid("icmp type/code %d out of range", p)
			}
		}
		if r.FromPort == Any && r.ToPort != Any {
			return invalid("icmp code %d without a type", r.ToPort)
		}
	case All:
	default:
		return invalid("protocol %q: want tcp, udp, icmp or all", r.Protocol)
	}
	for _, c := range r.CIDRs {
		if !c.IsValid() || !c.Addr().Is4() {
			return invalid("cidr %v: not an IPv4 prefix", c)
		}
	}
	for _, g := range r.SourceGroups {
		if !isID(g) {
			return invalid("source group %q: not an ID", g)
		}
	}
	return nil
}
