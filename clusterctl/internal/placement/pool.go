package placement

import (
	"errors"
	"fmt"
	"net/netip"
)

// Pool is a subnet's private addresses. The network address, the
// gateway (the first host, .1 in a /24) and the broadcast address are
// never leased.
type Pool struct {
	prefix      netip.Prefix
	first, last uint32 // leasable range, inclusive
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

// Size is how many addresses the pool can lease.
func (p *Pool) Size() int { return int(p.last - p.first + 1) }

// Contains reports whether ip is a leasable address of the pool.
func (p *Pool) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return false
	}
	v := u32(a)
	return v >= p.first && v <= p.last
}

// Next returns the lowest address that used does not report taken,
// false when every address is.
func (p *Pool) Next(used func(ip string) bool) (string, bool) {
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
