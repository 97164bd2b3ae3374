package instances

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// Kick makes the reconciler run soon.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Apply records the statuses a cluster reports for its zone.
func (c *Controller) Apply(zone string, sts []api.InstanceStatus) error {
	return c.db.Commit(func(tx *store.Tx) error {
		for _, st := range sts {
			if _, _, err := applyTx(tx, zone, st); err != nil {
				return err
			}
		}
		return nil
	})
}

// apply records one status and returns the instance's state.
func (c *Controller) apply(zone string, st api.InstanceStatus) (string, bool) {
	var cur string
	var ok bool
	err := c.db.Commit(func(tx *store.Tx) error {
		in, found, err := applyTx(tx, zone, st)
		cur, ok = in.State, found
		return err
	})
	if err != nil {
		c.log.Error("recording an instance's state", "instance_id", st.ID, "err", err)
		return "", false
	}
	return cur, ok
}

// applyTx merges a cluster's report into the record: the newest report
// wins, a terminated record stays terminated, and what the user asked
// for shows until the cluster catches up.
func applyTx(tx *store.Tx, zone string, st api.InstanceStatus) (Instance, bool, error) {
	in, err := Get(tx, st.ID)
	if errors.Is(err, ErrNotFound) {
		return in, false, nil
	}
	if err != nil || in.Zone != zone {
		return in, false, err
	}
	if in.Final() || (st.Generation != 0 && st.Generation <= in.Generation) {
		return in, true, nil
	}
	in.Generation, in.Placed = st.Generation, true
	if st.Node != "" {
		in.Node = st.Node
	}
	if st.MAC != "" {
		in.MAC = st.MAC
	}
	if st.PrivateIP != "" {
		in.PrivateIP = st.PrivateIP
	}
	state := st.State
	switch {
	case state == api.Terminated:
		in.Desired = api.Terminated
	case in.Desired == api.Terminated:
		state = api.ShuttingDown
	case in.Desired == api.Stopped && (state == api.Running || state == api.Pending):
		state = api.Stopping
	case in.Desired == api.Running && (state == api.Stopped || state == api.Stopping):
		state = api.Pending
	}
	if state != in.State {
		in.State, in.Since = state, st.Since
		if in.Since.IsZero() {
			in.Since = time.Now().UTC()
		}
	}
	switch {
	case state == api.Running || state == api.Pending:
		in.Reason = nil
	case st.Reason != nil:
		in.Reason = st.Reason
	}
	if state == api.Terminated && in.Transition == "" && in.Reason != nil {
		in.Transition = in.Reason.Message
	}
	return in, true, Put(tx, in)
}

// Run reconciles every Poll (and when kicked), and hands the clusters
// their security groups after each reconcile and shortly after each
// KickNetwork, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.runNetwork(ctx) })
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		c.reconcile(ctx)
		c.SyncNetwork(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

// unplacedGrace is how long a RunInstances call has to place its
// instances before the reconciler takes over.
const unplacedGrace = 10 * time.Second

// lostGrace is how long a placed instance may be missing from its
// cluster's list before it counts as lost.
const lostGrace = 30 * time.Second

func (c *Controller) reconcile(ctx context.Context) {
	var all []Instance
	if err := c.db.View(func(tx *store.Tx) error {
		var err error
		all, err = All(tx, "")
		return err
	}); err != nil {
		c.log.Error("reconcile: reading instances", "err", err)
		return
	}
	now := time.Now().UTC()
	byZone := map[string][]Instance{}
	var expired []Instance
	for _, in := range all {
		switch {
		case in.Final():
			if now.Sub(in.Since) > c.cfg.Keep {
				expired = append(expired, in)
			}
		default:
			byZone[in.Zone] = append(byZone[in.Zone], in)
		}
	}
	// Every registered zone, also those where this cloud has nothing
	// live: a cluster may run what cloudctl has ended meanwhile.
	if zones, err := c.Zones(); err == nil {
		for _, z := range zones {
			if _, ok := byZone[z]; !ok {
				byZone[z] = nil
			}
		}
	}
	for zone, ins := range byZone {
		c.reconcileZone(ctx, zone, ins, now)
	}
	if len(expired) > 0 {
		err := c.db.Commit(func(tx *store.Tx) error {
			for _, in := range expired {
				if err := Delete(tx, in.ID); err != nil {
					return err
				}
				if err := tags.Drop(tx, in.Owner, in.ID); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			c.log.Error("reconcile: forgetting terminated instances", "err", err)
		}
	}
}

func (c *Controller) reconcileZone(ctx context.Context, zone string, ins []Instance, now time.Time) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	cl, err := c.client(zone)
	if err != nil {
		// The cluster was deregistered: its instances are gone.
		for _, in := range ins {
			c.end(in, &api.Reason{Code: "Server.InternalError", Message: "Server.InternalError: the instance's availability zone " + zone + " no longer exists"})
		}
		return
	}
	// Instances a RunInstances call did not get placed (a crash, or an
	// unreachable cluster): place them now, or end them.
	var unplaced []Instance
	for _, in := range ins {
		if !in.Placed && in.Desired == api.Running && now.Sub(in.Launched) > unplacedGrace {
			unplaced = append(unplaced, in)
		}
	}
	if len(unplaced) > 0 {
		// As many as fit: the user was told they launched.
		req := api.RunRequest{MinCount: 1}
		ids := make([]string, len(unplaced))
		for i, in := range unplaced {
			req.Instances = append(req.Instances, in.Spec())
			ids[i] = in.ID
		}
		res, err := cl.RunInstances(cctx, req)
		if api.Code(err) == "InsufficientInstanceCapacity" {
			res, err = api.RunResponse{}, nil
		}
		if err == nil {
			if _, err := c.placed2(ids, res.Instances); err != nil {
				c.log.Error("reconcile: recording placements", "zone", zone, "err", err)
			}
		} else {
			c.log.Warn("reconcile: placing pending instances", "zone", zone, "err", err)
		}
	}
	list, err := cl.Instances(cctx)
	if err != nil {
		c.log.Warn("reconcile: cluster unreachable", "zone", zone, "err", err)
		c.timeouts(ctx, ins, now)
		return
	}
	if err := c.Apply(zone, list); err != nil {
		c.log.Error("reconcile: applying cluster state", "zone", zone, "err", err)
		return
	}
	reported := make(map[string]api.InstanceStatus, len(list))
	for _, st := range list {
		reported[st.ID] = st
	}
	c.endStray(cctx, zone, list)
	var fresh []Instance
	if err := c.db.View(func(tx *store.Tx) error {
		for _, in := range ins {
			cur, err := Get(tx, in.ID)
			if err == nil {
				fresh = append(fresh, cur)
			}
		}
		return nil
	}); err != nil {
		return
	}
	for _, in := range fresh {
		if in.Final() || !in.Placed {
			continue
		}
		st, ok := reported[in.ID]
		switch {
		case !ok:
			if now.Sub(in.Launched) > lostGrace {
				c.end(in, &api.Reason{Code: "Server.InternalError", Message: "Server.InternalError: the cluster has no record of the instance"})
			}
		case in.Desired == api.Terminated && st.State != api.Terminated:
			_, _ = c.act(cctx, in, api.VerbTerminate, api.ActionRequest{})
		case in.Desired == api.Stopped && (st.State == api.Running || st.State == api.Pending):
			_, _ = c.act(cctx, in, api.VerbStop, api.ActionRequest{})
		case in.Desired == api.Running && st.State == api.Stopped:
			_, _ = c.act(cctx, in, api.VerbStart, api.ActionRequest{})
		}
	}
	c.timeouts(ctx, fresh, now)
}

// timeouts ends instances pending for longer than PendingTimeout.
func (c *Controller) timeouts(ctx context.Context, ins []Instance, now time.Time) {
	for _, in := range ins {
		if in.State != api.Pending || in.Desired != api.Running || now.Sub(in.Since) < c.cfg.PendingTimeout {
			continue
		}
		reason := &api.Reason{Code: "Server.InternalError",
			Message: "Server.InternalError: the instance did not reach running within " + c.cfg.PendingTimeout.String()}
		c.log.Warn("pending too long; terminating", "instance_id", in.ID, "zone", in.Zone)
		if !in.Placed {
			c.end(in, reason)
			continue
		}
		err := c.db.Commit(func(tx *store.Tx) error {
			cur, err := Get(tx, in.ID)
			if err != nil || cur.Final() {
				return err
			}
			cur.Desired, cur.State, cur.Since, cur.Reason, cur.Transition = api.Terminated, api.ShuttingDown, now, reason, reason.Message
			return Put(tx, cur)
		})
		if err == nil {
			_, _ = c.act(ctx, in, api.VerbTerminate, api.ActionRequest{})
		}
	}
}

// end makes an instance terminated with a reason, without its cluster.
func (c *Controller) end(in Instance, reason *api.Reason) {
	c.log.Warn("instance ended", "instance_id", in.ID, "zone", in.Zone, "reason", reason.Message)
	err := c.db.Commit(func(tx *store.Tx) error {
		cur, err := Get(tx, in.ID)
		if err != nil || cur.Final() {
			return nil
		}
		cur.Desired, cur.State, cur.Since, cur.Reason, cur.Transition = api.Terminated, api.Terminated, time.Now().UTC(), reason, reason.Message
		return Put(tx, cur)
	})
	if err != nil {
		c.log.Error("ending an instance", "instance_id", in.ID, "err", err)
	}
}

// placed2 records a reconciler's placement: instances the cluster did not
// take end terminated for want of capacity.
func (c *Controller) placed2(ids []string, took []api.InstanceSpec) ([]Instance, error) {
	taken := map[string]bool{}
	for _, s := range took {
		taken[s.ID] = true
	}
	for _, id := range ids {
		if !taken[id] {
			c.end(Instance{ID: id}, &api.Reason{Code: "Server.InsufficientInstanceCapacity", Message: "Server.InsufficientInstanceCapacity: Insufficient capacity."})
		}
	}
	return c.placed(ids, took, false)
}

// endStray terminates what a cluster runs that cloudctl has ended, or
// has no record of: an instance terminated while its cluster was taking
// it, or whose launch answer was lost before the user terminated it.
func (c *Controller) endStray(ctx context.Context, zone string, list []api.InstanceStatus) {
	var stray []Instance
	_ = c.db.View(func(tx *store.Tx) error {
		for _, st := range list {
			if st.State == api.Terminated || st.State == api.ShuttingDown {
				continue
			}
			in, err := Get(tx, st.ID)
			switch {
			case errors.Is(err, ErrNotFound):
				stray = append(stray, Instance{ID: st.ID, Zone: zone})
			case err == nil && in.Final():
				stray = append(stray, in)
			}
		}
		return nil
	})
	for _, in := range stray {
		c.log.Info("terminating an instance the cloud has ended or does not know", "instance_id", in.ID, "zone", zone)
		_, _ = c.act(ctx, Instance{ID: in.ID, Zone: zone}, api.VerbTerminate, api.ActionRequest{})
	}
}
