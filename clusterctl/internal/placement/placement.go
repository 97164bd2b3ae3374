package placement

import (
	"github.com/koala-cloud/koala/pkg/sched"
)

// Assign chooses a node for each need in turn, as if each instance were
// placed before the next is chosen, and stops at the first that fits
// nowhere: a request's instances are taken as a prefix, so that launch
// indexes stay contiguous. It changes the Free and Instances of nodes it
// picks. It returns the chosen indexes and the next cursor.
func Assign(p sched.Policy, nodes []sched.Node, needs []sched.Resources, cursor int) (picks []int, next int) {
	next = cursor
	for _, need := range needs {
		i, c, ok := sched.Pick(p, nodes, need, next)
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
