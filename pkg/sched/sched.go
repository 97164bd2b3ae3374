package sched

import (
	"fmt"
	"slices"
	"strings"
)

// Resources are what an instance takes from a node.
type Resources struct {
	Cores     int `json:"cores"`
	MemoryMiB int `json:"memory_mib"`
	DiskGiB   int `json:"disk_gib"`
}

// Covers reports whether r has room for need.
func (r Resources) Covers(need Resources) bool {
	return r.Cores >= need.Cores && r.MemoryMiB >= need.MemoryMiB && r.DiskGiB >= need.DiskGiB
}

// Add returns r plus o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.Cores + o.Cores, r.MemoryMiB + o.MemoryMiB, r.DiskGiB + o.DiskGiB}
}

// Sub returns r minus o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.Cores - o.Cores, r.MemoryMiB - o.MemoryMiB, r.DiskGiB - o.DiskGiB}
}

// Times returns r scaled by n.
func (r Resources) Times(n int) Resources {
	return Resources{r.Cores * n, r.MemoryMiB * n, r.DiskGiB * n}
}

// Fits returns how many instances needing need fit in r. A need of
// nothing fits no times: it is not a real type.
func (r Resources) Fits(need Resources) int {
	n := -1
	for _, d := range [][2]int{{r.Cores, need.Cores}, {r.MemoryMiB, need.MemoryMiB}, {r.DiskGiB, need.DiskGiB}} {
		if d[1] <= 0 {
			continue
		}
		k := max(d[0], 0) / d[1]
		if n < 0 || k < n {
			n = k
		}
	}
	return max(n, 0)
}

// Node is one node of a cluster as placement sees it: only nodes that are
// up and may take instances are passed in, in registration order.
type Node struct {
	Name      string
	Free      Resources
	Total     Resources
	Instances int // instances placed on the node, for PACK and SPREAD
}

// Policy chooses a node of a cluster.
type Policy string

// The node policies.
const (
	// Greedy takes the first node, in registration order, that fits.
	Greedy Policy = "GREEDY"
	// RoundRobin takes the first node that fits at or after a cursor
	// that moves past each chosen node.
	RoundRobin Policy = "ROUNDROBIN"
	// Pack takes the node that fits with the most instances.
	Pack Policy = "PACK"
	// Spread takes the node that fits with the fewest instances.
	Spread Policy = "SPREAD"
)

// Policies lists the node policies.
var Policies = []Policy{Greedy, RoundRobin, Pack, Spread}

// ParsePolicy reads a node policy's name, in any case.
func ParsePolicy(s string) (Policy, error) {
	p := Policy(strings.ToUpper(s))
	for _, q := range Policies {
		if p == q {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown placement policy %q (want GREEDY, ROUNDROBIN, PACK or SPREAD)", s)
}

// Pick chooses the node for one instance needing need. cursor is the
// round-robin position the previous pick returned (0 at first); Pick
// returns the chosen node's index, the next cursor, and false when no
// node fits. Ties go to the earlier node.
func Pick(p Policy, nodes []Node, need Resources, cursor int) (index, next int, ok bool) {
	n := len(nodes)
	switch p {
	case RoundRobin:
		if n == 0 {
			return -1, cursor, false
		}
		start := ((cursor % n) + n) % n
		for k := range n {
			i := (start + k) % n
			if nodes[i].Free.Covers(need) {
				return i, i + 1, true
			}
		}
		return -1, cursor, false
	case Pack, Spread:
		best := -1
		for i := range nodes {
			if !nodes[i].Free.Covers(need) {
				continue
			}
			if best < 0 || (p == Pack && nodes[i].Instances > nodes[best].Instances) ||
				(p == Spread && nodes[i].Instances < nodes[best].Instances) {
				best = i
			}
		}
		return best, cursor, best >= 0
	default: // Greedy
		for i := range nodes {
			if nodes[i].Free.Covers(need) {
				return i, cursor, true
			}
		}
		return -1, cursor, false
	}
}

// Place chooses nodes for up to count instances needing need, one after
// another, as Assign does. It returns the chosen indexes (fewer than count
// when the nodes run out) and the next cursor.
func Place(p Policy, nodes []Node, need Resources, count, cursor int) (picks []int, next int) {
	return Assign(p, nodes, slices.Repeat([]Resources{need}, max(count, 0)), cursor)
}

// Assign chooses a node for each need in turn, as if each instance were
// placed before the next is chosen, and stops at the first that fits
// nowhere: a request's instances are taken as a prefix, so that launch
// indexes stay contiguous. It changes the Free and Instances of nodes it
// picks, so the caller passes a copy it may keep or drop. It returns the
// chosen indexes and the next cursor.
func Assign(p Policy, nodes []Node, needs []Resources, cursor int) (picks []int, next int) {
	next = cursor
	for _, need := range needs {
		i, c, ok := Pick(p, nodes, need, next)
		if !ok {
			break
		}
		next = c
		nodes[i].Free = nodes[i].Free.Sub(need)
		nodes[i].Instances++
		picks = append(picks, i)
	}
	return picks, next
}

// Slots is how many instances of a type a set of nodes has room for now
// (Free) and when empty (Max), as DescribeAvailabilityZones verbose lists
// them.
func Slots(nodes []Node, need Resources) (free, most int) {
	for _, n := range nodes {
		free += n.Free.Fits(need)
		most += n.Total.Fits(need)
	}
	return free, most
}
