package server

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/cluster"
	"github.com/koala-cloud/koala/clusterctl/internal/network"
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

// start runs the sync loop until stop.
func (s *netSync) start(ctx context.Context, leases func() []cluster.Lease, groups func() network.Groups) {
	s.leases, s.groups = leases, groups
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
	err := s.net.Sync(ctx, leases, groups)
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
