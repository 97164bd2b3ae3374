package instances

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// seed stores instances and makes their clusters know the placed, live
// ones as they are recorded.
func (e *env) seed(t *testing.T, ins ...Instance) {
	t.Helper()
	e.put(t, ins...)
	for _, in := range ins {
		f, ok := e.clusters[in.Zone]
		if !ok || !in.Placed || in.Final() {
			continue
		}
		f.report(api.InstanceStatus{ID: in.ID, State: in.State, Node: in.Node, MAC: in.MAC, PrivateIP: in.PrivateIP,
			Type: in.Type.Name, Since: in.Since, Generation: in.Generation})
	}
}

func TestChooseZone(t *testing.T) {
	cases := []struct {
		name   string
		zones  []string // registered; default z-a, z-b
		policy sched.ZonePolicy
		zone   string
		setup  func(e *env)
		want   []string // the zones of successive calls
		err    error
	}{
		{name: "explicit zone", zone: "z-b", want: []string{"z-b"}},
		{name: "explicit zone is taken even when full", zone: "z-a",
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 0 }) },
			want:  []string{"z-a"}},
		{name: "explicit unknown zone", zone: "z-x", err: ErrZone},
		{name: "most free picks the zone with more free slots",
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 1 })
				e.clusters["z-b"].with(func(f *fakeCluster) { f.free = 3 })
			},
			want: []string{"z-b", "z-b"}},
		{name: "most free tie goes to the first registered", want: []string{"z-a", "z-a"}},
		{name: "round robin alternates", policy: sched.RoundRobinZones, want: []string{"z-a", "z-b", "z-a", "z-b"}},
		{name: "round robin skips a full zone", policy: sched.RoundRobinZones,
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 0 }) },
			want:  []string{"z-b", "z-b"}},
		{name: "no room anywhere",
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 0 })
				e.clusters["z-b"].with(func(f *fakeCluster) { f.free = 0 })
			},
			err: ErrCapacity},
		{name: "no room anywhere round robin", policy: sched.RoundRobinZones,
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 0 })
				e.clusters["z-b"].with(func(f *fakeCluster) { f.free = 0 })
			},
			err: ErrCapacity},
		{name: "no clusters", zones: []string{}, err: ErrCapacity},
		{name: "an erroring cluster counts as zero free",
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 1 })
				e.clusters["z-b"].with(func(f *fakeCluster) { f.free = 8; f.resErr = errInternal })
			},
			want: []string{"z-a"}},
		{name: "an unreachable cluster counts as zero free",
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 1 })
				e.clusters["z-b"].srv.Close()
			},
			want: []string{"z-a"}},
		{name: "every cluster erroring",
			setup: func(e *env) {
				e.clusters["z-a"].with(func(f *fakeCluster) { f.resErr = errInternal })
				e.clusters["z-b"].with(func(f *fakeCluster) { f.resErr = errICE })
			},
			err: ErrCapacity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			zones := tc.zones
			if zones == nil {
				zones = []string{"z-a", "z-b"}
			}
			e := newEnv(t, Config{ZonePolicy: tc.policy}, zones...)
			if tc.setup != nil {
				tc.setup(e)
			}
			if tc.err != nil {
				z, err := e.c.ChooseZone(t.Context(), tc.zone, small)
				if !errors.Is(err, tc.err) {
					t.Fatalf("ChooseZone = %q, %v; want %v", z, err, tc.err)
				}
				return
			}
			var got []string
			for range tc.want {
				z, err := e.c.ChooseZone(t.Context(), tc.zone, small)
				if err != nil {
					t.Fatalf("ChooseZone: %v", err)
				}
				got = append(got, z)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("zones = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResources(t *testing.T) {
	e := newEnv(t, Config{}, "z-a", "z-b")
	e.clusters["z-a"].with(func(f *fakeCluster) { f.free = 2 })
	e.clusters["z-b"].with(func(f *fakeCluster) { f.resErr = errInternal })
	res, err := e.c.Resources(t.Context(), []api.VMType{small})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("got %d answers, want 2", len(res))
	}
	if a := res[0]; a.Zone != "z-a" || a.Err != nil || len(a.Types) != 1 || a.Types[0].Name != small.Name || a.Types[0].Free != 2 {
		t.Errorf("z-a answer = %+v", a)
	}
	if b := res[1]; b.Zone != "z-b" || api.Code(b.Err) != "InternalError" {
		t.Errorf("z-b answer = %+v, want zone z-b with an InternalError", b)
	}
}

func TestPlace(t *testing.T) {
	cases := []struct {
		name    string
		n, min  int
		cluster func(f *fakeCluster)
		closed  bool
		err     error  // a sentinel the error wraps
		anyErr  bool   // an error that is not a sentinel
		want    string // per instance: P placed, p pending, - deleted
	}{
		{name: "cluster takes all", n: 3, min: 1, want: "PPP"},
		{name: "cluster takes some", n: 3, min: 2, cluster: func(f *fakeCluster) { f.take = 2 }, want: "PP-"},
		{name: "cluster takes exactly min", n: 2, min: 1, cluster: func(f *fakeCluster) { f.take = 1 }, want: "P-"},
		{name: "insufficient capacity", n: 2, min: 2, cluster: func(f *fakeCluster) { f.take = 1 }, err: ErrCapacity, want: "--"},
		{name: "insufficient capacity answered outright", n: 1, min: 1, cluster: func(f *fakeCluster) { f.runErr = errICE },
			err: ErrCapacity, want: "-"},
		{name: "no free private address", n: 2, min: 1, cluster: func(f *fakeCluster) { f.runErr = errNoAddrs },
			err: ErrAddresses, want: "--"},
		{name: "cluster refuses the request", n: 2, min: 1, cluster: func(f *fakeCluster) { f.runErr = errInvalid },
			anyErr: true, want: "--"},
		{name: "cluster fails inside", n: 2, min: 1, cluster: func(f *fakeCluster) { f.runErr = errInternal }, want: "pp"},
		{name: "cluster unreachable", n: 2, min: 1, closed: true, want: "pp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a")
			f := e.clusters["z-a"]
			if tc.cluster != nil {
				f.with(tc.cluster)
			}
			if tc.closed {
				f.srv.Close()
			}
			var ids []string
			for i := range tc.n {
				in := inst(fmt.Sprintf("i-%d", i), "z-a", api.Pending)
				in.LaunchIndex = i
				e.put(t, in)
				ids = append(ids, in.ID)
			}
			got, err := e.c.Place(t.Context(), "z-a", ids, tc.min)
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("Place error = %v, want %v", err, tc.err)
				}
			case tc.anyErr:
				if err == nil || errors.Is(err, ErrCapacity) {
					t.Fatalf("Place error = %v, want a refusal", err)
				}
			case err != nil:
				t.Fatalf("Place: %v", err)
			}
			if !tc.closed {
				runs := f.gotRuns()
				if len(runs) != 1 || runs[0].MinCount != tc.min || len(runs[0].Instances) != tc.n {
					t.Fatalf("cluster got %+v, want one request for %d with min %d", runs, tc.n, tc.min)
				}
				for i, s := range runs[0].Instances {
					if s.ID != ids[i] || s.AccountID != acct || s.Type.Name != small.Name || s.Image.ID != "emi-1" || s.LaunchIndex != i {
						t.Errorf("spec %d = %+v", i, s)
					}
				}
			}
			returned := map[string]Instance{}
			for _, in := range got {
				returned[in.ID] = in
			}
			for i, id := range ids {
				in, ok := e.get(t, id)
				r, back := returned[id]
				switch w := tc.want[i]; w {
				case '-':
					if ok || back {
						t.Errorf("%s: stored %v returned %v, want deleted", id, ok, back)
					}
				case 'P', 'p':
					placed := w == 'P'
					if !ok || !back {
						t.Fatalf("%s: stored %v returned %v, want both", id, ok, back)
					}
					if in.Placed != placed || r.Placed != placed || in.State != api.Pending {
						t.Errorf("%s: placed %v (returned %v) state %s, want placed %v pending", id, in.Placed, r.Placed, in.State, placed)
					}
					if placed {
						wantNode, wantIP := fmt.Sprintf("node-%d", i+1), fmt.Sprintf("10.0.0.%d", i+1)
						if in.Node != wantNode || in.PrivateIP != wantIP || in.MAC == "" || r.Node != wantNode || r.PrivateIP != wantIP {
							t.Errorf("%s: node %q mac %q ip %q, want %s and %s", id, in.Node, in.MAC, in.PrivateIP, wantNode, wantIP)
						}
					} else if in.Node != "" || in.PrivateIP != "" {
						t.Errorf("%s: node %q ip %q before placement", id, in.Node, in.PrivateIP)
					}
				}
			}
		})
	}
}

func TestPlaceCapacityMessage(t *testing.T) {
	e := newEnv(t, Config{}, "z-a")
	e.clusters["z-a"].with(func(f *fakeCluster) { f.runErr = errICE })
	e.put(t, inst("i-1", "z-a", api.Pending))
	_, err := e.c.Place(t.Context(), "z-a", []string{"i-1"}, 1)
	if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), errICE.message) {
		t.Errorf("Place error = %v, want ErrCapacity with the cluster's message", err)
	}
}

func TestPlaceUnknown(t *testing.T) {
	e := newEnv(t, Config{}, "z-a")
	e.put(t, inst("i-1", "z-a", api.Pending))
	if _, err := e.c.Place(t.Context(), "z-a", []string{"i-1", "i-nope"}, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Place of an unknown instance = %v, want ErrNotFound", err)
	}
	if _, err := e.c.Place(t.Context(), "z-x", []string{"i-1"}, 1); err == nil {
		t.Error("Place in an unknown zone succeeded")
	}
	if runs := e.clusters["z-a"].gotRuns(); len(runs) != 0 {
		t.Errorf("cluster got %d requests, want none", len(runs))
	}
}

// actionCase is one call of an instance action.
type actionCase struct {
	name    string
	ins     []Instance
	setup   func(e *env)
	do      func(ctx context.Context, c *Controller) ([]Change, error)
	err     error
	changes []Change
	acts    []string          // what the cluster in z-a gets, in order
	anyActs bool              // do not check acts
	states  map[string]string // stored states after; "" = as seeded
	check   func(t *testing.T, e *env)
}

func runActions(t *testing.T, cases []actionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a")
			e.seed(t, tc.ins...)
			if tc.setup != nil {
				tc.setup(e)
			}
			changes, err := tc.do(t.Context(), e.c)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error = %v, want %v", err, tc.err)
				}
			} else if err != nil {
				t.Fatalf("error = %v", err)
			}
			if tc.err == nil && !slices.Equal(changes, tc.changes) {
				t.Errorf("changes = %+v, want %+v", changes, tc.changes)
			}
			if acts := e.clusters["z-a"].gotActs(); !tc.anyActs && !slices.Equal(acts, tc.acts) {
				t.Errorf("cluster got %q, want %q", acts, tc.acts)
			}
			for _, in := range tc.ins {
				want := tc.states[in.ID]
				if want == "" {
					want = in.State
				}
				if got := e.mustGet(t, in.ID); got.State != want {
					t.Errorf("%s: state %s, want %s", in.ID, got.State, want)
				}
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func terminate(ids ...string) func(context.Context, *Controller) ([]Change, error) {
	return func(ctx context.Context, c *Controller) ([]Change, error) { return c.Terminate(ctx, acct, ids) }
}

func stop(ids ...string) func(context.Context, *Controller) ([]Change, error) {
	return func(ctx context.Context, c *Controller) ([]Change, error) { return c.Stop(ctx, acct, ids) }
}

func start(ids ...string) func(context.Context, *Controller) ([]Change, error) {
	return func(ctx context.Context, c *Controller) ([]Change, error) { return c.Start(ctx, acct, ids) }
}

func reboot(ids ...string) func(context.Context, *Controller) ([]Change, error) {
	return func(ctx context.Context, c *Controller) ([]Change, error) { return nil, c.Reboot(ctx, acct, ids) }
}

func TestTerminate(t *testing.T) {
	runActions(t, []actionCase{
		{name: "unplaced ends at once", ins: []Instance{inst("i-1", "z-a", api.Pending)}, do: terminate("i-1"),
			changes: []Change{{"i-1", api.Pending, api.Terminated}},
			states:  map[string]string{"i-1": api.Terminated},
			check: func(t *testing.T, e *env) {
				in := e.mustGet(t, "i-1")
				if in.Desired != api.Terminated || in.Reason == nil || in.Reason.Code != "Client.UserInitiatedShutdown" ||
					!strings.HasPrefix(in.Transition, "User initiated (") {
					t.Errorf("record = desired %s reason %+v transition %q", in.Desired, in.Reason, in.Transition)
				}
			}},
		{name: "placed shuts down and the cluster is told", ins: []Instance{inst("i-1", "z-a", api.Running)}, do: terminate("i-1"),
			changes: []Change{{"i-1", api.Running, api.ShuttingDown}},
			acts:    []string{"i-1 terminate"},
			states:  map[string]string{"i-1": api.ShuttingDown},
			check: func(t *testing.T, e *env) {
				in := e.mustGet(t, "i-1")
				if in.Desired != api.Terminated || in.Reason != nil || !strings.HasPrefix(in.Transition, "User initiated (") {
					t.Errorf("record = desired %s reason %+v transition %q", in.Desired, in.Reason, in.Transition)
				}
			}},
		{name: "the cluster's answer is the current state", ins: []Instance{inst("i-1", "z-a", api.Running)},
			setup:   func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.termState = api.Terminated }) },
			do:      terminate("i-1"),
			changes: []Change{{"i-1", api.Running, api.Terminated}},
			acts:    []string{"i-1 terminate"},
			states:  map[string]string{"i-1": api.Terminated}},
		{name: "a failing cluster leaves it shutting down", ins: []Instance{inst("i-1", "z-a", api.Stopped)},
			setup:   func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.actErr = errInternal }) },
			do:      terminate("i-1"),
			changes: []Change{{"i-1", api.Stopped, api.ShuttingDown}},
			acts:    []string{"i-1 terminate"},
			states:  map[string]string{"i-1": api.ShuttingDown}},
		{name: "terminated stays terminated", ins: []Instance{inst("i-1", "z-a", api.Terminated)}, do: terminate("i-1"),
			changes: []Change{{"i-1", api.Terminated, api.Terminated}}},
		{name: "shutting down is asked again", ins: []Instance{inst("i-1", "z-a", api.ShuttingDown)}, do: terminate("i-1"),
			changes: []Change{{"i-1", api.ShuttingDown, api.ShuttingDown}},
			acts:    []string{"i-1 terminate"}},
		{name: "several", ins: []Instance{inst("i-1", "z-a", api.Running), inst("i-2", "z-a", api.Pending), inst("i-3", "z-a", api.Terminated)},
			do: terminate("i-1", "i-2", "i-3"),
			changes: []Change{{"i-1", api.Running, api.ShuttingDown}, {"i-2", api.Pending, api.Terminated},
				{"i-3", api.Terminated, api.Terminated}},
			acts:   []string{"i-1 terminate"},
			states: map[string]string{"i-1": api.ShuttingDown, "i-2": api.Terminated}},
		{name: "unknown id", ins: []Instance{inst("i-1", "z-a", api.Running)}, do: terminate("i-1", "i-nope"), err: ErrNotFound},
		{name: "another account's instance", ins: []Instance{edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Owner = other })},
			do: terminate("i-1"), err: ErrNotFound},
	})
}

func TestStop(t *testing.T) {
	runActions(t, []actionCase{
		{name: "running stops", ins: []Instance{inst("i-1", "z-a", api.Running)}, do: stop("i-1"),
			changes: []Change{{"i-1", api.Running, api.Stopping}}, acts: []string{"i-1 stop"},
			states: map[string]string{"i-1": api.Stopping},
			check: func(t *testing.T, e *env) {
				if in := e.mustGet(t, "i-1"); in.Desired != api.Stopped || !strings.HasPrefix(in.Transition, "User initiated (") {
					t.Errorf("desired %s transition %q", in.Desired, in.Transition)
				}
			}},
		{name: "stopped is left alone", ins: []Instance{inst("i-1", "z-a", api.Stopped)}, do: stop("i-1"),
			changes: []Change{{"i-1", api.Stopped, api.Stopped}}, anyActs: true},
		{name: "stopping is left alone", ins: []Instance{inst("i-1", "z-a", api.Stopping)}, do: stop("i-1"),
			changes: []Change{{"i-1", api.Stopping, api.Stopping}}, anyActs: true},
		{name: "pending cannot stop", ins: []Instance{inst("i-1", "z-a", api.Pending)}, do: stop("i-1"), err: ErrState},
		{name: "shutting down cannot stop", ins: []Instance{inst("i-1", "z-a", api.ShuttingDown)}, do: stop("i-1"), err: ErrState},
		{name: "terminated cannot stop", ins: []Instance{inst("i-1", "z-a", api.Terminated)}, do: stop("i-1"), err: ErrState},
		{name: "running while being terminated cannot stop",
			ins: []Instance{edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Desired = api.Terminated })},
			do:  stop("i-1"), err: ErrState},
		{name: "one wrong state stops none", ins: []Instance{inst("i-1", "z-a", api.Running), inst("i-2", "z-a", api.Pending)},
			do: stop("i-1", "i-2"), err: ErrState},
		{name: "another account's instance", ins: []Instance{edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Owner = other })},
			do: stop("i-1"), err: ErrNotFound},
	})
}

func TestStart(t *testing.T) {
	runActions(t, []actionCase{
		{name: "stopped starts", ins: []Instance{edit(inst("i-1", "z-a", api.Stopped), func(in *Instance) {
			in.Reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "stopped"}
		})}, do: start("i-1"),
			changes: []Change{{"i-1", api.Stopped, api.Pending}}, acts: []string{"i-1 start"},
			states: map[string]string{"i-1": api.Pending},
			check: func(t *testing.T, e *env) {
				if in := e.mustGet(t, "i-1"); in.Desired != api.Running || in.Reason != nil || in.Transition != "" {
					t.Errorf("desired %s reason %+v transition %q", in.Desired, in.Reason, in.Transition)
				}
			}},
		{name: "running is left alone", ins: []Instance{inst("i-1", "z-a", api.Running)}, do: start("i-1"),
			changes: []Change{{"i-1", api.Running, api.Running}}, anyActs: true},
		{name: "pending is left alone", ins: []Instance{inst("i-1", "z-a", api.Pending)}, do: start("i-1"),
			changes: []Change{{"i-1", api.Pending, api.Pending}}, anyActs: true},
		{name: "stopping cannot start", ins: []Instance{inst("i-1", "z-a", api.Stopping)}, do: start("i-1"), err: ErrState},
		{name: "terminated cannot start", ins: []Instance{inst("i-1", "z-a", api.Terminated)}, do: start("i-1"), err: ErrState},
		{name: "shutting down cannot start", ins: []Instance{inst("i-1", "z-a", api.ShuttingDown)}, do: start("i-1"), err: ErrState},
		{name: "one wrong state starts none", ins: []Instance{inst("i-1", "z-a", api.Stopped), inst("i-2", "z-a", api.Terminated)},
			do: start("i-1", "i-2"), err: ErrState},
		{name: "unknown id", do: start("i-nope"), err: ErrNotFound},
	})
}

func TestReboot(t *testing.T) {
	runActions(t, []actionCase{
		{name: "running reboots", ins: []Instance{inst("i-1", "z-a", api.Running)}, do: reboot("i-1"), acts: []string{"i-1 reboot"}},
		{name: "stopped is not sent", ins: []Instance{inst("i-1", "z-a", api.Stopped)}, do: reboot("i-1")},
		{name: "terminated cannot reboot", ins: []Instance{inst("i-1", "z-a", api.Terminated)}, do: reboot("i-1"), err: ErrState},
		{name: "shutting down cannot reboot", ins: []Instance{inst("i-1", "z-a", api.ShuttingDown)}, do: reboot("i-1"), err: ErrState},
	})
}

func TestModify(t *testing.T) {
	large := api.VMType{Name: "m1.large", Resources: sched.Resources{Cores: 2, MemoryMiB: 512, DiskGiB: 10}}
	cases := []struct {
		name     string
		in       Instance
		typ      *api.VMType
		userData []byte
		setup    func(f *fakeCluster)
		err      error
		acts     []string
		wantType string
		wantData string
	}{
		{name: "running cannot be modified", in: inst("i-1", "z-a", api.Running), typ: &large, err: ErrState, wantType: small.Name},
		{name: "stopping cannot be modified", in: inst("i-1", "z-a", api.Stopping), typ: &large, err: ErrState, wantType: small.Name},
		{name: "terminated cannot be modified", in: inst("i-1", "z-a", api.Terminated), userData: []byte("x"), err: ErrState,
			wantType: small.Name},
		{name: "new type goes to the cluster", in: inst("i-1", "z-a", api.Stopped), typ: &large,
			acts: []string{"i-1 modify"}, wantType: large.Name},
		{name: "same type stays here", in: inst("i-1", "z-a", api.Stopped), typ: &small, userData: []byte("hello"),
			wantType: small.Name, wantData: "hello"},
		{name: "user data only", in: inst("i-1", "z-a", api.Stopped), userData: []byte("hello"), wantType: small.Name, wantData: "hello"},
		{name: "no room for the new type", in: inst("i-1", "z-a", api.Stopped), typ: &large, userData: []byte("hello"),
			setup: func(f *fakeCluster) { f.actErr = errICE }, err: ErrCapacity, acts: []string{"i-1 modify"}, wantType: small.Name},
		{name: "cluster fails", in: inst("i-1", "z-a", api.Stopped), typ: &large,
			setup: func(f *fakeCluster) { f.actErr = errInternal }, acts: []string{"i-1 modify"}, wantType: small.Name},
		{name: "another account's instance", in: edit(inst("i-1", "z-a", api.Stopped), func(in *Instance) { in.Owner = other }),
			typ: &large, err: ErrNotFound, wantType: small.Name},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a")
			f := e.clusters["z-a"]
			e.seed(t, tc.in)
			if tc.setup != nil {
				f.with(tc.setup)
			}
			err := e.c.Modify(t.Context(), acct, tc.in.ID, tc.typ, tc.userData)
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("Modify = %v, want %v", err, tc.err)
				}
			case tc.setup != nil:
				if err == nil {
					t.Fatal("Modify succeeded though the cluster failed")
				}
			case err != nil:
				t.Fatalf("Modify: %v", err)
			}
			if acts := f.gotActs(); !slices.Equal(acts, tc.acts) {
				t.Errorf("cluster got %q, want %q", acts, tc.acts)
			}
			in := e.mustGet(t, tc.in.ID)
			if in.Type.Name != tc.wantType || string(in.UserData) != tc.wantData {
				t.Errorf("type %s user data %q, want %s %q", in.Type.Name, in.UserData, tc.wantType, tc.wantData)
			}
			if tc.wantType == large.Name && in.Type != large {
				t.Errorf("type = %+v, want %+v", in.Type, large)
			}
		})
	}
}

func TestConsole(t *testing.T) {
	cases := []struct {
		name    string
		in      Instance
		known   bool // the cluster knows it
		account string
		want    string
		err     error
	}{
		{name: "placed", in: inst("i-1", "z-a", api.Running), known: true, want: "console of i-1"},
		{name: "unplaced is empty", in: inst("i-1", "z-a", api.Pending)},
		{name: "unknown to the cluster is empty", in: inst("i-1", "z-a", api.Running)},
		{name: "another account's", in: inst("i-1", "z-a", api.Running), known: true, account: other, err: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a")
			e.put(t, tc.in)
			if tc.known {
				e.clusters["z-a"].report(api.InstanceStatus{ID: tc.in.ID, State: tc.in.State, Generation: 1})
			}
			account := tc.account
			if account == "" {
				account = acct
			}
			out, err := e.c.Console(t.Context(), account, tc.in.ID)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Console = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Output) != tc.want {
				t.Errorf("output = %q, want %q", out.Output, tc.want)
			}
		})
	}
}

// TestTerminateDuringPlace terminates an instance while the cluster is
// taking it: the user sees it terminated at once, and the cluster must
// be told to end it too.
func TestTerminateDuringPlace(t *testing.T) {
	e := newEnv(t, Config{}, "z-a")
	f := e.clusters["z-a"]
	e.put(t, inst("i-1", "z-a", api.Pending))
	f.with(func(f *fakeCluster) {
		f.onRun = func(api.RunRequest) {
			if _, err := e.c.Terminate(t.Context(), acct, []string{"i-1"}); err != nil {
				t.Error(err)
			}
		}
	})
	if _, err := e.c.Place(t.Context(), "z-a", []string{"i-1"}, 1); err != nil {
		t.Fatal(err)
	}
	e.c.reconcile(t.Context())
	if in := e.mustGet(t, "i-1"); in.State != api.Terminated {
		t.Errorf("state %s, want terminated", in.State)
	}
	if acts := f.gotActs(); !slices.Contains(acts, "i-1 terminate") {
		t.Errorf("cluster got %q, want a terminate of i-1", acts)
	}
}
