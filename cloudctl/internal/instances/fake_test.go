package instances

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

// fakeErr is an error answer of the fake cluster.
type fakeErr struct {
	status        int
	code, message string
}

var (
	errICE      = &fakeErr{http.StatusServiceUnavailable, "InsufficientInstanceCapacity", "Insufficient capacity in z."}
	errInternal = &fakeErr{http.StatusInternalServerError, "InternalError", "boom"}
	errInvalid  = &fakeErr{http.StatusBadRequest, "InvalidParameterValue", "bad spec"}
	errNoAddrs  = &fakeErr{http.StatusServiceUnavailable, "InsufficientFreeAddressesInSubnet", "No free addresses in z."}
)

// fakeCluster is a cluster controller's internal instance API over
// in-memory state. Its fields are guarded by mu; set them through
// with.
type fakeCluster struct {
	zone string
	srv  *httptest.Server

	mu sync.Mutex
	// free is what a resources query reports for every type.
	free int
	// take is how many instances of a RunRequest run; < 0 all of them.
	take int
	// resErr, runErr and actErr, when set, answer those calls.
	resErr, runErr, actErr *fakeErr
	// termState is the state a terminate answers with.
	termState string
	// onRun runs while a RunInstances call is in flight.
	onRun func(api.RunRequest)
	// insts is what the cluster knows, listed by GET .../instances.
	insts map[string]api.InstanceStatus
	gen   uint64
	runs  []api.RunRequest
	// groups are the bodies of the PUTs of the groups it took; groupsErr,
	// when set, answers them instead, and groupTries counts them all.
	groups     []api.GroupsRequest
	groupsErr  *fakeErr
	groupTries int
	addrs      []api.AddressesRequest // bodies of the PUTs of the addresses
	acts       []string               // "id verb"
	types      map[string]string
}

func newFakeCluster(t *testing.T, zone string) *fakeCluster {
	t.Helper()
	f := &fakeCluster{zone: zone, free: 4, take: -1, termState: api.ShuttingDown,
		insts: map[string]api.InstanceStatus{}, types: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathResources, f.resources)
	mux.HandleFunc("POST "+api.PathInstances, f.run)
	mux.HandleFunc("GET "+api.PathInstances, f.list)
	mux.HandleFunc("GET "+api.PathInstances+"/{id}/console", f.console)
	mux.HandleFunc("POST "+api.PathInstances+"/{id}/{verb}", f.act)
	mux.HandleFunc("PUT "+api.PathGroups, f.putGroups)
	mux.HandleFunc("PUT "+api.PathAddresses, f.putAddresses)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCluster) with(fn func(f *fakeCluster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// report makes the cluster know instances, as they are.
func (f *fakeCluster) report(sts ...api.InstanceStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range sts {
		f.insts[st.ID] = st
		f.gen = max(f.gen, st.Generation)
	}
}

func (f *fakeCluster) gotRuns() []api.RunRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func (f *fakeCluster) gotActs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.acts)
}

func (f *fakeCluster) gotGroups() []api.GroupsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.groups)
}

func (f *fakeCluster) putGroups(w http.ResponseWriter, r *http.Request) {
	var req api.GroupsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, errInvalid)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groupTries++
	if f.groupsErr != nil {
		fail(w, f.groupsErr)
		return
	}
	f.groups = append(f.groups, req)
	reply(w, struct{}{})
}

func (f *fakeCluster) putAddresses(w http.ResponseWriter, r *http.Request) {
	var req api.AddressesRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, errInvalid)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = append(f.addrs, req)
	reply(w, struct{}{})
}

func (f *fakeCluster) gotAddresses() []api.AddressesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.addrs)
}

func fail(w http.ResponseWriter, e *fakeErr) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(api.Error{Code: e.code, Message: e.message})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeCluster) resources(w http.ResponseWriter, r *http.Request) {
	var req api.ResourcesRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, errInvalid)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resErr != nil {
		fail(w, f.resErr)
		return
	}
	res := api.ClusterResources{Zone: "ignored", Nodes: 1, Up: 1}
	for _, t := range req.Types {
		res.Types = append(res.Types, api.TypeSlots{VMType: t, Free: f.free, Max: 8})
	}
	reply(w, res)
}

func (f *fakeCluster) run(w http.ResponseWriter, r *http.Request) {
	var req api.RunRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, errInvalid)
		return
	}
	f.mu.Lock()
	f.runs = append(f.runs, req)
	onRun := f.onRun
	f.mu.Unlock()
	if onRun != nil {
		onRun(req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runErr != nil {
		fail(w, f.runErr)
		return
	}
	n := len(req.Instances)
	if f.take >= 0 && f.take < n {
		n = f.take
	}
	if n < req.MinCount {
		fail(w, errICE)
		return
	}
	var res api.RunResponse
	for i, s := range req.Instances[:n] {
		s.Node = fmt.Sprintf("node-%d", i+1)
		s.MAC = fmt.Sprintf("d0:0d:00:00:00:%02x", i+1)
		s.PrivateIP = fmt.Sprintf("10.0.0.%d", i+1)
		res.Instances = append(res.Instances, s)
		f.gen++
		f.insts[s.ID] = api.InstanceStatus{ID: s.ID, State: api.Pending, Node: s.Node, MAC: s.MAC, PrivateIP: s.PrivateIP,
			Type: s.Type.Name, Generation: f.gen}
	}
	reply(w, res)
}

func (f *fakeCluster) list(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.InstanceStatus{}
	for _, st := range f.insts {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	reply(w, out)
}

func (f *fakeCluster) console(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := f.insts[id]; !ok {
		fail(w, &fakeErr{http.StatusNotFound, "InvalidInstanceID.NotFound", "no " + id})
		return
	}
	reply(w, api.ConsoleOutput{Output: []byte("console of " + id)})
}

func (f *fakeCluster) act(w http.ResponseWriter, r *http.Request) {
	var req api.ActionRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, errInvalid)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id, verb := r.PathValue("id"), r.PathValue("verb")
	f.acts = append(f.acts, id+" "+verb)
	if f.actErr != nil {
		fail(w, f.actErr)
		return
	}
	st, ok := f.insts[id]
	if !ok {
		fail(w, &fakeErr{http.StatusNotFound, "InvalidInstanceID.NotFound", "no " + id})
		return
	}
	// Like a node, a stop of a stopped instance or a start of a running
	// one changes nothing.
	switch verb {
	case api.VerbTerminate:
		st.State = f.termState
	case api.VerbStop:
		if st.State != api.Stopped {
			st.State = api.Stopping
		}
	case api.VerbStart:
		if st.State != api.Running {
			st.State = api.Pending
		}
	case api.VerbModify:
		if req.Type != nil {
			f.types[id] = req.Type.Name
			st.Type = req.Type.Name
		}
	case api.VerbReboot:
	default:
		fail(w, &fakeErr{http.StatusBadRequest, "InvalidAction", verb})
		return
	}
	if st != f.insts[id] {
		f.gen++
		st.Generation = f.gen
		f.insts[id] = st
	}
	reply(w, st)
}

// env is a controller over a fresh database with fake clusters.
type env struct {
	db       *store.DB
	c        *Controller
	clusters map[string]*fakeCluster
}

// base is when the test clusters registered.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newEnv(t *testing.T, cfg Config, zones ...string) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &env{db: db, clusters: map[string]*fakeCluster{}}
	for i, z := range zones {
		f := newFakeCluster(t, z)
		e.clusters[z] = f
		err := db.Update(func(tx *store.Tx) error {
			return clusters.Put(tx, clusters.Cluster{Zone: z, URL: f.srv.URL, Registered: base.Add(time.Duration(i) * time.Second)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg.CallTimeout = 5 * time.Second
	cfg.Credentials = api.Credentials{AccessKeyID: "AKIDCLOUDCTL", SecretAccessKey: "secret"}
	e.c = New(db, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	return e
}

func (e *env) put(t *testing.T, ins ...Instance) {
	t.Helper()
	err := e.db.Update(func(tx *store.Tx) error {
		for _, in := range ins {
			if err := Put(tx, in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// get returns a stored instance; ok is false when there is none.
func (e *env) get(t *testing.T, id string) (Instance, bool) {
	t.Helper()
	var in Instance
	var found bool
	err := e.db.View(func(tx *store.Tx) error {
		var err error
		in, err = Get(tx, id)
		if err == nil {
			found = true
		}
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return in, found
}

func (e *env) mustGet(t *testing.T, id string) Instance {
	t.Helper()
	in, ok := e.get(t, id)
	if !ok {
		t.Fatalf("instance %s is gone", id)
	}
	return in
}

const (
	acct  = "111122223333"
	other = "444455556666"
)

var small = api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}}

// inst returns a record in zone in state st, placed unless st is
// pending; Desired follows st. It launched an hour ago and has been in
// st since.
func inst(id, zone, st string) Instance {
	in := Instance{ID: id, Reservation: "r-1", Owner: acct, Type: small, Image: api.ImageRef{ID: "emi-1"},
		Zone: zone, State: st, Placed: st != api.Pending, Node: "node-1", MAC: "d0:0d:00:00:00:01", PrivateIP: "10.0.0.1",
		Launched: time.Now().UTC().Add(-time.Hour), Since: time.Now().UTC().Add(-time.Hour), Generation: 1}
	switch st {
	case api.Pending, api.Running:
		in.Desired = api.Running
	case api.Stopping, api.Stopped:
		in.Desired = api.Stopped
	default:
		in.Desired = api.Terminated
	}
	if !in.Placed {
		in.Node, in.MAC, in.PrivateIP, in.Generation = "", "", "", 0
	}
	return in
}

// edit returns in changed by fn.
func edit(in Instance, fn func(in *Instance)) Instance {
	fn(&in)
	return in
}
