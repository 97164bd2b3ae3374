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

	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// groupsDebounce is how long KickGroups waits for more changes before
// the groups go out.
const groupsDebounce = 50 * time.Millisecond

// groupSync remembers, per zone, what its cluster was last handed, and
// keeps one put per zone in flight.
type groupSync struct {
	mu   sync.Mutex
	sent map[string][sha256.Size]byte // zone -> hash of the set it accepted
	busy map[string]bool              // a put to the zone is in flight
	redo map[string]bool              // the zone changed meanwhile
	kick chan struct{}
}

// KickGroups makes the security groups go out to the clusters soon,
// after a change to a group or to which instances run where. It never
// blocks; the work happens in Run.
func (c *Controller) KickGroups() {
	select {
	case c.groups.kick <- struct{}{}:
	default:
	}
}

// runGroups syncs the groups shortly after each kick until ctx ends.
func (c *Controller) runGroups(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.groups.kick:
		}
		t := time.NewTimer(groupsDebounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Kicks during the wait are for changes this sync reads.
		select {
		case <-c.groups.kick:
		default:
		}
		c.SyncGroups(ctx)
	}
}

// SyncGroups hands every registered zone's cluster the security groups
// its live instances are in, and those their rules name as sources. A
// zone is skipped when its set is what its cluster last accepted; the
// first sync after start puts to every zone. Zones are synced in
// parallel; a zone with a put in flight is synced again after it,
// rather than waited for.
func (c *Controller) SyncGroups(ctx context.Context) {
	zones, err := c.Zones()
	if err != nil {
		c.log.Error("groups: reading zones", "err", err)
		return
	}
	c.groups.mu.Lock()
	for z := range c.groups.sent {
		if !slices.Contains(zones, z) {
			delete(c.groups.sent, z)
		}
	}
	c.groups.mu.Unlock()
	var wg sync.WaitGroup
	for _, z := range zones {
		wg.Go(func() { c.syncZoneGroups(ctx, z) })
	}
	wg.Wait()
}

func (c *Controller) syncZoneGroups(ctx context.Context, zone string) {
	g := &c.groups
	g.mu.Lock()
	if g.busy[zone] {
		g.redo[zone] = true
		g.mu.Unlock()
		return
	}
	g.busy[zone] = true
	g.mu.Unlock()
	for {
		c.putZoneGroups(ctx, zone)
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

// putZoneGroups reads the zone's set and puts it unless unchanged. The
// read happens here, one put per zone at a time, so an older set never
// overwrites a newer one.
func (c *Controller) putZoneGroups(ctx context.Context, zone string) {
	var req api.GroupsRequest
	err := c.db.View(func(tx *store.Tx) error {
		var err error
		req, err = zoneGroups(tx, zone)
		return err
	})
	if err != nil {
		c.log.Error("groups: reading", "zone", zone, "err", err)
		return
	}
	body, err := json.Marshal(req)
	if err != nil {
		c.log.Error("groups: encoding", "zone", zone, "err", err)
		return
	}
	sum := sha256.Sum256(body)
	c.groups.mu.Lock()
	last, ok := c.groups.sent[zone]
	c.groups.mu.Unlock()
	if ok && last == sum {
		return
	}
	cl, err := c.client(zone)
	if err != nil {
		return // deregistered meanwhile
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if err := cl.PutGroups(cctx, req); err != nil {
		c.log.Warn("groups: cluster did not take them", "zone", zone, "err", err)
		return
	}
	c.groups.mu.Lock()
	c.groups.sent[zone] = sum
	c.groups.mu.Unlock()
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
