package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
)

// Reasons the cluster gives when it ends an instance itself.
const reasonInternal = "Server.InternalError"

func internalReason(format string, args ...any) *api.Reason {
	return &api.Reason{Code: reasonInternal, Message: reasonInternal + ": " + fmt.Sprintf(format, args...)}
}

// attemptTimeout bounds one call to a node.
const attemptTimeout = 10 * time.Second

// dispatch launches an instance on its node in the background, once.
func (c *Cluster) dispatch(id string) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.launching[id] {
		return
	}
	if c.goLocked(func() { c.launch(id) }) {
		c.launching[id] = true
	}
}

// launch PUTs an instance's spec to its node until the node accepts it,
// refuses it, or cannot be reached for LaunchTimeout from when the
// instance was taken; then the instance ends terminated with a reason.
func (c *Cluster) launch(id string) {
	defer func() {
		c.bgMu.Lock()
		delete(c.launching, id)
		c.bgMu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	for {
		in := c.instance(id)
		if in == nil || in.Acked || in.Desired != api.Running || !in.Holds() {
			return
		}
		n := c.node(in.Spec.Node)
		if n == nil {
			c.fail(id, false, internalReason("node %s is not registered", in.Spec.Node))
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, attemptTimeout)
		st, err := c.client(n.URL).Launch(ctx, in.Spec)
		cancel()
		if err == nil {
			c.accepted(id, n.Name, st)
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		if refused(err) {
			c.log.Warn("node refused launch", "instance_id", id, "node", n.Name, "err", err)
			c.fail(id, false, internalReason("node %s refused the instance: %s", n.Name, callMessage(err)))
			return
		}
		if time.Since(in.Since) >= c.opt.LaunchTimeout {
			c.log.Warn("launch timed out", "instance_id", id, "node", n.Name, "err", err)
			c.fail(id, false, internalReason("could not reach node %s: %v", n.Name, err))
			return
		}
		c.log.Debug("launch retry", "instance_id", id, "node", n.Name, "err", err)
		if !c.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, max(c.opt.Heartbeat, 50*time.Millisecond))
	}
}

// refused reports whether a node answered a call with a refusal that a
// retry will not change.
func refused(err error) bool {
	var ce *api.CallError
	return errors.As(err, &ce) && ce.Status == http.StatusBadRequest
}

func callMessage(err error) string {
	var ce *api.CallError
	if errors.As(err, &ce) {
		return ce.Code + ": " + ce.Message
	}
	return err.Error()
}

// sleep waits d or until the cluster stops; false when it stops.
func (c *Cluster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// accepted records a node's answer to a launch: the instance is acked.
func (c *Cluster) accepted(id, node string, st api.InstanceStatus) {
	err := c.change(func(t *tx) error {
		in := t.inst(id)
		if in == nil || in.Spec.Node != node {
			return nil
		}
		cp := *in
		dirty := !cp.Acked
		cp.Acked = true
		if merge(&cp, st) {
			dirty = true
		}
		if dirty {
			t.putInst(&cp)
		}
		return nil
	})
	if err != nil {
		c.log.Error("recording launch", "instance_id", id, "err", err)
	}
}

// fail ends an instance terminated with reason, unless it ended already
// or, for a launch that failed (force false), the node accepted the
// instance meanwhile.
func (c *Cluster) fail(id string, force bool, reason *api.Reason) {
	err := c.change(func(t *tx) error {
		in := t.inst(id)
		if in == nil || !in.Holds() || (!force && in.Acked && in.Desired != api.Terminated) {
			return nil
		}
		cp := *in
		cp.Desired = api.Terminated
		cp.Status.State, cp.Status.Reason, cp.Status.Since = api.Terminated, reason, t.now
		t.putInst(&cp)
		return nil
	})
	if err != nil {
		c.log.Error("ending instance", "instance_id", id, "err", err)
	}
}

// merge takes a node's report of an instance into in when it is newer
// than the last one merged; it reports whether in changed. While the
// cluster wants the instance terminated it shows shutting-down until the
// node says terminated; a terminated instance stays so. The host device
// of the guest's NIC is always the node's latest word.
func merge(in *state.Instance, r api.InstanceStatus) bool {
	if !in.Holds() || (r.Generation != 0 && r.Generation <= in.NodeGeneration) {
		return false
	}
	in.NodeGeneration = max(in.NodeGeneration, r.Generation)
	st := r.State
	if st == "" {
		return false
	}
	iface := in.Status.Iface != r.Iface
	in.Status.Iface = r.Iface
	if in.Desired == api.Terminated && st != api.Terminated {
		if in.Status.State == api.ShuttingDown {
			return iface
		}
		in.Status.State, in.Status.Since = api.ShuttingDown, time.Now().UTC()
		return true
	}
	if st == api.Terminated {
		in.Desired = api.Terminated
	}
	if st == in.Status.State && sameReason(r.Reason, in.Status.Reason) && r.Since.Equal(in.Status.Since) {
		return iface
	}
	in.Status.State, in.Status.Reason = st, r.Reason
	if !r.Since.IsZero() {
		in.Status.Since = r.Since
	}
	return true
}

func sameReason(a, b *api.Reason) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// endAsync drives a termination in the background, once at a time.
func (c *Cluster) endAsync(id string) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.ending[id] {
		return
	}
	if c.goLocked(func() { c.end(id) }) {
		c.ending[id] = true
	}
}

// end asks the instance's node to terminate it until the node reports
// it terminated. When the node cannot be reached, or is DOWN, for
// LaunchTimeout after the termination was asked, the instance ends
// terminated all the same.
func (c *Cluster) end(id string) {
	defer func() {
		c.bgMu.Lock()
		delete(c.ending, id)
		c.bgMu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	for {
		in := c.instance(id)
		if in == nil || !in.Holds() || in.Desired != api.Terminated {
			return
		}
		n := c.node(in.Spec.Node)
		if n == nil {
			c.fail(id, true, internalReason("node %s is not registered", in.Spec.Node))
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, attemptTimeout)
		st, err := c.client(n.URL).Act(ctx, id, api.VerbTerminate, api.ActionRequest{})
		cancel()
		if c.ctx.Err() != nil {
			return
		}
		late := time.Since(in.Since) >= c.opt.LaunchTimeout
		switch {
		case err == nil && st.State == api.Terminated:
			c.accepted(id, n.Name, st)
			return
		case err == nil:
			c.accepted(id, n.Name, st)
			if late && !c.isUp(n.Name) {
				c.fail(id, true, internalReason("node %s went down while terminating the instance", n.Name))
				return
			}
			backoff = max(c.opt.Poll, 50*time.Millisecond)
		case late:
			c.log.Warn("terminate timed out", "instance_id", id, "node", n.Name, "err", err)
			c.fail(id, true, internalReason("could not reach node %s: %v", n.Name, err))
			return
		default:
			c.log.Debug("terminate retry", "instance_id", id, "node", n.Name, "err", err)
			backoff = min(backoff*2, max(c.opt.Heartbeat, 50*time.Millisecond))
		}
		if !c.sleep(backoff) {
			return
		}
	}
}

// kill terminates on a node an instance the cluster does not want there
// (unknown to it, or terminated): one attempt, in the background.
func (c *Cluster) kill(node, url, id string) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.killing[id] {
		return
	}
	ok := c.goLocked(func() {
		defer func() {
			c.bgMu.Lock()
			delete(c.killing, id)
			c.bgMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(c.ctx, attemptTimeout)
		defer cancel()
		if _, err := c.client(url).Act(ctx, id, api.VerbTerminate, api.ActionRequest{}); err != nil {
			c.log.Warn("terminating orphan", "instance_id", id, "node", node, "err", err)
			return
		}
		c.log.Info("terminated orphan", "instance_id", id, "node", node)
	})
	if ok {
		c.killing[id] = true
	}
}

// relaunchOnce re-sends the launch of an acked instance its node did not
// report, once until the node reports it again.
func (c *Cluster) relaunchOnce(node, url, id string) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.relaunch[id] {
		return
	}
	ok := c.goLocked(func() {
		in := c.instance(id)
		if in == nil || !in.Holds() || in.Desired != api.Running {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, attemptTimeout)
		defer cancel()
		st, err := c.client(url).Launch(ctx, in.Spec)
		if err != nil {
			c.log.Warn("relaunch", "instance_id", id, "node", node, "err", err)
			return
		}
		c.log.Info("relaunched instance the node did not report", "instance_id", id, "node", node)
		c.accepted(id, node, st)
	})
	if ok {
		c.relaunch[id] = true
	}
}
