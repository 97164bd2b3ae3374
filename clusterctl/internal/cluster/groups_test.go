package cluster

import (
	"context"
	"reflect"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

func TestSetGroups(t *testing.T) {
	c := newTestCluster(t, sched.Greedy)
	changes := 0
	c.opt.NetworkChanged = func() { changes++ }
	if gs, received := c.Groups(); received || gs != nil {
		t.Fatalf("new cluster: groups %v, received %v", gs, received)
	}
	set := []api.Group{{ID: "sg-1", Ingress: []api.GroupRule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"10.0.0.0/8"}}}}}
	if err := c.SetGroups(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Errorf("%d group notifications, want 1", changes)
	}
	reopened, err := Open(c.db, c.opt)
	if err != nil {
		t.Fatal(err)
	}
	if gs, received := reopened.Groups(); !received || !reflect.DeepEqual(gs, set) {
		t.Errorf("reopened: groups %v, received %v; want %v", gs, received, set)
	}
	if err := c.SetGroups(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if gs, received := c.Groups(); !received || len(gs) != 0 {
		t.Errorf("after an empty set: groups %v, received %v", gs, received)
	}
}
