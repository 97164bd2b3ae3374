package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
)

// Report merges a node's status, pushed by the node or polled from it:
// the node is UP with the reported capacity; each instance it reports
// that the cluster does not want there is terminated on it; the others'
// newer states are taken; acked instances it should run but did not
// report are launched again, once. ErrNoNode for a node not registered.
func (c *Cluster) Report(ctx context.Context, name string, st api.NodeStatus) error {
	type target struct{ node, url, id string }
	var kills, relaunch []target
	reported := map[string]bool{}
	err := c.change(func(t *tx) error {
		kills, relaunch = kills[:0], relaunch[:0]
		n := t.node(name)
		if n == nil {
			return fmt.Errorf("%w: %s", ErrNoNode, name)
		}
		t.seen[name] = t.now
		if n.State != state.Up || n.Capacity != st.Capacity {
			cp := *n
			if cp.State != state.Up {
				c.log.Info("node up", "node", name, "capacity", fmt.Sprintf("%+v", st.Capacity))
			}
			cp.State, cp.Capacity, cp.LastSeen = state.Up, st.Capacity, t.now
			t.nodes[name] = &cp
		}
		for _, r := range st.Instances {
			reported[r.ID] = true
			in := t.inst(r.ID)
			if in == nil || in.Spec.Node != name || !in.Holds() {
				if r.State != api.Terminated {
					kills = append(kills, target{name, n.URL, r.ID})
				}
				continue
			}
			cp := *in
			dirty := !cp.Acked
			cp.Acked = true
			if merge(&cp, r) {
				dirty = true
			}
			if dirty {
				t.putInst(&cp)
			}
			if cp.Desired == api.Terminated && r.State != api.Terminated && r.State != api.ShuttingDown {
				kills = append(kills, target{name, n.URL, r.ID})
			}
		}
		for id, in := range t.c.insts {
			if in.Spec.Node == name && in.Acked && in.Desired == api.Running && in.Holds() && !reported[id] {
				relaunch = append(relaunch, target{name, n.URL, id})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.bgMu.Lock()
	for id := range reported {
		delete(c.relaunch, id)
	}
	c.bgMu.Unlock()
	for _, k := range kills {
		c.kill(k.node, k.url, k.id)
	}
	for _, r := range relaunch {
		c.relaunchOnce(r.node, r.url, r.id)
	}
	return nil
}

// isUp reports whether a node is UP.
func (c *Cluster) isUp(name string) bool {
	n := c.node(name)
	return n != nil && n.State == state.Up
}

// loop is the reconcile loop: every Poll it polls every node, marks
// DOWN the nodes not heard of for three heartbeats, resumes launches and
// terminations, forgets old terminated instances, and retries the event
// push.
func (c *Cluster) loop() {
	t := time.NewTicker(c.opt.Poll)
	defer t.Stop()
	for {
		c.reconcile()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) reconcile() {
	c.pollNodes()
	c.markDown()
	c.sweep()
	if c.events != nil {
		c.events.retry()
	}
}

// pollNodes asks every node for its status, at once, and merges the
// answers.
func (c *Cluster) pollNodes() {
	c.mu.RLock()
	nodes := make([]*state.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.mu.RUnlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.pollNode(n)
		}()
	}
	wg.Wait()
}

func (c *Cluster) pollNode(n *state.Node) {
	ctx, cancel := context.WithTimeout(c.ctx, max(c.opt.Heartbeat, time.Second))
	defer cancel()
	st, err := c.client(n.URL).Node(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Debug("poll node", "node", n.Name, "err", err)
		}
		return
	}
	if st.Name != "" && st.Name != n.Name {
		c.log.Warn("node answers with another name", "node", n.Name, "url", n.URL, "name", st.Name)
		return
	}
	if err := c.Report(ctx, n.Name, st); err != nil && c.ctx.Err() == nil {
		c.log.Warn("merge node status", "node", n.Name, "err", err)
	}
}

// pollOne polls a node now, in the background (after its registration).
func (c *Cluster) pollOne(name string) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	c.goLocked(func() {
		if n := c.node(name); n != nil {
			c.pollNode(n)
		}
	})
}

// markDown marks DOWN the UP nodes neither pushed nor polled
// successfully for three heartbeats.
func (c *Cluster) markDown() {
	err := c.change(func(t *tx) error {
		for name, n := range t.c.nodes {
			if n.State == state.Up && t.now.Sub(t.c.seen[name]) > 3*c.opt.Heartbeat {
				cp := *n
				cp.State, cp.LastSeen = state.Down, t.c.seen[name]
				t.nodes[name] = &cp
				c.log.Warn("node down", "node", name, "last_seen", cp.LastSeen)
			}
		}
		return nil
	})
	if err != nil {
		c.log.Error("mark nodes down", "err", err)
	}
}

// sweep resumes the launches and terminations not in progress, and
// forgets terminated instances older than KeepTerminated.
func (c *Cluster) sweep() {
	var launch, end, old []string
	cutoff := time.Now().Add(-c.opt.KeepTerminated)
	c.mu.RLock()
	for id, in := range c.insts {
		switch {
		case !in.Holds():
			if in.Status.Since.Before(cutoff) {
				old = append(old, id)
			}
		case in.Desired == api.Terminated:
			end = append(end, id)
		case in.Desired == api.Running && !in.Acked:
			launch = append(launch, id)
		}
	}
	c.mu.RUnlock()
	for _, id := range launch {
		c.dispatch(id)
	}
	for _, id := range end {
		c.endAsync(id)
	}
	if len(old) == 0 {
		return
	}
	err := c.change(func(t *tx) error {
		for _, id := range old {
			if in := t.inst(id); in != nil && !in.Holds() {
				t.insts[id] = nil
				if ip := in.Spec.PrivateIP; ip != "" && t.lease(ip) == id {
					t.leases[ip] = ""
				}
			}
		}
		return nil
	})
	if err != nil {
		c.log.Error("forget terminated instances", "err", err)
	}
}
