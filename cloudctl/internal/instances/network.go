package instances

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// networkDebounce is how long KickNetwork waits for more changes before
// the groups go out.
const networkDebounce = 50 * time.Millisecond

// networkSync remembers, per zone, what its cluster was last handed, and
// keeps one put per zone in flight.
type networkSync struct {
	mu   sync.Mutex
	sent map[string][sha256.Size]byte // zone/document -> hash of what it accepted
	busy map[string]bool              // a put to the zone is in flight
	redo map[string]bool              // the zone changed meanwhile
	kick chan struct{}
}

// KickNetwork makes the security groups go out to the clusters soon,
// after a change to a group or to which instances run where. It never
// blocks; the work happens in Run.
func (c *Controller) KickNetwork() {
	select {
	case c.netsync.kick <- struct{}{}:
	default:
	}
}

// runNetwork syncs the groups shortly after each kick until ctx ends.
func (c *Controller) runNetwork(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.netsync.kick:
		}
		t := time.NewTimer(networkDebounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Kicks during the wait are for changes this sync reads.
		select {
		case <-c.netsync.kick:
		default:
		}
		c.SyncNetwork(ctx)
	}
}

// SyncNetwork hands every registered zone's cluster the security groups
// its live instances are in, and those their rules name as sources. A
// zone is skipped when its set is what its cluster last accepted; the
// first sync after start puts to every zone. Zones are synced in
// parallel; a zone with a put in flight is synced again after it,
// rather than waited for.
func (c *Controller) SyncNetwork(ctx context.Context) {
	zones, err := c.Zones()
	if err != nil {
		c.log.Error("groups: reading zones", "err", err)
		return
	}
	c.netsync.mu.Lock()
	for k := range c.netsync.sent {
		if z, _, _ := strings.Cut(k, "/"); !slices.Contains(zones, z) {
			delete(c.netsync.sent, k)
		}
	}
	c.netsync.mu.Unlock()
	var wg sync.WaitGroup
	for _, z := range zones {
		wg.Go(func() { c.syncZoneNetwork(ctx, z) })
	}
	wg.Wait()
}

func (c *Controller) syncZoneNetwork(ctx context.Context, zone string) {
	g := &c.netsync
	g.mu.Lock()
	if g.busy[zone] {
		g.redo[zone] = true
		g.mu.Unlock()
		return
	}
	g.busy[zone] = true
	g.mu.Unlock()
	for {
		c.putZoneNetwork(ctx, zone)
		g.mu.Lock()
		if !g.redo[zone] || ctx.Err() != nil {
			delete(g.busy, zone)
			delete(g.redo, zone)
			g.mu.Unlock()
			return
		}
		delete(g.redo, zone)
		g.mu.Unlock()
	}
}

// zoneDoc is one document each zone's cluster is kept in step with:
// read builds it, put hands it over.
type zoneDoc struct {
	name string
	read func(tx *store.Tx, zone string) (any, error)
	put  func(ctx context.Context, cl *api.Client, doc any) error
}

// zoneDocs are the security groups and the public addresses.
var zoneDocs = []zoneDoc{
	{"groups", func(tx *store.Tx, zone string) (any, error) { return zoneGroups(tx, zone) },
		func(ctx context.Context, cl *api.Client, doc any) error {
			return cl.PutGroups(ctx, doc.(api.GroupsRequest))
		}},
	{"addresses", func(tx *store.Tx, zone string) (any, error) { return zoneAddresses(tx, zone) },
		func(ctx context.Context, cl *api.Client, doc any) error {
			return cl.PutAddresses(ctx, doc.(api.AddressesRequest))
		}},
}

// putZoneNetwork reads the zone's documents and puts each unless
// unchanged. The reads happen here, one put per zone at a time, so an
// older document never overwrites a newer one.
func (c *Controller) putZoneNetwork(ctx context.Context, zone string) {
	for _, d := range zoneDocs {
		c.putZoneDoc(ctx, zone, d)
	}
}

func (c *Controller) putZoneDoc(ctx context.Context, zone string, d zoneDoc) {
	var doc any
	err := c.db.View(func(tx *store.Tx) error {
		var err error
		doc, err = d.read(tx, zone)
		return err
	})
	if err != nil {
		c.log.Error(d.name+": reading", "zone", zone, "err", err)
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		c.log.Error(d.name+": encoding", "zone", zone, "err", err)
		return
	}
	sum, key := sha256.Sum256(body), zone+"/"+d.name
	c.netsync.mu.Lock()
	last, ok := c.netsync.sent[key]
	c.netsync.mu.Unlock()
	if ok && last == sum {
		return
	}
	cl, err := c.client(zone)
	if err != nil {
		return // deregistered meanwhile
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if err := d.put(cctx, cl, doc); err != nil {
		c.log.Warn(d.name+": cluster did not take them", "zone", zone, "err", err)
		return
	}
	c.netsync.mu.Lock()
	c.netsync.sent[key] = sum
	c.netsync.mu.Unlock()
}

// zoneAddresses returns the zone's pool and the addresses associated
// with its live instances.
func zoneAddresses(tx *store.Tx, zone string) (api.AddressesRequest, error) {
	out := api.AddressesRequest{Pool: []string{}, Addresses: []api.AddressMapping{}}
	cl, err := clusters.Get(tx, zone)
	if errors.Is(err, clusters.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Pool = append(out.Pool, cl.PublicIPs...)
	in, err := addresses.InZone(tx, zone)
	if err != nil {
		return out, err
	}
	for _, a := range in {
		out.Addresses = append(out.Addresses, api.AddressMapping{PublicIP: a.PublicIP, InstanceID: a.Instance})
	}
	return out, nil
}

// zoneGroups returns the groups of the zone's live instances and, by
// their rules, of their source groups, by ID. A group that is gone
// (deleted while an instance is in it) is left out: it has no rules.
func zoneGroups(tx *store.Tx, zone string) (api.GroupsRequest, error) {
	all, err := All(tx, "")
	if err != nil {
		return api.GroupsRequest{}, err
	}
	type ref struct{ owner, id string }
	var todo []ref
	for _, in := range all {
		if in.Zone != zone || in.Final() {
			continue
		}
		for _, g := range in.Groups {
			todo = append(todo, ref{in.Owner, g.ID})
		}
	}
	seen := map[string]bool{}
	out := api.GroupsRequest{Groups: []api.Group{}}
	for len(todo) > 0 {
		r := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[r.id] {
			continue
		}
		seen[r.id] = true
		g, err := secgroups.Get(tx, r.owner, r.id)
		if errors.Is(err, secgroups.ErrNotFound) {
			continue
		}
		if err != nil {
			return api.GroupsRequest{}, err
		}
		ag := api.Group{ID: g.ID, Owner: g.Owner, Ingress: groupRules(g.Ingress), Egress: groupRules(g.Egress)}
		out.Groups = append(out.Groups, ag)
		for _, rules := range [][]secgroups.Rule{g.Ingress, g.Egress} {
			for _, sr := range rules {
				if _, ok := groupRule(sr); !ok || sr.GroupID == "" {
					continue
				}
				owner := sr.GroupOwner
				if owner == "" {
					owner = g.Owner
				}
				todo = append(todo, ref{owner, sr.GroupID})
			}
		}
	}
	slices.SortFunc(out.Groups, func(a, b api.Group) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// groupRules converts the rules a cluster can enforce.
func groupRules(rules []secgroups.Rule) []api.GroupRule {
	out := []api.GroupRule{}
	for _, r := range rules {
		if gr, ok := groupRule(r); ok {
			out = append(out, gr)
		}
	}
	return out
}

// groupRule converts one rule; ok is false for what a cluster does not
// enforce: IPv6 peers, icmpv6 and protocols other than tcp, udp and
// icmp (by name or number) or all.
func groupRule(r secgroups.Rule) (api.GroupRule, bool) {
	proto := map[string]string{"-1": "all", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "6": "tcp", "17": "udp", "1": "icmp"}[r.Protocol]
	if proto == "" {
		return api.GroupRule{}, false
	}
	out := api.GroupRule{Protocol: proto, FromPort: r.FromPort, ToPort: r.ToPort}
	switch {
	case r.CIDR != "":
		out.CIDRs = []string{r.CIDR}
	case r.GroupID != "":
		out.SourceGroups = []string{r.GroupID}
	default:
		return api.GroupRule{}, false
	}
	if proto == "all" {
		out.FromPort, out.ToPort = -1, -1
	}
	return out, true
}
