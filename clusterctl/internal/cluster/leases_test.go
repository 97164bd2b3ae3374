package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/koala-cloud/koala/clusterctl/internal/placement"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

func TestLeasesAndTheirChanges(t *testing.T) {
	c := newTestCluster(t, sched.Greedy, room(4))
	changes := 0
	c.opt.LeasesChanged = func() { changes++ }
	ctx := context.Background()
	in := specs("a", 2)
	in[1].Groups = []string{"sg-1", "sg-2"}
	run, err := c.Run(ctx, api.RunRequest{Instances: in})
	if err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Errorf("placing two instances: %d lease notifications, want 1", changes)
	}
	got := fmt.Sprint(c.Leases())
	want := fmt.Sprint([]Lease{{"10.0.0.2", placement.MAC("10.0.0.2"), "i-a0", nil},
		{"10.0.0.3", placement.MAC("10.0.0.3"), "i-a1", []string{"sg-1", "sg-2"}}})
	if got != want {
		t.Errorf("leases %s, want %s", got, want)
	}

	// A report that changes no lease notifies nothing.
	if err := c.Report(ctx, "n0", api.NodeStatus{Name: "n0", Capacity: room(4)}); err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Errorf("a report without lease changes notified: %d", changes)
	}

	gone := run.Instances[0]
	err = c.Report(ctx, gone.Node, api.NodeStatus{Name: gone.Node, Capacity: room(4), Instances: []api.InstanceStatus{
		{ID: gone.ID, State: api.Terminated, Generation: 3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if changes != 2 {
		t.Errorf("a termination: %d lease notifications, want 2", changes)
	}
	if l := c.Leases(); len(l) != 1 || l[0].Instance != "i-a1" {
		t.Errorf("leases after a termination: %v", l)
	}
}
