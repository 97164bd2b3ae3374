package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/placement"
	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

var small = api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}}

// room is a node capacity for n small instances.
func room(n int) sched.Resources { return small.Resources.Times(n) }

// newTestCluster opens a cluster that is not started (no background
// work) with UP nodes of the given capacities, named n0, n1, ...
func newTestCluster(t *testing.T, policy sched.Policy, caps ...sched.Resources) *Cluster {
	t.Helper()
	pool, err := placement.NewPool("10.0.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	return newPoolCluster(t, pool, policy, caps...)
}

// newPoolCluster is newTestCluster leasing from pool.
func newPoolCluster(t *testing.T, pool *placement.Pool, policy sched.Policy, caps ...sched.Resources) *Cluster {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := Open(db, Options{Zone: "z1", Policy: policy, Pool: pool, Heartbeat: time.Second, Poll: time.Second,
		LaunchTimeout: time.Minute, KeepTerminated: time.Hour, Dial: func(string) NodeClient { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, capacity := range caps {
		name := fmt.Sprintf("n%d", i)
		if _, err := c.RegisterNode(ctx, name, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
		if err := c.Report(ctx, name, api.NodeStatus{Name: name, Capacity: capacity}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func specs(prefix string, n int) []api.InstanceSpec {
	out := make([]api.InstanceSpec, n)
	for i := range out {
		out[i] = api.InstanceSpec{ID: fmt.Sprintf("i-%s%d", prefix, i), LaunchIndex: i, Type: small}
	}
	return out
}

func nodesOf(r api.RunResponse) []string {
	var out []string
	for _, s := range r.Instances {
		out = append(out, s.Node)
	}
	return out
}

func TestPlacement(t *testing.T) {
	type run struct {
		n, min  int
		nodes   string // nodes of the answer, space-separated; "" for an error
		errCode error
	}
	tests := []struct {
		name   string
		policy sched.Policy
		caps   []sched.Resources
		runs   []run
	}{
		{name: "greedy fills the first node", policy: sched.Greedy, caps: []sched.Resources{room(2), room(2)},
			runs: []run{{n: 1, nodes: "n0"}, {n: 1, nodes: "n0"}, {n: 1, nodes: "n1"}}},
		{name: "greedy in one request", policy: sched.Greedy, caps: []sched.Resources{room(2), room(2)},
			runs: []run{{n: 3, nodes: "n0 n0 n1"}}},
		{name: "round robin alternates across requests", policy: sched.RoundRobin, caps: []sched.Resources{room(4), room(4)},
			runs: []run{{n: 1, nodes: "n0"}, {n: 1, nodes: "n1"}, {n: 1, nodes: "n0"}, {n: 1, nodes: "n1"}}},
		{name: "round robin alternates within a request", policy: sched.RoundRobin, caps: []sched.Resources{room(4), room(4), room(4)},
			runs: []run{{n: 4, nodes: "n0 n1 n2 n0"}, {n: 2, nodes: "n1 n2"}}},
		{name: "round robin skips a full node", policy: sched.RoundRobin, caps: []sched.Resources{room(1), room(4)},
			runs: []run{{n: 3, nodes: "n0 n1 n1"}}},
		{name: "spread takes the emptiest", policy: sched.Spread, caps: []sched.Resources{room(4), room(4)},
			runs: []run{{n: 1, nodes: "n0"}, {n: 3, nodes: "n1 n0 n1"}}},
		{name: "capacity exhausted", policy: sched.Greedy, caps: []sched.Resources{room(1), room(1)},
			runs: []run{{n: 2, nodes: "n0 n1"}, {n: 1, errCode: ErrCapacity}}},
		{name: "no nodes", policy: sched.RoundRobin, runs: []run{{n: 1, errCode: ErrCapacity}}},
		{name: "min count partial", policy: sched.Greedy, caps: []sched.Resources{room(2), room(1)},
			runs: []run{{n: 5, min: 2, nodes: "n0 n0 n1"}}},
		{name: "min count not met stores nothing", policy: sched.Greedy, caps: []sched.Resources{room(2), room(1)},
			runs: []run{{n: 5, min: 4, errCode: ErrCapacity}, {n: 3, nodes: "n0 n0 n1"}}},
		{name: "all or nothing by default", policy: sched.Greedy, caps: []sched.Resources{room(2)},
			runs: []run{{n: 3, errCode: ErrCapacity}, {n: 2, nodes: "n0 n0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.policy, tc.caps...)
			for k, r := range tc.runs {
				res, err := c.Run(context.Background(), api.RunRequest{MinCount: r.min, Instances: specs(fmt.Sprint(k, "-"), r.n)})
				if r.errCode != nil {
					if !errors.Is(err, r.errCode) {
						t.Fatalf("run %d: error %v, want %v", k, err, r.errCode)
					}
					continue
				}
				if err != nil {
					t.Fatalf("run %d: %v", k, err)
				}
				if got := fmt.Sprint(nodesOf(res)); got != "["+r.nodes+"]" {
					t.Fatalf("run %d: nodes %s, want [%s]", k, got, r.nodes)
				}
			}
			checkConsistent(t, c)
		})
	}
}

func TestCapacityMessage(t *testing.T) {
	c := newTestCluster(t, sched.Greedy, room(1))
	_, err := c.Run(context.Background(), api.RunRequest{MinCount: 3, Instances: specs("a", 3)})
	want := "There is not enough capacity in zone z1 for 3 instance(s) of type m1.small"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if len(c.Instances()) != 0 || len(c.leases) != 0 {
		t.Fatal("a refused run stored something")
	}
}

func TestRunIsIdempotentAndLeases(t *testing.T) {
	c := newTestCluster(t, sched.RoundRobin, room(4), room(4))
	ctx := context.Background()
	req := api.RunRequest{MinCount: 1, Instances: specs("a", 3)}
	first, err := c.Run(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range first.Instances {
		ip := fmt.Sprintf("10.0.0.%d", i+2)
		if s.PrivateIP != ip || s.MAC != placement.MAC(ip) {
			t.Errorf("%s: ip %s mac %s, want %s", s.ID, s.PrivateIP, s.MAC, ip)
		}
	}
	again, err := c.Run(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("repeat answered %+v, first %+v", again, first)
	}
	// A request adding one to those taken places only the new one.
	more, err := c.Run(ctx, api.RunRequest{MinCount: 4, Instances: specs("a", 4)})
	if err != nil || len(more.Instances) != 4 || more.Instances[3].PrivateIP != "10.0.0.5" || more.Instances[3].Node != "n1" {
		t.Fatalf("extended repeat: %v %+v", err, more)
	}
	if len(c.leases) != 4 || len(c.Instances()) != 4 {
		t.Fatalf("%d leases, %d instances", len(c.leases), len(c.Instances()))
	}
	// The node reports one terminated: its lease and room come back.
	gone := first.Instances[0]
	err = c.Report(ctx, gone.Node, api.NodeStatus{Name: gone.Node, Capacity: room(4), Instances: []api.InstanceStatus{
		{ID: gone.ID, State: api.Terminated, Generation: 7},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.leases[gone.PrivateIP] != "" {
		t.Fatal("the lease of a terminated instance is kept")
	}
	res, err := c.Run(ctx, api.RunRequest{Instances: specs("b", 1)})
	if err != nil || res.Instances[0].PrivateIP != gone.PrivateIP {
		t.Fatalf("address not reused: %v %+v", err, res)
	}
	checkConsistent(t, c)
}

// TestStaticLeases checks STATIC mode's leases: only the MAC map's
// addresses, each with its MAC, and no more instances than it has.
func TestStaticLeases(t *testing.T) {
	pool, err := placement.NewStaticPool("10.0.0.0/24", []string{"52:54:00:00:00:09=10.0.0.9", "52:54:00:00:00:07=10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	c := newPoolCluster(t, pool, sched.Greedy, room(4))
	res, err := c.Run(context.Background(), api.RunRequest{MinCount: 1, Instances: specs("s", 3)})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(res.Instances[0].PrivateIP, res.Instances[0].MAC, res.Instances[1].PrivateIP, res.Instances[1].MAC, len(res.Instances))
	if want := fmt.Sprint("10.0.0.7", "52:54:00:00:00:07", "10.0.0.9", "52:54:00:00:00:09", 2); got != want {
		t.Errorf("leases %s, want %s", got, want)
	}
	_, err = c.Run(context.Background(), api.RunRequest{MinCount: 1, Instances: specs("t", 1)})
	var ce *CapacityError
	if !errors.As(err, &ce) || !ce.Addresses {
		t.Errorf("a run past the map: %v, want a capacity error for addresses", err)
	}
	checkConsistent(t, c)
}

func TestDownNodesTakeNothing(t *testing.T) {
	c := newTestCluster(t, sched.Greedy, room(2), room(2))
	c.opt.Heartbeat = time.Nanosecond
	c.mu.Lock()
	c.seen["n0"] = time.Now().Add(-time.Hour)
	c.seen["n1"] = time.Now().Add(time.Hour)
	c.mu.Unlock()
	c.markDown()
	res, err := c.Run(context.Background(), api.RunRequest{Instances: specs("a", 2)})
	if err != nil || fmt.Sprint(nodesOf(res)) != "[n1 n1]" {
		t.Fatalf("%v %v", err, nodesOf(res))
	}
	rs := c.Resources(context.Background(), api.ResourcesRequest{Types: []api.VMType{small}})
	if rs.Nodes != 2 || rs.Up != 1 || rs.Types[0].Free != 0 || rs.Types[0].Max != 2 {
		t.Fatalf("resources %+v", rs)
	}
}

func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	pool, _ := placement.NewPool("10.0.0.0/24")
	opt := Options{Zone: "z1", Policy: sched.RoundRobin, Pool: pool, Heartbeat: time.Second, Poll: time.Second,
		LaunchTimeout: time.Minute, KeepTerminated: time.Hour, Dial: func(string) NodeClient { return nil }}
	open := func() (*Cluster, *store.DB) {
		db, err := store.Open(path, state.Schema, store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(db, opt)
		if err != nil {
			t.Fatal(err)
		}
		return c, db
	}
	ctx := context.Background()
	c, db := open()
	for _, n := range []string{"a", "b"} {
		if _, err := c.RegisterNode(ctx, n, "http://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
		if err := c.Report(ctx, n, api.NodeStatus{Name: n, Capacity: room(4)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Run(ctx, api.RunRequest{Instances: specs("a", 1)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c, db = open()
	defer db.Close()
	res, err := c.Run(ctx, api.RunRequest{Instances: specs("b", 1)})
	if err != nil || res.Instances[0].Node != "b" || res.Instances[0].PrivateIP != "10.0.0.3" {
		t.Fatalf("after reopening: %v %+v", err, res)
	}
	checkConsistent(t, c)
}

// checkConsistent compares the mirror with the database and checks the
// leases against the instances.
func checkConsistent(t *testing.T, c *Cluster) {
	t.Helper()
	d, err := Open(c.db, c.opt)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.insts) == "" || len(d.insts) != len(c.insts) || len(d.leases) != len(c.leases) || len(d.nodes) != len(c.nodes) ||
		d.settings != c.settings {
		t.Fatalf("database and memory differ: %d/%d instances, %d/%d leases", len(d.insts), len(c.insts), len(d.leases), len(c.leases))
	}
	holders := 0
	for id, in := range d.insts {
		if in.Generation != in.Status.Generation || in.Status.ID != id {
			t.Errorf("%s: record %+v", id, in)
		}
		if in.Holds() {
			holders++
			if d.leases[in.Spec.PrivateIP] != id {
				t.Errorf("%s: lease of %s is %q", id, in.Spec.PrivateIP, d.leases[in.Spec.PrivateIP])
			}
		}
	}
	if holders != len(d.leases) {
		t.Errorf("%d leases for %d live instances", len(d.leases), holders)
	}
}
