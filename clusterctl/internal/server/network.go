package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
	"github.com/koala-cloud/koala/clusterctl/internal/network"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/ippool"
)

// Timings of the network sync.
const (
	netDebounce    = 100 * time.Millisecond // lease changes gathered into one sync
	netSyncTimeout = 30 * time.Second
)

// netSync keeps the host's network in step with the cluster's leases and
// security groups: one sync at start, one after each burst of lease or
// group changes, and, after a sync failed, one per poll until one
// succeeds. It runs in the background, so the API path only signals it.
type netSync struct {
	net    *network.Network
	leases func() []cluster.Lease
	groups func() network.Groups
	addrs  func() network.Addresses
	poll   time.Duration
	log    *slog.Logger
	kick   chan struct{} // buffered 1
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newNetSync(n *network.Network, poll time.Duration, log *slog.Logger) *netSync {
	return &netSync{net: n, poll: poll, log: log, kick: make(chan struct{}, 1)}
}

// changed asks for a sync; it never blocks.
func (s *netSync) changed() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// start runs the sync loop over c's leases, groups and addresses until
// stop.
func (s *netSync) start(ctx context.Context, c *cluster.Cluster) {
	s.leases = c.Leases
	s.groups = func() network.Groups { return groupsOf(c, s.log) }
	s.addrs = func() network.Addresses { return addressesOf(c, s.log) }
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx)
	}()
}

// stop ends the loop and stops dnsmasq.
func (s *netSync) stop() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	return s.net.Close()
}

func (s *netSync) run(ctx context.Context) {
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	failed := !s.sync(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			select { // gather a burst
			case <-ctx.Done():
				return
			case <-time.After(netDebounce):
			}
			select {
			case <-s.kick:
			default:
			}
		case <-tick.C:
			if !failed {
				continue
			}
		}
		failed = !s.sync(ctx)
	}
}

// sync runs one network.Sync over the current leases and groups; it
// reports success.
func (s *netSync) sync(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, netSyncTimeout)
	defer cancel()
	leases := toNetwork(s.leases(), s.log)
	groups := s.groups()
	err := s.net.Sync(ctx, leases, groups, s.addrs())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("network sync failed; retrying on the next poll", "leases", len(leases), "groups", len(groups.Set),
			"err", err)
	} else if err == nil {
		s.log.Debug("network synced", "leases", len(leases), "groups", len(groups.Set), "groups_received", groups.Received)
	}
	return err == nil
}

// toNetwork converts the cluster's leases; one it cannot read is logged
// and left out, so that it does not keep the others from being served.
func toNetwork(ls []cluster.Lease, log *slog.Logger) []network.Lease {
	out := make([]network.Lease, 0, len(ls))
	for _, l := range ls {
		ip, err1 := netip.ParseAddr(l.IP)
		mac, err2 := net.ParseMAC(l.MAC)
		if err1 != nil || err2 != nil || !ip.Is4() {
			log.Warn("lease not served by dhcp", "instance_id", l.Instance, "ip", l.IP, "mac", l.MAC)
			continue
		}
		out = append(out, network.Lease{Instance: l.Instance, MAC: mac, IP: ip, Groups: l.Groups, Iface: l.Iface})
	}
	return out
}

// groupsOf returns the cluster's security groups for the network. They
// were checked when they were put; one that no longer parses is logged
// and left out, which leaves its members without its rules, as are
// repeats of an ID.
func groupsOf(c *cluster.Cluster, log *slog.Logger) network.Groups {
	in, received := c.Groups()
	out := network.Groups{Received: received}
	seen := map[string]bool{}
	for _, g := range in {
		ng, err := network.ParseGroup(g)
		if err != nil || seen[g.ID] {
			log.Warn("security group not enforced", "group_id", g.ID, "err", err)
			continue
		}
		seen[g.ID] = true
		out.Set = append(out.Set, ng)
	}
	return out
}

// addressesOf returns the cluster's public addresses for the network.
// They were checked when they were put; a pool that no longer parses is
// logged and taken as empty (no address is removed from the public
// interface), and a mapping that does not parse is left out.
func addressesOf(c *cluster.Cluster, log *slog.Logger) network.Addresses {
	req := c.Addresses()
	out := network.Addresses{Mapped: map[netip.Addr]string{}}
	pool, err := ippool.Parse(req.Pool)
	if err != nil {
		log.Warn("public address pool not used", "err", err)
	}
	out.Pool = pool
	for _, m := range req.Addresses {
		a, err := netip.ParseAddr(m.PublicIP)
		if err != nil || !a.Is4() || m.InstanceID == "" {
			log.Warn("public address not served", "public_ip", m.PublicIP, "instance_id", m.InstanceID)
			continue
		}
		out.Mapped[a] = m.InstanceID
	}
	return out
}

// checkAddresses checks a set of public addresses as the network will
// use it: a readable pool, IPv4 addresses, each mapped once, to an
// instance.
func checkAddresses(req api.AddressesRequest) error {
	if _, err := ippool.Parse(req.Pool); err != nil {
		return err
	}
	seen := map[netip.Addr]bool{}
	for _, m := range req.Addresses {
		a, err := netip.ParseAddr(m.PublicIP)
		switch {
		case err != nil || !a.Is4():
			return fmt.Errorf("public ip %q: not an IPv4 address", m.PublicIP)
		case m.InstanceID == "":
			return fmt.Errorf("public ip %s: no instance", a)
		case seen[a]:
			return fmt.Errorf("public ip %s: mapped twice", a)
		}
		seen[a] = true
	}
	return nil
}
