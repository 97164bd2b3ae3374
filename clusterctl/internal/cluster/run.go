package cluster

import (
	"context"
	"fmt"

	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Run takes the instances of req: those the cluster already has are
// answered as they are; the new ones are placed on UP nodes under the
// policy, leased an address and stored, all in one change, and then
// launched in the background. When fewer than MinCount fit (counting
// those it already has) nothing is stored and the error is a
// *CapacityError. A MinCount of 0 means all of them.
func (c *Cluster) Run(ctx context.Context, req api.RunRequest) (api.RunResponse, error) {
	if err := validateRun(req); err != nil {
		return api.RunResponse{}, err
	}
	minCount := req.MinCount
	if minCount <= 0 {
		minCount = len(req.Instances)
	}
	out := make([]api.InstanceSpec, 0, len(req.Instances))
	var placed []string
	err := c.change(func(t *tx) error {
		out, placed = out[:0], placed[:0]
		var fresh []api.InstanceSpec
		known := 0
		for _, s := range req.Instances {
			if t.inst(s.ID) != nil {
				known++
			} else {
				fresh = append(fresh, s)
			}
		}
		nodes, recs := t.upNodes()
		cursor, last := 0, t.settingsCopy().Cursor
		for i, n := range recs {
			if n.Seq > last {
				cursor = i
				break
			}
		}
		needs := make([]sched.Resources, len(fresh))
		for i, s := range fresh {
			needs[i] = s.Type.Resources
		}
		picks, _ := sched.Assign(c.opt.Policy, nodes, needs, cursor)
		short := &CapacityError{Zone: c.opt.Zone}
		if len(picks) < len(fresh) {
			short.Type = fresh[len(picks)].Type.Name
		}
		// Lease an address for each placed instance.
		ips := make([]string, 0, len(picks))
		taken := map[string]bool{}
		for range picks {
			ip, ok := c.opt.Pool.Next(func(ip string) bool { return taken[ip] || t.lease(ip) != "" })
			if !ok {
				short.Addresses = true
				break
			}
			taken[ip] = true
			ips = append(ips, ip)
		}
		picks = picks[:len(ips)]
		if known+len(picks) < minCount {
			short.Count = minCount - known
			if short.Type == "" {
				short.Type = fresh[0].Type.Name
			}
			return short
		}
		for i, k := range picks {
			spec := fresh[i]
			spec.Node, spec.PrivateIP, spec.MAC = recs[k].Name, ips[i], c.opt.Pool.MAC(ips[i])
			in := &state.Instance{
				Spec:    spec,
				Status:  api.InstanceStatus{State: api.Pending, Since: t.now},
				Desired: api.Running,
				Since:   t.now,
			}
			t.putInst(in)
			t.leases[spec.PrivateIP] = spec.ID
			placed = append(placed, spec.ID)
			if c.opt.Policy == sched.RoundRobin {
				t.settingsCopy().Cursor = recs[k].Seq
			}
		}
		for _, s := range req.Instances {
			if in := t.inst(s.ID); in != nil {
				out = append(out, in.Spec)
			}
		}
		return nil
	})
	if err != nil {
		return api.RunResponse{}, err
	}
	for _, id := range placed {
		c.dispatch(id)
	}
	return api.RunResponse{Instances: out}, nil
}

func validateRun(req api.RunRequest) error {
	if len(req.Instances) == 0 {
		return fmt.Errorf("%w: no instances", ErrInvalid)
	}
	if req.MinCount > len(req.Instances) {
		return fmt.Errorf("%w: min_count %d exceeds the %d instances", ErrInvalid, req.MinCount, len(req.Instances))
	}
	ids := map[string]bool{}
	for _, s := range req.Instances {
		switch {
		case s.ID == "":
			return fmt.Errorf("%w: an instance has no id", ErrInvalid)
		case ids[s.ID]:
			return fmt.Errorf("%w: instance %s given twice", ErrInvalid, s.ID)
		case s.Type.Cores <= 0 || s.Type.MemoryMiB <= 0 || s.Type.DiskGiB < 0:
			return fmt.Errorf("%w: instance %s has type %q of %+v", ErrInvalid, s.ID, s.Type.Name, s.Type.Resources)
		}
		ids[s.ID] = true
	}
	return nil
}
