package cluster

import "sort"

// Lease is a private address held by an instance, with the instance's
// MAC, the IDs of its security groups and the host device of its NIC
// as its node last reported it ("" while unknown or not running).
type Lease struct {
	IP       string
	MAC      string
	Instance string
	Groups   []string
	Iface    string
}

// Leases lists the addresses leased now, by address: one per instance
// that is not terminated.
func (c *Cluster) Leases() []Lease {
	c.mu.RLock()
	out := make([]Lease, 0, len(c.leases))
	for ip, id := range c.leases {
		l := Lease{IP: ip, Instance: id}
		if in := c.insts[id]; in != nil {
			l.MAC, l.Groups, l.Iface = in.Spec.MAC, in.Spec.Groups, in.Status.Iface
		}
		out = append(out, l)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}
