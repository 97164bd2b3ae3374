package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// Instances lists every instance the cluster has, terminated ones
// included until KeepTerminated has passed, by ID.
func (c *Cluster) Instances() []api.InstanceStatus {
	cutoff := time.Now().Add(-c.opt.KeepTerminated)
	c.mu.RLock()
	out := make([]api.InstanceStatus, 0, len(c.insts))
	for _, in := range c.insts {
		if in.Holds() || !in.Status.Since.Before(cutoff) {
			out = append(out, in.Status)
		}
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Act runs an instance action. Terminate is stored and then carried out
// in the background (an unknown instance is terminated already); the
// other verbs go to the node at once and its errors come back as
// *api.CallError, or ErrUnreachable.
func (c *Cluster) Act(ctx context.Context, id, verb string, req api.ActionRequest) (api.InstanceStatus, error) {
	switch verb {
	case api.VerbTerminate:
		return c.terminate(id)
	case api.VerbStop, api.VerbStart, api.VerbReboot, api.VerbModify, api.VerbAttachVolume, api.VerbDetachVolume:
		return c.forward(ctx, id, verb, req)
	}
	return api.InstanceStatus{}, fmt.Errorf("%w: unknown action %q", ErrInvalid, verb)
}

func (c *Cluster) terminate(id string) (api.InstanceStatus, error) {
	var out api.InstanceStatus
	err := c.change(func(t *tx) error {
		in := t.inst(id)
		if in == nil {
			out = api.InstanceStatus{ID: id, State: api.Terminated, Since: t.now}
			return nil
		}
		if !in.Holds() || in.Desired == api.Terminated {
			out = in.Status
			return nil
		}
		cp := *in
		cp.Desired, cp.Since = api.Terminated, t.now
		cp.Status.State, cp.Status.Since = api.ShuttingDown, t.now
		cp.Status.Reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
		t.putInst(&cp)
		out = cp.Status
		return nil
	})
	if err != nil {
		return api.InstanceStatus{}, err
	}
	if out.State != api.Terminated {
		c.endAsync(id)
	}
	return out, nil
}

// forward runs stop, start, reboot, modify or a volume's attach or
// detach on the instance's node. A
// modify to a type of other resources first reserves them on the node
// (ErrCapacity when it has no room) and gives them back if the node
// refuses.
func (c *Cluster) forward(ctx context.Context, id, verb string, req api.ActionRequest) (api.InstanceStatus, error) {
	in := c.instance(id)
	if in == nil {
		return api.InstanceStatus{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if !in.Holds() || in.Desired == api.Terminated {
		return api.InstanceStatus{}, fmt.Errorf("%w: instance %s is %s", ErrState, id, in.Status.State)
	}
	if !in.Acked {
		return api.InstanceStatus{}, fmt.Errorf("%w: instance %s is %s", ErrState, id, in.Status.State)
	}
	if verb == api.VerbModify && req.Type == nil {
		return api.InstanceStatus{}, fmt.Errorf("%w: modify needs a type", ErrInvalid)
	}
	n := c.node(in.Spec.Node)
	if n == nil {
		return api.InstanceStatus{}, fmt.Errorf("%w: node %s is not registered", ErrUnreachable, in.Spec.Node)
	}
	old := in.Spec.Type
	reserved := false
	if verb == api.VerbModify && req.Type.Resources != old.Resources {
		if req.Type.Cores <= 0 || req.Type.MemoryMiB <= 0 {
			return api.InstanceStatus{}, fmt.Errorf("%w: type %q of %+v", ErrInvalid, req.Type.Name, req.Type.Resources)
		}
		err := c.change(func(t *tx) error {
			in := t.inst(id)
			if in == nil || !in.Holds() || in.Desired == api.Terminated {
				return fmt.Errorf("%w: instance %s is no longer live", ErrState, id)
			}
			node := t.node(in.Spec.Node)
			free := node.Capacity.Sub(t.usage()[node.Name].res).Add(in.Spec.Type.Resources)
			if !free.Covers(req.Type.Resources) {
				return &CapacityError{Zone: c.opt.Zone, Count: 1, Type: req.Type.Name}
			}
			cp := *in
			cp.Spec.Type = *req.Type
			t.putInst(&cp)
			return nil
		})
		if err != nil {
			return api.InstanceStatus{}, err
		}
		reserved = true
	}
	st, err := c.client(n.URL).Act(ctx, id, verb, req)
	if err != nil {
		if reserved {
			c.setType(id, *req.Type, old)
		}
		var ce *api.CallError
		if errors.As(err, &ce) {
			return api.InstanceStatus{}, err
		}
		return api.InstanceStatus{}, fmt.Errorf("%w: could not reach node %s: %v", ErrUnreachable, n.Name, err)
	}
	var out api.InstanceStatus
	err = c.change(func(t *tx) error {
		in := t.inst(id)
		if in == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		cp := *in
		cp.Acked = true
		switch verb {
		case api.VerbStop:
			if cp.Desired == api.Running {
				cp.Desired = api.Stopped
			}
		case api.VerbStart:
			if cp.Desired == api.Stopped {
				cp.Desired = api.Running
			}
		case api.VerbModify:
			cp.Spec.Type = *req.Type
		}
		merge(&cp, st)
		t.putInst(&cp)
		out = cp.Status
		return nil
	})
	return out, err
}

// setType puts an instance's type back from to to was, if it still is.
func (c *Cluster) setType(id string, is, was api.VMType) {
	err := c.change(func(t *tx) error {
		in := t.inst(id)
		if in == nil || in.Spec.Type != is {
			return nil
		}
		cp := *in
		cp.Spec.Type = was
		t.putInst(&cp)
		return nil
	})
	if err != nil {
		c.log.Error("restoring instance type", "instance_id", id, "err", err)
	}
}

// Console returns the tail of an instance's console from its node.
func (c *Cluster) Console(ctx context.Context, id string) (api.ConsoleOutput, error) {
	in := c.instance(id)
	if in == nil {
		return api.ConsoleOutput{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	n := c.node(in.Spec.Node)
	if n == nil {
		return api.ConsoleOutput{}, fmt.Errorf("%w: node %s is not registered", ErrUnreachable, in.Spec.Node)
	}
	out, err := c.client(n.URL).Console(ctx, id)
	if err != nil {
		var ce *api.CallError
		if errors.As(err, &ce) {
			return out, err
		}
		return out, fmt.Errorf("%w: could not reach node %s: %v", ErrUnreachable, n.Name, err)
	}
	return out, nil
}
