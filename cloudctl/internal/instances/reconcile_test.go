package instances

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

var guestShutdown = &api.Reason{Code: "Client.InstanceInitiatedShutdown", Message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown"}

func TestApply(t *testing.T) {
	since := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct {
		name string
		in   Instance
		zone string // the reporting zone; default the record's
		st   api.InstanceStatus
		// want is the record after; nil: unchanged.
		want func(in Instance) Instance
	}{
		{name: "newer generation wins", in: inst("i-1", "z-a", api.Pending),
			st: api.InstanceStatus{State: api.Running, Since: since, Generation: 5},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation, in.Placed = api.Running, since, 5, true
				return in
			}},
		{name: "stale generation is ignored", in: edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Generation = 5 }),
			st: api.InstanceStatus{State: api.Pending, Generation: 4}},
		{name: "same generation is ignored", in: edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Generation = 5 }),
			st: api.InstanceStatus{State: api.Stopped, Generation: 5}},
		{name: "terminated is final", in: edit(inst("i-1", "z-a", api.Terminated), func(in *Instance) { in.Reason = guestShutdown }),
			st: api.InstanceStatus{State: api.Running, Generation: 100}},
		{name: "desired terminated shows shutting down", in: edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Desired = api.Terminated }),
			st: api.InstanceStatus{State: api.Running, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation = api.ShuttingDown, since, 2
				return in
			}},
		{name: "desired terminated ends when the cluster says so", in: inst("i-1", "z-a", api.ShuttingDown),
			st: api.InstanceStatus{State: api.Terminated, Since: since, Generation: 2,
				Reason: &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation = api.Terminated, since, 2
				in.Reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
				in.Transition = in.Reason.Message
				return in
			}},
		{name: "desired stopped shows stopping", in: edit(inst("i-1", "z-a", api.Running), func(in *Instance) { in.Desired = api.Stopped }),
			st: api.InstanceStatus{State: api.Running, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation = api.Stopping, since, 2
				return in
			}},
		{name: "desired stopped ends stopped", in: inst("i-1", "z-a", api.Stopping),
			st: api.InstanceStatus{State: api.Stopped, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation = api.Stopped, since, 2
				return in
			}},
		{name: "desired running shows pending over stopped", in: edit(inst("i-1", "z-a", api.Pending), func(in *Instance) { in.Placed = true }),
			st: api.InstanceStatus{State: api.Stopped, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.Generation = 2
				return in
			}},
		{name: "guest shutdown while desired running", in: inst("i-1", "z-a", api.Running),
			st: api.InstanceStatus{State: api.Terminated, Reason: guestShutdown, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Desired, in.Since, in.Generation = api.Terminated, api.Terminated, since, 2
				in.Reason, in.Transition = guestShutdown, guestShutdown.Message
				return in
			}},
		{name: "a user's transition is kept", in: edit(inst("i-1", "z-a", api.ShuttingDown), func(in *Instance) { in.Transition = "User initiated (x)" }),
			st: api.InstanceStatus{State: api.Terminated, Reason: guestShutdown, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation, in.Reason = api.Terminated, since, 2, guestShutdown
				return in
			}},
		{name: "running clears the reason", in: edit(inst("i-1", "z-a", api.Pending), func(in *Instance) { in.Reason = guestShutdown }),
			st: api.InstanceStatus{State: api.Running, Since: since, Generation: 2},
			want: func(in Instance) Instance {
				in.State, in.Since, in.Generation, in.Reason, in.Placed = api.Running, since, 2, nil, true
				return in
			}},
		{name: "a report places and addresses", in: inst("i-1", "z-a", api.Pending),
			st: api.InstanceStatus{State: api.Pending, Node: "node-7", MAC: "d0:0d:00:00:00:07", PrivateIP: "10.0.0.7", Generation: 2},
			want: func(in Instance) Instance {
				in.Placed, in.Generation = true, 2
				in.Node, in.MAC, in.PrivateIP = "node-7", "d0:0d:00:00:00:07", "10.0.0.7"
				return in
			}},
		{name: "another zone's report is ignored", in: inst("i-1", "z-a", api.Running), zone: "z-b",
			st: api.InstanceStatus{State: api.Terminated, Generation: 9}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a", "z-b")
			e.put(t, tc.in)
			zone := tc.zone
			if zone == "" {
				zone = tc.in.Zone
			}
			tc.st.ID = tc.in.ID
			// An unknown instance in the same report is skipped.
			if err := e.c.Apply(zone, []api.InstanceStatus{{ID: "i-unknown", State: api.Running, Generation: 1}, tc.st}); err != nil {
				t.Fatal(err)
			}
			want := tc.in
			if tc.want != nil {
				want = tc.want(tc.in)
			}
			got := e.mustGet(t, tc.in.ID)
			if !sameInstance(got, want) {
				t.Errorf("record =\n%+v\nwant\n%+v", got, want)
			}
			if _, ok := e.get(t, "i-unknown"); ok {
				t.Error("a report made a record")
			}
		})
	}
}

// sameInstance compares the fields Apply and the reconciler change.
func sameInstance(a, b Instance) bool {
	reason := func(r *api.Reason) api.Reason {
		if r == nil {
			return api.Reason{Code: "<nil>"}
		}
		return *r
	}
	return a.ID == b.ID && a.State == b.State && a.Desired == b.Desired && a.Placed == b.Placed && a.Generation == b.Generation &&
		a.Since.Equal(b.Since) && reason(a.Reason) == reason(b.Reason) && a.Transition == b.Transition &&
		a.Node == b.Node && a.MAC == b.MAC && a.PrivateIP == b.PrivateIP && a.Zone == b.Zone
}

// wantRec is what a reconcile leaves of an instance.
type wantRec struct {
	state  string // "" = deleted
	reason string // a substring of Reason.Code + " " + Reason.Message; "" = no reason
	placed bool
}

func TestReconcile(t *testing.T) {
	now := time.Now().UTC()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	recent := func(in Instance) Instance {
		in.Launched, in.Since = ago(2*time.Second), ago(2*time.Second)
		return in
	}
	launched := func(d time.Duration) func(in *Instance) {
		return func(in *Instance) { in.Launched, in.Since = ago(d), ago(d) }
	}
	cases := []struct {
		name   string
		ins    []Instance
		report []api.InstanceStatus // what z-a lists
		setup  func(e *env)
		want   map[string]wantRec
		runs   [][]string // the instances of each RunRequest z-a gets
		acts   []string
	}{
		{name: "unplaced pending is sent again and placed",
			ins:  []Instance{edit(inst("i-1", "z-a", api.Pending), launched(time.Minute)), edit(inst("i-2", "z-a", api.Pending), launched(time.Minute))},
			runs: [][]string{{"i-1", "i-2"}},
			want: map[string]wantRec{"i-1": {state: api.Pending, placed: true}, "i-2": {state: api.Pending, placed: true}}},
		{name: "unplaced within the grace is left to its RunInstances call",
			ins:  []Instance{recent(inst("i-1", "z-a", api.Pending))},
			want: map[string]wantRec{"i-1": {state: api.Pending}}},
		{name: "unplaced without room ends for want of capacity",
			ins:   []Instance{edit(inst("i-1", "z-a", api.Pending), launched(time.Minute))},
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.runErr = errICE }) },
			runs:  [][]string{{"i-1"}},
			want:  map[string]wantRec{"i-1": {state: api.Terminated, reason: "Server.InsufficientInstanceCapacity"}}},
		{name: "unplaced partly placed, the rest end",
			ins:   []Instance{edit(inst("i-1", "z-a", api.Pending), launched(time.Minute)), edit(inst("i-2", "z-a", api.Pending), launched(time.Minute))},
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.take = 1 }) },
			runs:  [][]string{{"i-1", "i-2"}},
			want: map[string]wantRec{"i-1": {state: api.Pending, placed: true},
				"i-2": {state: api.Terminated, reason: "Server.InsufficientInstanceCapacity"}}},
		{name: "unplaced on a failing cluster stays pending",
			ins:   []Instance{edit(inst("i-1", "z-a", api.Pending), launched(time.Minute))},
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.runErr = errInternal }) },
			runs:  [][]string{{"i-1"}},
			want:  map[string]wantRec{"i-1": {state: api.Pending}}},
		{name: "unplaced on a failing cluster ends after the pending timeout",
			ins:   []Instance{edit(inst("i-1", "z-a", api.Pending), launched(time.Hour))},
			setup: func(e *env) { e.clusters["z-a"].with(func(f *fakeCluster) { f.runErr = errInternal }) },
			runs:  [][]string{{"i-1"}},
			want:  map[string]wantRec{"i-1": {state: api.Terminated, reason: "did not reach running"}}},
		{name: "placed but missing from the cluster is lost",
			ins:  []Instance{inst("i-1", "z-a", api.Running)},
			want: map[string]wantRec{"i-1": {state: api.Terminated, reason: "no record of the instance", placed: true}}},
		{name: "placed and missing within the grace stays",
			ins:  []Instance{recent(inst("i-1", "z-a", api.Running))},
			want: map[string]wantRec{"i-1": {state: api.Running, placed: true}}},
		{name: "desired terminated but running is terminated again",
			ins:    []Instance{inst("i-1", "z-a", api.ShuttingDown)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Running, Generation: 1}},
			acts:   []string{"i-1 terminate"},
			want:   map[string]wantRec{"i-1": {state: api.ShuttingDown, placed: true}}},
		{name: "desired terminated and a newer running report",
			ins:    []Instance{inst("i-1", "z-a", api.ShuttingDown)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Running, Generation: 3}},
			acts:   []string{"i-1 terminate"},
			want:   map[string]wantRec{"i-1": {state: api.ShuttingDown, placed: true}}},
		{name: "desired terminated and terminated by the cluster",
			ins:    []Instance{inst("i-1", "z-a", api.ShuttingDown)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Terminated, Generation: 3, Reason: guestShutdown}},
			want:   map[string]wantRec{"i-1": {state: api.Terminated, reason: guestShutdown.Code, placed: true}}},
		{name: "desired stopped but running is stopped again",
			ins:    []Instance{inst("i-1", "z-a", api.Stopping)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Running, Generation: 1}},
			acts:   []string{"i-1 stop"},
			want:   map[string]wantRec{"i-1": {state: api.Stopping, placed: true}}},
		{name: "desired running but stopped is started again",
			ins:    []Instance{recent(edit(inst("i-1", "z-a", api.Pending), func(in *Instance) { in.Placed = true }))},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Stopped, Generation: 1}},
			acts:   []string{"i-1 start"},
			want:   map[string]wantRec{"i-1": {state: api.Pending, placed: true}}},
		{name: "running as it should be is left alone",
			ins:    []Instance{inst("i-1", "z-a", api.Running)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Running, Generation: 1}},
			want:   map[string]wantRec{"i-1": {state: api.Running, placed: true}}},
		{name: "pending too long is shut down with a reason",
			ins:    []Instance{edit(inst("i-1", "z-a", api.Pending), func(in *Instance) { in.Placed = true })},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Pending, Generation: 1}},
			acts:   []string{"i-1 terminate"},
			want:   map[string]wantRec{"i-1": {state: api.ShuttingDown, reason: "did not reach running within 10m0s", placed: true}}},
		{name: "pending within the timeout stays",
			ins: []Instance{edit(inst("i-1", "z-a", api.Pending), func(in *Instance) {
				in.Placed, in.Since = true, ago(time.Minute)
			})},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Pending, Generation: 1}},
			want:   map[string]wantRec{"i-1": {state: api.Pending, placed: true}}},
		{name: "pending too long on an unreachable cluster is shut down",
			ins:   []Instance{edit(inst("i-1", "z-a", api.Pending), func(in *Instance) { in.Placed = true })},
			setup: func(e *env) { e.clusters["z-a"].srv.Close() },
			want:  map[string]wantRec{"i-1": {state: api.ShuttingDown, reason: "did not reach running", placed: true}}},
		{name: "running on an unreachable cluster is left alone",
			ins:   []Instance{inst("i-1", "z-a", api.Running)},
			setup: func(e *env) { e.clusters["z-a"].srv.Close() },
			want:  map[string]wantRec{"i-1": {state: api.Running, placed: true}}},
		{name: "terminated past Keep is forgotten",
			ins: []Instance{
				edit(inst("i-old", "z-a", api.Terminated), func(in *Instance) { in.Since = ago(2 * time.Hour) }),
				edit(inst("i-new", "z-a", api.Terminated), func(in *Instance) { in.Since = ago(10 * time.Minute) }),
			},
			want: map[string]wantRec{"i-old": {}, "i-new": {state: api.Terminated, placed: true}}},
		{name: "a deregistered zone's instances end",
			ins:    []Instance{inst("i-1", "z-gone", api.Running), inst("i-2", "z-gone", api.Pending), inst("i-3", "z-a", api.Running)},
			report: []api.InstanceStatus{{ID: "i-3", State: api.Running, Generation: 1}},
			want: map[string]wantRec{
				"i-1": {state: api.Terminated, reason: "availability zone z-gone no longer exists", placed: true},
				"i-2": {state: api.Terminated, reason: "availability zone z-gone no longer exists"},
				"i-3": {state: api.Running, placed: true},
			}},
		{name: "a report from another zone does not count",
			ins:    []Instance{inst("i-1", "z-b", api.Running), inst("i-2", "z-a", api.Running)},
			report: []api.InstanceStatus{{ID: "i-1", State: api.Terminated, Generation: 9}, {ID: "i-2", State: api.Running, Generation: 1}},
			setup: func(e *env) {
				e.clusters["z-b"].report(api.InstanceStatus{ID: "i-1", State: api.Running, Generation: 1})
			},
			want: map[string]wantRec{"i-1": {state: api.Running, placed: true}, "i-2": {state: api.Running, placed: true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, "z-a", "z-b")
			e.put(t, tc.ins...)
			e.clusters["z-a"].report(tc.report...)
			if tc.setup != nil {
				tc.setup(e)
			}
			e.c.reconcile(t.Context())

			var runs [][]string
			for _, r := range e.clusters["z-a"].gotRuns() {
				var ids []string
				for _, s := range r.Instances {
					ids = append(ids, s.ID)
				}
				if r.MinCount != 1 {
					t.Errorf("a re-sent RunRequest has MinCount %d, want 1", r.MinCount)
				}
				runs = append(runs, ids)
			}
			if !slices.EqualFunc(runs, tc.runs, slices.Equal) {
				t.Errorf("cluster got run requests %q, want %q", runs, tc.runs)
			}
			if acts := e.clusters["z-a"].gotActs(); !slices.Equal(acts, tc.acts) {
				t.Errorf("cluster got %q, want %q", acts, tc.acts)
			}
			for id, w := range tc.want {
				in, ok := e.get(t, id)
				if w.state == "" {
					if ok {
						t.Errorf("%s: still stored as %s, want forgotten", id, in.State)
					}
					continue
				}
				if !ok {
					t.Errorf("%s: gone, want %s", id, w.state)
					continue
				}
				if in.State != w.state || in.Placed != w.placed {
					t.Errorf("%s: %s placed %v, want %s placed %v", id, in.State, in.Placed, w.state, w.placed)
				}
				if in.State == api.Terminated || in.State == api.ShuttingDown {
					if in.Desired != api.Terminated {
						t.Errorf("%s: desired %s, want terminated", id, in.Desired)
					}
				}
				switch {
				case w.reason == "" && in.Reason != nil:
					t.Errorf("%s: reason %+v, want none", id, in.Reason)
				case w.reason != "":
					if in.Reason == nil || !strings.Contains(in.Reason.Code+" "+in.Reason.Message, w.reason) {
						t.Errorf("%s: reason %+v, want %q", id, in.Reason, w.reason)
					} else if in.Transition != in.Reason.Message {
						t.Errorf("%s: transition %q, want the reason's message", id, in.Transition)
					}
				}
			}
		})
	}
}

// TestReconcileForgetsTags checks that a forgotten instance's tags go
// with it.
func TestReconcileForgetsTags(t *testing.T) {
	e := newEnv(t, Config{Keep: time.Minute}, "z-a")
	e.put(t, edit(inst("i-1", "z-a", api.Terminated), func(in *Instance) { in.Since = time.Now().UTC().Add(-time.Hour) }))
	err := e.db.Update(func(tx *store.Tx) error { return tags.Add(tx, acct, "i-1", []tags.Tag{{Key: "Name", Value: "web"}}) })
	if err != nil {
		t.Fatal(err)
	}
	e.c.reconcile(t.Context())
	if _, ok := e.get(t, "i-1"); ok {
		t.Error("instance still stored")
	}
	err = e.db.View(func(tx *store.Tx) error {
		ts, err := tags.Of(tx, acct, "i-1")
		if err == nil && len(ts) != 0 {
			t.Errorf("tags left: %v", ts)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReconcileDeregistered checks the zone check uses the registry as
// it is when the reconciler runs.
func TestReconcileDeregistered(t *testing.T) {
	e := newEnv(t, Config{}, "z-a", "z-b")
	e.put(t, inst("i-1", "z-b", api.Running))
	e.clusters["z-b"].report(api.InstanceStatus{ID: "i-1", State: api.Running, Generation: 1})
	e.c.reconcile(t.Context())
	if in := e.mustGet(t, "i-1"); in.State != api.Running {
		t.Fatalf("state %s before deregistering, want running", in.State)
	}
	if err := e.db.Update(func(tx *store.Tx) error { return clusters.Delete(tx, "z-b") }); err != nil {
		t.Fatal(err)
	}
	e.c.reconcile(t.Context())
	in := e.mustGet(t, "i-1")
	if in.State != api.Terminated || in.Reason == nil || in.Reason.Code != "Server.InternalError" || !strings.Contains(in.Reason.Message, "z-b") {
		t.Errorf("after deregistering: %s %+v, want terminated with a reason naming z-b", in.State, in.Reason)
	}
}
