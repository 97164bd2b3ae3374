package instances

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/secgroups"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

func TestGroupRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   secgroups.Rule
		want *api.GroupRule // nil: skipped
	}{
		{"tcp cidr", secgroups.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"},
			&api.GroupRule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"10.0.0.0/8"}}},
		{"udp range", secgroups.Rule{Protocol: "udp", FromPort: 1000, ToPort: 2000, CIDR: "0.0.0.0/0"},
			&api.GroupRule{Protocol: "udp", FromPort: 1000, ToPort: 2000, CIDRs: []string{"0.0.0.0/0"}}},
		{"icmp type and code", secgroups.Rule{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDR: "192.168.0.0/16"},
			&api.GroupRule{Protocol: "icmp", FromPort: 8, ToPort: -1, CIDRs: []string{"192.168.0.0/16"}}},
		{"all", secgroups.Rule{Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"},
			&api.GroupRule{Protocol: "all", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}},
		{"all any ports", secgroups.Rule{Protocol: "-1", FromPort: 0, ToPort: 0, CIDR: "0.0.0.0/0"},
			&api.GroupRule{Protocol: "all", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}},
		{"6 is tcp", secgroups.Rule{Protocol: "6", FromPort: -1, ToPort: -1, CIDR: "10.0.0.0/8"},
			&api.GroupRule{Protocol: "tcp", FromPort: -1, ToPort: -1, CIDRs: []string{"10.0.0.0/8"}}},
		{"17 is udp", secgroups.Rule{Protocol: "17", FromPort: 53, ToPort: 53, CIDR: "10.0.0.0/8"},
			&api.GroupRule{Protocol: "udp", FromPort: 53, ToPort: 53, CIDRs: []string{"10.0.0.0/8"}}},
		{"1 is icmp", secgroups.Rule{Protocol: "1", FromPort: -1, ToPort: -1, CIDR: "10.0.0.0/8"},
			&api.GroupRule{Protocol: "icmp", FromPort: -1, ToPort: -1, CIDRs: []string{"10.0.0.0/8"}}},
		{"source group", secgroups.Rule{Protocol: "tcp", FromPort: 80, ToPort: 443, GroupID: "sg-src", GroupOwner: acct},
			&api.GroupRule{Protocol: "tcp", FromPort: 80, ToPort: 443, SourceGroups: []string{"sg-src"}}},
		{"icmpv6 skipped", secgroups.Rule{Protocol: "icmpv6", FromPort: -1, ToPort: -1, CIDRv6: "::/0"}, nil},
		{"58 skipped", secgroups.Rule{Protocol: "58", FromPort: -1, ToPort: -1, CIDR: "10.0.0.0/8"}, nil},
		{"other number skipped", secgroups.Rule{Protocol: "47", FromPort: -1, ToPort: -1, CIDR: "10.0.0.0/8"}, nil},
		{"ipv6 peer skipped", secgroups.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRv6: "2001:db8::/32"}, nil},
		{"all ipv6 peer skipped", secgroups.Rule{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRv6: "::/0"}, nil},
		{"no peer skipped", secgroups.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := groupRule(tc.in)
			switch {
			case tc.want == nil && ok:
				t.Errorf("got %+v, want it skipped", got)
			case tc.want != nil && !ok:
				t.Errorf("skipped, want %+v", *tc.want)
			case tc.want != nil && !reflect.DeepEqual(got, *tc.want):
				t.Errorf("got %+v, want %+v", got, *tc.want)
			}
		})
	}
}

// putGroups stores security groups as they are.
func (e *env) putGroups(t *testing.T, gs ...secgroups.Group) {
	t.Helper()
	err := e.db.Update(func(tx *store.Tx) error {
		for _, g := range gs {
			if err := secgroups.Put(tx, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inGroups returns in as a member of the groups.
func inGroups(in Instance, ids ...string) Instance {
	in.Groups = nil
	for _, id := range ids {
		in.Groups = append(in.Groups, Group{ID: id, Name: id})
	}
	return in
}

func groupIDs(req api.GroupsRequest) []string {
	ids := []string{}
	for _, g := range req.Groups {
		ids = append(ids, g.ID)
	}
	return ids
}

func TestSyncNetworkPerZone(t *testing.T) {
	e := newEnv(t, Config{}, "z-a", "z-b", "z-c")
	tcp22 := secgroups.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"}
	from := func(id string) secgroups.Rule {
		return secgroups.Rule{Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: id, GroupOwner: acct}
	}
	e.putGroups(t,
		// sg-web admits sg-lb, which admits sg-edge: both are sources.
		secgroups.Group{ID: "sg-web", Owner: acct, Ingress: []secgroups.Rule{tcp22, from("sg-lb"), from("sg-web")},
			Egress: []secgroups.Rule{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}},
		secgroups.Group{ID: "sg-lb", Owner: acct, Ingress: []secgroups.Rule{from("sg-edge")}},
		secgroups.Group{ID: "sg-edge", Owner: acct},
		// A source named only by a rule the cluster does not get.
		secgroups.Group{ID: "sg-v6", Owner: acct, Ingress: []secgroups.Rule{
			{Protocol: "icmpv6", FromPort: -1, ToPort: -1, GroupID: "sg-v6src", GroupOwner: acct}}},
		secgroups.Group{ID: "sg-v6src", Owner: acct},
		secgroups.Group{ID: "sg-db", Owner: acct, Ingress: []secgroups.Rule{tcp22}},
		secgroups.Group{ID: "sg-old", Owner: acct, Ingress: []secgroups.Rule{tcp22}},
		secgroups.Group{ID: "sg-other", Owner: other},
	)
	e.put(t,
		inGroups(inst("i-1", "z-a", api.Running), "sg-web"),
		inGroups(inst("i-2", "z-a", api.Stopped), "sg-v6"),
		inGroups(inst("i-3", "z-a", api.Pending), "sg-gone"), // deleted meanwhile
		inGroups(inst("i-4", "z-a", api.Terminated), "sg-old"),
		inGroups(inst("i-5", "z-b", api.Running), "sg-db"),
		edit(inGroups(inst("i-6", "z-b", api.ShuttingDown), "sg-other"), func(in *Instance) { in.Owner = other }),
	)
	e.c.SyncNetwork(t.Context())

	want := map[string][]string{
		"z-a": {"sg-edge", "sg-lb", "sg-v6", "sg-web"},
		"z-b": {"sg-db", "sg-other"},
		"z-c": {},
	}
	for zone, ids := range want {
		got := e.clusters[zone].gotGroups()
		if len(got) != 1 {
			t.Fatalf("%s got %d puts, want 1", zone, len(got))
		}
		if !slices.Equal(groupIDs(got[0]), ids) {
			t.Errorf("%s got groups %q, want %q", zone, groupIDs(got[0]), ids)
		}
	}
	web := e.clusters["z-a"].gotGroups()[0].Groups[3]
	wantWeb := api.Group{ID: "sg-web", Owner: acct,
		Ingress: []api.GroupRule{
			{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRs: []string{"10.0.0.0/8"}},
			{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroups: []string{"sg-lb"}},
			{Protocol: "all", FromPort: -1, ToPort: -1, SourceGroups: []string{"sg-web"}},
		},
		Egress: []api.GroupRule{{Protocol: "all", FromPort: -1, ToPort: -1, CIDRs: []string{"0.0.0.0/0"}}},
	}
	if !reflect.DeepEqual(web, wantWeb) {
		t.Errorf("sg-web went out as\n%+v\nwant\n%+v", web, wantWeb)
	}
	if v6 := e.clusters["z-a"].gotGroups()[0].Groups[2]; v6.Ingress == nil || len(v6.Ingress) != 0 {
		t.Errorf("sg-v6 ingress %#v, want empty", v6.Ingress)
	}
}

func TestSyncNetworkOnlyChanges(t *testing.T) {
	e := newEnv(t, Config{}, "z-a")
	f := e.clusters["z-a"]
	e.putGroups(t, secgroups.Group{ID: "sg-web", Owner: acct})
	e.put(t, inGroups(inst("i-1", "z-a", api.Running), "sg-web"))
	puts := func() int { return len(f.gotGroups()) }

	e.c.SyncNetwork(t.Context())
	if puts() != 1 {
		t.Fatalf("%d puts after the first sync, want 1", puts())
	}
	e.c.SyncNetwork(t.Context())
	if puts() != 1 {
		t.Errorf("%d puts after an unchanged sync, want 1", puts())
	}

	rule := secgroups.Rule{Protocol: "tcp", FromPort: 80, ToPort: 80, CIDR: "0.0.0.0/0"}
	e.putGroups(t, secgroups.Group{ID: "sg-web", Owner: acct, Ingress: []secgroups.Rule{rule}})
	e.c.SyncNetwork(t.Context())
	if got := f.gotGroups(); len(got) != 2 || len(got[1].Groups) != 1 || len(got[1].Groups[0].Ingress) != 1 {
		t.Fatalf("after a rule was added the cluster has %+v, want a second put with it", got)
	}

	// A put the cluster refused is sent again, though nothing changed.
	e.put(t, inGroups(inst("i-1", "z-a", api.Terminated), "sg-web"))
	f.with(func(f *fakeCluster) { f.groupsErr = errInternal })
	e.c.SyncNetwork(t.Context())
	f.with(func(f *fakeCluster) {
		if f.groupTries != 3 {
			t.Errorf("%d tries, want 3", f.groupTries)
		}
		f.groupsErr = nil
	})
	e.c.SyncNetwork(t.Context())
	if got := f.gotGroups(); len(got) != 3 || len(got[2].Groups) != 0 {
		t.Fatalf("after the last member ended the cluster has %+v, want a third put without groups", got)
	}

	// A restarted cloudctl puts once, though nothing changed.
	restarted := New(e.db, e.c.cfg, e.c.log)
	restarted.SyncNetwork(t.Context())
	if puts() != 4 {
		t.Errorf("%d puts after a restart, want 4", puts())
	}
}

func TestKickNetwork(t *testing.T) {
	e := newEnv(t, Config{Poll: time.Hour}, "z-a")
	f := e.clusters["z-a"]
	e.putGroups(t, secgroups.Group{ID: "sg-web", Owner: acct})
	e.put(t, inGroups(inst("i-1", "z-a", api.Running), "sg-web"))
	f.report(api.InstanceStatus{ID: "i-1", State: api.Running, Generation: 1})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { e.c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	waitFor(t, "the first put", func() bool { return len(f.gotGroups()) == 1 })
	rule := secgroups.Rule{Protocol: "udp", FromPort: 53, ToPort: 53, CIDR: "10.0.0.0/8"}
	e.putGroups(t, secgroups.Group{ID: "sg-web", Owner: acct, Ingress: []secgroups.Rule{rule}})
	e.c.KickNetwork()
	e.c.KickNetwork() // kicks never block
	waitFor(t, "a put with the new rule", func() bool {
		got := f.gotGroups()
		return len(got) == 2 && len(got[1].Groups) == 1 && len(got[1].Groups[0].Ingress) == 1
	})
}

// waitFor polls cond until it holds or the test's deadline is near.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	for !cond() {
		if time.Until(deadline) < time.Second {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
