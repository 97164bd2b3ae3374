package cluster

import "sort"

// Lease is a private address held by an instance, with the instance's
// MAC and the IDs of its security groups.
type Lease struct {
	IP       string
	MAC      string
	Instance string
	Groups   []string
}

// Leases lists the addresses leased now, by address: one per instance
// that is not terminated.
func (c *Cluster) Leases() []Lease {
	c.mu.RLock()
	out := make([]Lease, 0, len(c.leases))
	for ip, id := range c.leases {
		l := Lease{IP: ip, Instance: id}
		if in := c.insts[id]; in != nil {
			l.MAC, l.Groups = in.Spec.MAC, in.Spec.Groups
		}
		out = append(out, l)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}
