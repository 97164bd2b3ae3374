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
	want := fmt.Sprint([]Lease{{"10.0.0.2", placement.MAC("10.0.0.2"), "i-a0", nil, ""},
		{"10.0.0.3", placement.MAC("10.0.0.3"), "i-a1", []string{"sg-1", "sg-2"}, ""}})
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

func TestIfaceFromReports(t *testing.T) {
	c := newTestCluster(t, sched.Greedy, room(4))
	changes := 0
	c.opt.LeasesChanged = func() { changes++ }
	ctx := context.Background()
	run, err := c.Run(ctx, api.RunRequest{Instances: specs("b", 2)})
	if err != nil {
		t.Fatal(err)
	}
	in := run.Instances[0]
	changes = 0
	iface := func() string {
		for _, l := range c.Leases() {
			if l.Instance == in.ID {
				return l.Iface
			}
		}
		return "(no lease)"
	}
	steps := []struct {
		name    string
		report  api.InstanceStatus
		iface   string
		changes int
	}{
		{"running with a device", api.InstanceStatus{State: api.Running, Iface: "vnet3", Generation: 2}, "vnet3", 1},
		{"the same again", api.InstanceStatus{State: api.Running, Iface: "vnet3", Generation: 3}, "vnet3", 1},
		{"an older report", api.InstanceStatus{State: api.Running, Iface: "vnet9", Generation: 1}, "vnet3", 1},
		{"restarted on another device", api.InstanceStatus{State: api.Running, Iface: "vnet5", Generation: 4}, "vnet5", 2},
		{"stopped", api.InstanceStatus{State: api.Stopped, Generation: 5}, "", 3},
		{"terminated", api.InstanceStatus{State: api.Terminated, Generation: 6}, "(no lease)", 4},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := s.report
			r.ID = in.ID
			if err := c.Report(ctx, in.Node, api.NodeStatus{Name: in.Node, Capacity: room(4), Instances: []api.InstanceStatus{r}}); err != nil {
				t.Fatal(err)
			}
			if got := iface(); got != s.iface {
				t.Errorf("lease iface %q, want %q", got, s.iface)
			}
			if changes != s.changes {
				t.Errorf("%d lease notifications, want %d", changes, s.changes)
			}
		})
		if s.name == "running with a device" {
			if st := c.instance(in.ID).Status; st.Iface != "vnet3" {
				t.Errorf("instance status iface %q, want vnet3", st.Iface)
			}
		}
	}
}
