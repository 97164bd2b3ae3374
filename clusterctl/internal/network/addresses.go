package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/koala-cloud/koala/pkg/netfilter"
)

// Addresses are the cluster's public addresses: its pool, and which
// instance each associated address reaches.
type Addresses struct {
	// Pool holds every address of the cluster's pool: on the public
	// interface, those of them not in Mapped are removed.
	Pool []netip.Addr
	// Mapped maps public addresses to instance IDs.
	Mapped map[netip.Addr]string
}

// nats are the NAT entries of the addresses whose instance holds a
// lease here; an address whose instance has none yet (it is still being
// placed) or whose instance already has another (a stale set) is left
// out until a later sync.
func (n *Network) nats(leases []Lease, addrs Addresses) []netfilter.NAT {
	byInstance := map[string]netip.Addr{}
	for _, l := range leases {
		byInstance[l.Instance] = l.IP.Unmap()
	}
	var out []netfilter.NAT
	taken := map[netip.Addr]bool{}
	for _, pub := range sortedKeys(addrs.Mapped) {
		priv, ok := byInstance[addrs.Mapped[pub]]
		if !ok || taken[priv] || !pub.Is4() {
			continue
		}
		taken[priv] = true
		out = append(out, netfilter.NAT{Public: pub, Private: priv})
	}
	return out
}

func sortedKeys(m map[netip.Addr]string) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, netip.Addr.Compare)
	return keys
}

// syncPublic makes the public interface hold exactly the pool's addresses
// that nats maps, each as a /32. Addresses outside the pool, and those
// with another prefix length, are someone else's and stay.
func (n *Network) syncPublic(ctx context.Context, addrs Addresses, nats []netfilter.NAT) error {
	dev := n.cfg.PublicInterface
	out, err := n.host.Run(ctx, "", "ip", "-4", "-j", "addr", "show", "dev", dev)
	if err != nil {
		return fmt.Errorf("public interface %s: %w", dev, err)
	}
	held, err := hostAddrs(out)
	if err != nil {
		return fmt.Errorf("public interface %s: %w", dev, err)
	}
	want := map[netip.Addr]bool{}
	for _, nat := range nats {
		want[nat.Public] = true
	}
	var errs []error
	for _, a := range held {
		if !want[a] && slices.Contains(addrs.Pool, a) {
			if _, err := n.host.Run(ctx, "", "ip", "addr", "del", a.String()+"/32", "dev", dev); err != nil {
				errs = append(errs, err)
				continue
			}
			n.log.Info("public address released", "public_ip", a.String(), "iface", dev)
		}
	}
	for _, nat := range nats {
		if slices.Contains(held, nat.Public) {
			continue
		}
		if _, err := n.host.Run(ctx, "", "ip", "addr", "replace", nat.Public.String()+"/32", "dev", dev); err != nil {
			errs = append(errs, err)
			continue
		}
		n.log.Info("public address held", "public_ip", nat.Public.String(), "private_ip", nat.Private.String(), "iface", dev)
	}
	return errors.Join(errs...)
}

// hostAddrs reads the /32 IPv4 addresses from `ip -4 -j addr show`.
func hostAddrs(out []byte) ([]netip.Addr, error) {
	var links []struct {
		AddrInfo []struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("reading ip's addresses: %w", err)
	}
	var held []netip.Addr
	for _, l := range links {
		for _, ai := range l.AddrInfo {
			a, err := netip.ParseAddr(ai.Local)
			if err == nil && ai.Family == "inet" && ai.PrefixLen == 32 {
				held = append(held, a)
			}
		}
	}
	return held, nil
}
