// Package ippool reads an administrator's pool of IPv4 addresses:
// single addresses, inclusive ranges and prefixes, as cloudctl stores a
// cluster's public address pool and hands it to the cluster.
package ippool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// MaxPool is the most addresses one pool may hold.
const MaxPool = 1 << 16

// ErrInvalid reports a pool specification that cannot be read.
var ErrInvalid = errors.New("invalid address pool")

// Parse expands an administrator's pool specification: each entry is
// an IPv4 address ("192.0.2.10"), an inclusive range
// ("192.0.2.10-192.0.2.20") or a prefix ("192.0.2.16/28", without its
// network and broadcast addresses when it has more than two). The result
// is sorted and free of repeats. The error wraps ErrInvalid and names the
// entry.
func Parse(specs []string) ([]netip.Addr, error) {
	var out []netip.Addr
	add := func(a netip.Addr) error {
		if len(out) >= MaxPool {
			return fmt.Errorf("%w: pool holds more than %d addresses", ErrInvalid, MaxPool)
		}
		out = append(out, a)
		return nil
	}
	for _, spec := range specs {
		first, last, err := parseRange(strings.TrimSpace(spec))
		if err != nil {
			return nil, err
		}
		for a := first; a.Compare(last) <= 0 && a.IsValid(); a = a.Next() {
			if err := add(a); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// parseRange reads one pool entry as its first and last address.
func parseRange(spec string) (first, last netip.Addr, err error) {
	bad := func(why string) (netip.Addr, netip.Addr, error) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%w: pool entry %q: %s", ErrInvalid, spec, why)
	}
	usable := func(a netip.Addr) bool {
		return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && !a.IsLinkLocalUnicast() &&
			a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	switch {
	case strings.Contains(spec, "/"):
		p, err := netip.ParsePrefix(spec)
		if err != nil || !p.Addr().Is4() {
			return bad("not an IPv4 prefix")
		}
		p = p.Masked()
		b := p.Addr().As4()
		n := binary.BigEndian.Uint32(b[:]) | uint32(1<<(32-p.Bits())-1)
		first, last = p.Addr(), netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, n)))
		if p.Bits() < 31 {
			first, last = first.Next(), last.Prev()
		}
	case strings.Contains(spec, "-"):
		a, b, _ := strings.Cut(spec, "-")
		if first, err = netip.ParseAddr(strings.TrimSpace(a)); err != nil {
			return bad("not an IPv4 range")
		}
		if last, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil {
			return bad("not an IPv4 range")
		}
		if last.Less(first) {
			return bad("the range is reversed")
		}
	default:
		if first, err = netip.ParseAddr(spec); err != nil {
			return bad("not an IPv4 address")
		}
		last = first
	}
	if !usable(first) || !usable(last) {
		return bad("not a usable public IPv4 address")
	}
	return first, last, nil
}
