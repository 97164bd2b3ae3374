package network

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/netfilter"
)

// ErrInvalidGroup reports a security group that cannot be enforced.
var ErrInvalidGroup = errors.New("invalid security group")

// Groups are the security groups a cluster enforces.
type Groups struct {
	// Received is set once cloudctl handed the cluster a set of groups.
	// Until then no group is enforced, so that a cluster that ran before
	// cloudctl knew of groups is not locked down by an upgrade.
	Received bool
	// Set are the groups with rules. A group an instance names that is
	// not in Set has no rules: its members get no ingress and no egress.
	Set []netfilter.Group
}

// validBridge is any interface name: Ruleset.Validate needs one to check
// groups alone.
const validBridge = "br0"

// ParseGroups converts the groups cloudctl sends into netfilter's, and
// checks them as netfilter does: IDs, unique IDs, protocols tcp, udp,
// icmp or all, port ranges (icmp type and code), IPv4 CIDRs (their host
// bits are cleared) and source group IDs. The error wraps ErrInvalidGroup
// and names the group and rule.
func ParseGroups(in []api.Group) ([]netfilter.Group, error) {
	out := make([]netfilter.Group, 0, len(in))
	for _, g := range in {
		ng, err := ParseGroup(g)
		if err != nil {
			return nil, err
		}
		out = append(out, ng)
	}
	if err := (netfilter.Ruleset{Bridge: validBridge, Groups: out}).Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroup, err)
	}
	return out, nil
}

// ParseGroup converts and checks one group (see ParseGroups; duplicates
// across groups are not its business).
func ParseGroup(g api.Group) (netfilter.Group, error) {
	out := netfilter.Group{ID: g.ID}
	var err error
	if out.Ingress, err = parseRules(g.Ingress); err != nil {
		return netfilter.Group{}, fmt.Errorf("%w: group %s ingress %w", ErrInvalidGroup, g.ID, err)
	}
	if out.Egress, err = parseRules(g.Egress); err != nil {
		return netfilter.Group{}, fmt.Errorf("%w: group %s egress %w", ErrInvalidGroup, g.ID, err)
	}
	if err := (netfilter.Ruleset{Bridge: validBridge, Groups: []netfilter.Group{out}}).Validate(); err != nil {
		return netfilter.Group{}, fmt.Errorf("%w: %w", ErrInvalidGroup, err)
	}
	return out, nil
}

func parseRules(in []api.GroupRule) ([]netfilter.Rule, error) {
	out := make([]netfilter.Rule, 0, len(in))
	for i, r := range in {
		nr := netfilter.Rule{Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort, SourceGroups: r.SourceGroups}
		for _, c := range r.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil || !p.Addr().Is4() {
				return nil, fmt.Errorf("rule %d: cidr %q: not an IPv4 prefix", i, c)
			}
			nr.CIDRs = append(nr.CIDRs, p.Masked())
		}
		out = append(out, nr)
	}
	return out, nil
}
