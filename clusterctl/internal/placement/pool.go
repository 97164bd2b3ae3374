package placement

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Pool is a subnet's private addresses. The network address, the
// gateway (the first host, .1 in a /24) and the broadcast address are
// never leased. A static pool (STATIC mode) leases only the addresses
// of an administrator's MAC=IP map, each with its MAC.
type Pool struct {
	prefix      netip.Prefix
	first, last uint32 // leasable range, inclusive
	// static maps the leasable addresses of a static pool to their
	// MACs; nil for a dynamic pool.
	static map[uint32]string
	order  []uint32 // static's addresses, ascending
}

// NewPool returns the pool of an IPv4 subnet in CIDR form, at most /30.
func NewPool(cidr string) (*Pool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("subnet %q: %w", cidr, err)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("subnet %q: not IPv4", cidr)
	}
	if p.Bits() > 30 {
		return nil, fmt.Errorf("subnet %q: %w", cidr, errors.New("too small: need at least a /30"))
	}
	p = p.Masked()
	network := u32(p.Addr())
	broadcast := network | (1<<(32-p.Bits()) - 1)
	return &Pool{prefix: p, first: network + 2, last: broadcast - 1}, nil
}

// NewStaticPool returns the pool of a subnet in CIDR form that leases
// only the addresses of macMap, entries "MAC=IP" (Eucalyptus's
// VNET_MACMAP). Every address must be a leasable one of the subnet, and
// no MAC or address may appear twice.
func NewStaticPool(cidr string, macMap []string) (*Pool, error) {
	p, err := NewPool(cidr)
	if err != nil {
		return nil, err
	}
	if len(macMap) == 0 {
		return nil, errors.New("mac map: empty; STATIC mode leases only its addresses")
	}
	p.static = map[uint32]string{}
	macs := map[string]bool{}
	for _, e := range macMap {
		m, ip, ok := strings.Cut(strings.TrimSpace(e), "=")
		hw, err := net.ParseMAC(strings.TrimSpace(m))
		if !ok || err != nil || len(hw) != 6 || hw[0]&1 == 1 {
			return nil, fmt.Errorf("mac map entry %q: want MAC=IP with a unicast Ethernet MAC", e)
		}
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil || !a.Is4() || u32(a) < p.first || u32(a) > p.last {
			return nil, fmt.Errorf("mac map entry %q: %s is not a leasable address of %s", e, strings.TrimSpace(ip), p.prefix)
		}
		v, mac := u32(a), hw.String()
		if _, dup := p.static[v]; dup || macs[mac] {
			return nil, fmt.Errorf("mac map entry %q: the address or the MAC appears twice", e)
		}
		p.static[v], macs[mac] = mac, true
		p.order = append(p.order, v)
	}
	slices.Sort(p.order)
	return p, nil
}

// Size is how many addresses the pool can lease.
func (p *Pool) Size() int {
	if p.static != nil {
		return len(p.order)
	}
	return int(p.last - p.first + 1)
}

// Contains reports whether ip is a leasable address of the pool.
func (p *Pool) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return false
	}
	v := u32(a)
	if p.static != nil {
		_, ok := p.static[v]
		return ok
	}
	return v >= p.first && v <= p.last
}

// MAC is the MAC address an instance leasing ip gets: the map's in a
// static pool, else the one MAC derives from the address.
func (p *Pool) MAC(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is4() && p.static != nil {
		return p.static[u32(a)]
	}
	return MAC(ip)
}

// Next returns the lowest address that used does not report taken,
// false when every address is.
func (p *Pool) Next(used func(ip string) bool) (string, bool) {
	if p.static != nil {
		for _, v := range p.order {
			if ip := addr(v).String(); !used(ip) {
				return ip, true
			}
		}
		return "", false
	}
	for v := p.first; v <= p.last && v >= p.first; v++ {
		ip := addr(v).String()
		if !used(ip) {
			return ip, true
		}
	}
	return "", false
}

// MAC is the MAC address of a leased IPv4 address: d0:0d: and the
// address's four bytes, so 10.0.0.5 is d0:0d:0a:00:00:05.
func MAC(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	b := a.As4()
	return fmt.Sprintf("d0:0d:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
