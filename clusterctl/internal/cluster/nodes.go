package cluster

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// NodeInfo is a node as `clusterctl node list` shows it.
type NodeInfo struct {
	Name      string          `json:"name"`
	URL       string          `json:"url"`
	State     string          `json:"state"`
	Capacity  sched.Resources `json:"capacity"`
	Free      sched.Resources `json:"free"`
	Instances int             `json:"instances"`
	LastSeen  time.Time       `json:"last_seen,omitzero"`
}

// Nodes lists the registered nodes in registration order.
func (c *Cluster) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	c.readTx(func(t *tx) {
		used := t.usage()
		for _, n := range c.nodes {
			u := used[n.Name]
			out = append(out, NodeInfo{Name: n.Name, URL: n.URL, State: n.State, Capacity: n.Capacity,
				Free: n.Capacity.Sub(u.res), Instances: u.count, LastSeen: c.seen[n.Name]})
		}
		sort.Slice(out, func(i, j int) bool { return c.nodes[out[i].Name].Seq < c.nodes[out[j].Name].Seq })
	})
	if out == nil {
		out = []NodeInfo{}
	}
	return out, nil
}

// RegisterNode adds a node, DOWN until it is heard of; registering it
// again changes its URL.
func (c *Cluster) RegisterNode(ctx context.Context, name, rawURL string) (NodeInfo, error) {
	if name == "" || len(name) > 255 {
		return NodeInfo{}, fmt.Errorf("%w: node name %q", ErrInvalid, name)
	}
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return NodeInfo{}, fmt.Errorf("%w: node url %q is not http(s)://host:port", ErrInvalid, rawURL)
	}
	var out state.Node
	err := c.change(func(t *tx) error {
		if n := t.node(name); n != nil {
			out = *n
			if n.URL != rawURL {
				out.URL = rawURL
				t.nodes[name] = &out
			}
			return nil
		}
		s := t.settingsCopy()
		s.NodeSeq++
		out = state.Node{Name: name, URL: rawURL, Seq: s.NodeSeq, State: state.Down}
		t.nodes[name] = &out
		return nil
	})
	if err != nil {
		return NodeInfo{}, err
	}
	c.log.Info("node registered", "node", name, "url", rawURL)
	c.pollOne(name)
	return NodeInfo{Name: out.Name, URL: out.URL, State: out.State, Capacity: out.Capacity, Free: out.Capacity}, nil
}

// DeregisterNode removes a node. Its live instances are terminated on
// it when it answers, and end terminated with a reason either way.
func (c *Cluster) DeregisterNode(ctx context.Context, name string) error {
	n := c.node(name)
	if n == nil {
		return fmt.Errorf("%w: %s", ErrNoNode, name)
	}
	var live []string
	c.mu.RLock()
	for id, in := range c.insts {
		if in.Spec.Node == name && in.Holds() {
			live = append(live, id)
		}
	}
	c.mu.RUnlock()
	// Best effort, a few at a time: the instances end terminated anyway.
	cl := c.client(n.URL)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, id := range live {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := cl.Act(actx, id, api.VerbTerminate, api.ActionRequest{}); err != nil {
				c.log.Warn("terminate on deregistered node", "instance_id", id, "node", name, "err", err)
			}
		}()
	}
	wg.Wait()
	reason := internalReason("node %s was deregistered", name)
	err := c.change(func(t *tx) error {
		if t.node(name) == nil {
			return fmt.Errorf("%w: %s", ErrNoNode, name)
		}
		for _, in := range t.c.insts {
			if in.Spec.Node == name && in.Holds() {
				cp := *in
				cp.Desired = api.Terminated
				cp.Status.State, cp.Status.Reason, cp.Status.Since = api.Terminated, reason, t.now
				t.putInst(&cp)
			}
		}
		t.nodes[name] = nil
		return nil
	})
	if err != nil {
		return err
	}
	c.log.Info("node deregistered", "node", name, "instances_terminated", len(live))
	return nil
}

// Resources answers how many instances of each type fit in the UP
// nodes now (Free) and when they are empty (Max).
func (c *Cluster) Resources(ctx context.Context, req api.ResourcesRequest) api.ClusterResources {
	out := api.ClusterResources{Zone: c.opt.Zone, Types: make([]api.TypeSlots, 0, len(req.Types))}
	c.readTx(func(t *tx) {
		up, _ := t.upNodes()
		out.Nodes, out.Up = len(c.nodes), len(up)
		for _, vt := range req.Types {
			free, most := sched.Slots(up, vt.Resources)
			out.Types = append(out.Types, api.TypeSlots{VMType: vt, Free: free, Max: most})
		}
	})
	return out
}
