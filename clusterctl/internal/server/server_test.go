package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/admin"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

var (
	cred  = api.Credentials{AccessKeyID: "AKIACLUSTER", SecretAccessKey: "cluster-secret"}
	small = api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}}
)

// fakeCloud stands in for cloudctl: it resolves the one component key
// and records the instance events pushed to it.
type fakeCloud struct {
	*httptest.Server
	mu     sync.Mutex
	events map[string]api.InstanceStatus // newest per instance
	zones  map[string]bool
}

func newFakeCloud(t *testing.T) *fakeCloud {
	f := &fakeCloud{events: map[string]api.InstanceStatus{}, zones: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathAccessKeys+"{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != cred.AccessKeyID {
			api.WriteError(w, http.StatusNotFound, "InvalidAccessKeyId", "no such key")
			return
		}
		api.WriteJSON(w, api.AccessKey{AccessKeyID: cred.AccessKeyID, SecretAccessKey: cred.SecretAccessKey, Active: true, Component: "x"})
	})
	mux.HandleFunc("POST "+api.PathInstanceEvents, func(w http.ResponseWriter, r *http.Request) {
		var sts []api.InstanceStatus
		if !api.ReadJSON(w, r, 1<<20, &sts) {
			return
		}
		f.mu.Lock()
		f.zones[r.URL.Query().Get("zone")] = true
		for _, st := range sts {
			if old, ok := f.events[st.ID]; !ok || st.Generation > old.Generation {
				f.events[st.ID] = st
			}
		}
		f.mu.Unlock()
		api.WriteJSON(w, struct{}{})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCloud) event(id string) (api.InstanceStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.events[id]
	return st, ok
}

// fakeNode stands in for nodectl: it accepts launches (pending until
// Advance), reports its status, honours terminate, and can be made to
// drop launch calls.
type fakeNode struct {
	*httptest.Server
	name     string
	capacity sched.Resources

	mu         sync.Mutex
	gen        uint64
	insts      map[string]*api.InstanceStatus
	launches   int
	kills      map[string]int
	dropLaunch bool
}

func newFakeNode(t *testing.T, name string, capacity sched.Resources) *fakeNode {
	n := &fakeNode{name: name, capacity: capacity, insts: map[string]*api.InstanceStatus{}, kills: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+api.PathInstances+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		var spec api.InstanceSpec
		if !api.ReadJSON(w, r, 1<<20, &spec) {
			return
		}
		n.mu.Lock()
		n.launches++
		if n.dropLaunch {
			n.mu.Unlock()
			hj, _ := w.(http.Hijacker)
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		st, ok := n.insts[spec.ID]
		if !ok {
			st = &api.InstanceStatus{ID: spec.ID, State: api.Pending, Node: n.name, MAC: spec.MAC, PrivateIP: spec.PrivateIP, Type: spec.Type.Name}
			n.setLocked(st, api.Pending)
			n.insts[spec.ID] = st
		}
		out := *st
		n.mu.Unlock()
		api.WriteJSON(w, out)
	})
	mux.HandleFunc("POST "+api.PathInstances+"/{id}/{verb}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		n.mu.Lock()
		defer n.mu.Unlock()
		st, ok := n.insts[id]
		switch verb := r.PathValue("verb"); {
		case verb == api.VerbTerminate && !ok:
			n.kills[id]++
			api.WriteJSON(w, api.InstanceStatus{ID: id, State: api.Terminated, Node: n.name})
		case !ok:
			api.WriteError(w, http.StatusNotFound, "InvalidInstanceID.NotFound", "no instance "+id)
		case verb == api.VerbTerminate:
			n.kills[id]++
			if st.State != api.Terminated {
				st.Reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
				n.setLocked(st, api.Terminated)
			}
			api.WriteJSON(w, *st)
		case verb == api.VerbStop && st.State == api.Running:
			n.setLocked(st, api.Stopped)
			api.WriteJSON(w, *st)
		case verb == api.VerbModify && st.State == api.Stopped:
			var req api.ActionRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			st.Type = req.Type.Name
			n.setLocked(st, api.Stopped)
			api.WriteJSON(w, *st)
		default:
			api.WriteError(w, http.StatusBadRequest, "IncorrectInstanceState", "instance "+id+" is "+st.State)
		}
	})
	mux.HandleFunc("GET "+api.PathInstances+"/{id}/console", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, api.ConsoleOutput{Output: []byte("hello from " + r.PathValue("id") + "\n")})
	})
	mux.HandleFunc("GET "+api.PathNode, func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, n.status())
	})
	n.Server = httptest.NewServer(mux)
	t.Cleanup(n.Close)
	return n
}

func (n *fakeNode) setLocked(st *api.InstanceStatus, state string) {
	n.gen++
	st.State, st.Since, st.Generation = state, time.Now().UTC(), n.gen
}

func (n *fakeNode) status() api.NodeStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := api.NodeStatus{Name: n.name, Capacity: n.capacity}
	for _, in := range n.insts {
		st.Instances = append(st.Instances, *in)
	}
	return st
}

// advance moves the node's pending instances to running.
func (n *fakeNode) advance() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, st := range n.insts {
		if st.State == api.Pending {
			n.setLocked(st, api.Running)
		}
	}
}

// adopt makes the node run an instance the cluster does not know.
func (n *fakeNode) adopt(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := &api.InstanceStatus{ID: id, Node: n.name}
	n.setLocked(st, api.Running)
	n.insts[id] = st
}

func (n *fakeNode) counts(id string) (launches, kills int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.launches, n.kills[id]
}

// env is a clusterctl under test with its fake cloudctl.
type env struct {
	t      *testing.T
	cfg    Config
	cloud  *fakeCloud
	srv    *Server
	client *api.Client
}

func newEnv(t *testing.T, tune func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	data, _ := json.Marshal(map[string]string{"access_key_id": cred.AccessKeyID, "secret_access_key": cred.SecretAccessKey})
	if err := os.WriteFile(keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cloud: newFakeCloud(t)}
	cfg := Defaults()
	cfg.Zone, cfg.Listen, cfg.DataDir = "test-1a", "127.0.0.1:0", filepath.Join(dir, "data")
	cfg.CloudctlURL, cfg.ComponentCredentials = e.cloud.URL, keyFile
	cfg.Poll = Duration{Duration: time.Hour}
	cfg.Heartbeat = Duration{Duration: time.Hour}
	if tune != nil {
		tune(&cfg)
	}
	e.cfg = cfg
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	srv, err := New(e.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	<-srv.Ready()
	e.srv = srv
	e.client = api.NewClient("http://"+srv.Addr(), cred, 10*time.Second)
	e.t.Cleanup(func() {
		if e.srv == srv {
			_ = srv.Close()
		}
	})
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.srv.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

func (e *env) admin() *admin.Client {
	e.t.Helper()
	c, err := admin.Dial(context.Background(), SocketPath(e.cfg.DataDir))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// register registers nodes through the admin socket and waits for them
// to be UP.
func (e *env) register(nodes ...*fakeNode) {
	e.t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		if _, err := e.admin().RegisterNode(ctx, n.name, n.URL); err != nil {
			e.t.Fatal(err)
		}
	}
	e.eventually("nodes up", func() bool {
		ns, err := e.admin().Nodes(ctx)
		up := 0
		for _, n := range ns {
			if n.State == "UP" {
				up++
			}
		}
		return err == nil && up == len(nodes)
	})
}

// eventually polls cond until it holds or the test's deadline nears.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	if d, ok := e.t.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
		deadline = d.Add(-5 * time.Second)
	}
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) instance(id string) api.InstanceStatus {
	e.t.Helper()
	sts, err := e.client.Instances(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, st := range sts {
		if st.ID == id {
			return st
		}
	}
	return api.InstanceStatus{}
}

func runReq(min int, ids ...string) api.RunRequest {
	req := api.RunRequest{MinCount: min}
	for i, id := range ids {
		req.Instances = append(req.Instances, api.InstanceSpec{ID: id, LaunchIndex: i, Type: small,
			Kernel: &api.ImageRef{ID: "eki-1"}, Image: api.ImageRef{ID: "emi-1"}})
	}
	return req
}

func callCode(err error) (int, string) {
	var ce *api.CallError
	if errors.As(err, &ce) {
		return ce.Status, ce.Code
	}
	return 0, ""
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	a, b := newFakeNode(t, "node-a", small.Resources.Times(2)), newFakeNode(t, "node-b", small.Resources.Times(2))
	e.register(a, b)

	res, err := e.client.RunInstances(ctx, runReq(2, "i-00000000000000001", "i-00000000000000002"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Instances) != 2 || res.Instances[0].Node != "node-a" || res.Instances[1].Node != "node-b" ||
		res.Instances[0].PrivateIP != "10.0.0.2" || res.Instances[0].MAC != "d0:0d:0a:00:00:02" {
		t.Fatalf("run: %+v", res)
	}
	// Launched on the nodes, which report them running by push.
	e.eventually("launches", func() bool {
		la, _ := a.counts("")
		lb, _ := b.counts("")
		return la == 1 && lb == 1
	})
	for _, n := range []*fakeNode{a, b} {
		n.advance()
		if err := e.client.PushNodeStatus(ctx, n.status()); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"i-00000000000000001", "i-00000000000000002"} {
		e.eventually(id+" running at cloudctl", func() bool {
			st, ok := e.cloud.event(id)
			return ok && st.State == api.Running && st.Node != "" && st.PrivateIP != ""
		})
	}
	if st := e.instance("i-00000000000000001"); st.State != api.Running || st.Type != "m1.small" || st.Generation == 0 {
		t.Fatalf("listed: %+v", st)
	}
	if !e.cloud.zones["test-1a"] {
		t.Fatal("events not pushed for the zone")
	}

	// The same request again runs nothing twice.
	again, err := e.client.RunInstances(ctx, runReq(2, "i-00000000000000001", "i-00000000000000002"))
	if j1, j2 := mustJSON(t, again), mustJSON(t, res); err != nil || j1 != j2 {
		t.Fatalf("repeat: %v %+v", err, again)
	}
	// The cluster is full now.
	_, err = e.client.RunInstances(ctx, runReq(3, "i-00000000000000003", "i-00000000000000004", "i-00000000000000005"))
	if st, code := callCode(err); st != http.StatusServiceUnavailable || code != "InsufficientInstanceCapacity" {
		t.Fatalf("overfull run: %v", err)
	}
	rs, err := e.client.Resources(ctx, api.ResourcesRequest{Types: []api.VMType{small}})
	if err != nil || rs.Zone != "test-1a" || rs.Nodes != 2 || rs.Up != 2 || rs.Types[0].Free != 2 || rs.Types[0].Max != 4 {
		t.Fatalf("resources: %v %+v", err, rs)
	}
	out, err := e.client.Console(ctx, "i-00000000000000001")
	if err != nil || !strings.Contains(string(out.Output), "hello from i-00000000000000001") {
		t.Fatalf("console: %v %q", err, out.Output)
	}

	// Stop goes to the node; modify to a bigger type than the node has
	// room for is refused by the cluster.
	if st, err := e.client.Act(ctx, "i-00000000000000001", api.VerbStop, api.ActionRequest{}); err != nil || st.State != api.Stopped {
		t.Fatalf("stop: %v %+v", err, st)
	}
	big := api.VMType{Name: "m1.xlarge", Resources: small.Resources.Times(3)}
	_, err = e.client.Act(ctx, "i-00000000000000001", api.VerbModify, api.ActionRequest{Type: &big})
	if st, code := callCode(err); st != http.StatusServiceUnavailable || code != "InsufficientInstanceCapacity" {
		t.Fatalf("modify beyond capacity: %v", err)
	}
	// A node's refusal comes back with its code.
	_, err = e.client.Act(ctx, "i-00000000000000002", api.VerbModify, api.ActionRequest{Type: &small})
	if st, code := callCode(err); st != http.StatusBadRequest || code != "IncorrectInstanceState" {
		t.Fatalf("node refusal: %v", err)
	}
	_, err = e.client.Act(ctx, "i-0000000000000dead", api.VerbStop, api.ActionRequest{})
	if st, code := callCode(err); st != http.StatusNotFound || code != "InvalidInstanceID.NotFound" {
		t.Fatalf("stop unknown: %v", err)
	}

	// Terminate: shutting-down at once, terminated once the node did it.
	st, err := e.client.Act(ctx, "i-00000000000000001", api.VerbTerminate, api.ActionRequest{})
	if err != nil || (st.State != api.ShuttingDown && st.State != api.Terminated) {
		t.Fatalf("terminate: %v %+v", err, st)
	}
	e.eventually("terminated at cloudctl", func() bool {
		st, ok := e.cloud.event("i-00000000000000001")
		return ok && st.State == api.Terminated && st.Reason != nil && st.Reason.Code == "Client.UserInitiatedShutdown"
	})
	if st, err := e.client.Act(ctx, "i-0000000000000dead", api.VerbTerminate, api.ActionRequest{}); err != nil || st.State != api.Terminated {
		t.Fatalf("terminate unknown: %v %+v", err, st)
	}
	// Its room and address are free again.
	res, err = e.client.RunInstances(ctx, runReq(1, "i-00000000000000006"))
	if err != nil || res.Instances[0].Node != "node-a" || res.Instances[0].PrivateIP != "10.0.0.2" {
		t.Fatalf("run after terminate: %v %+v", err, res)
	}

	// An instance the cluster does not know is terminated on its node.
	b.adopt("i-0000000000000000f")
	if err := e.client.PushNodeStatus(ctx, b.status()); err != nil {
		t.Fatal(err)
	}
	e.eventually("orphan killed", func() bool { _, k := b.counts("i-0000000000000000f"); return k > 0 })

	// A node that is not registered is refused.
	err = e.client.PushNodeStatus(ctx, api.NodeStatus{Name: "stranger"})
	if st, code := callCode(err); st != http.StatusNotFound || code != "InvalidNode.NotFound" {
		t.Fatalf("unknown node push: %v", err)
	}

	// Deregistering a node ends its instances with a reason.
	if err := e.admin().DeregisterNode(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	st = e.instance("i-00000000000000002")
	if st.State != api.Terminated || st.Reason == nil || st.Reason.Code != "Server.InternalError" ||
		!strings.Contains(st.Reason.Message, "node node-b was deregistered") {
		t.Fatalf("after deregister: %+v", st)
	}
	if _, k := b.counts("i-00000000000000002"); k == 0 {
		t.Fatal("deregister did not terminate the instance on the node")
	}
	ns, err := e.admin().Nodes(ctx)
	if err != nil || len(ns) != 1 || ns[0].Name != "node-a" || ns[0].Instances != 1 {
		t.Fatalf("nodes: %v %+v", err, ns)
	}
}

func TestLaunchTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.LaunchTimeout = Duration{Duration: 300 * time.Millisecond}
		c.Poll = Duration{Duration: 50 * time.Millisecond}
		c.Heartbeat = Duration{Duration: 5 * time.Second}
	})
	mute := newFakeNode(t, "mute", small.Resources.Times(1))
	mute.dropLaunch = true
	e.register(mute)
	if _, err := e.client.RunInstances(context.Background(), runReq(1, "i-00000000000000001")); err != nil {
		t.Fatal(err)
	}
	e.eventually("terminated with a reason", func() bool {
		st := e.instance("i-00000000000000001")
		return st.State == api.Terminated && st.Reason != nil && st.Reason.Code == "Server.InternalError" &&
			strings.Contains(st.Reason.Message, "could not reach node mute")
	})
	e.eventually("event pushed", func() bool {
		st, ok := e.cloud.event("i-00000000000000001")
		return ok && st.State == api.Terminated
	})
	// Its room is back.
	mute.mu.Lock()
	mute.dropLaunch = false
	mute.mu.Unlock()
	if _, err := e.client.RunInstances(context.Background(), runReq(1, "i-00000000000000002")); err != nil {
		t.Fatal(err)
	}
}

func TestTerminateOnDeadNode(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.LaunchTimeout = Duration{Duration: 300 * time.Millisecond}
		c.Poll = Duration{Duration: 50 * time.Millisecond}
		c.Heartbeat = Duration{Duration: 50 * time.Millisecond}
	})
	gone := newFakeNode(t, "gone", small.Resources.Times(1))
	e.register(gone)
	if _, err := e.client.RunInstances(context.Background(), runReq(1, "i-00000000000000001")); err != nil {
		t.Fatal(err)
	}
	e.eventually("launched", func() bool { n, _ := gone.counts(""); return n > 0 })
	gone.Close()
	e.eventually("node down", func() bool {
		ns, err := e.admin().Nodes(context.Background())
		return err == nil && len(ns) == 1 && ns[0].State == "DOWN"
	})
	st, err := e.client.Act(context.Background(), "i-00000000000000001", api.VerbTerminate, api.ActionRequest{})
	if err != nil || st.State != api.ShuttingDown {
		t.Fatalf("terminate: %v %+v", err, st)
	}
	e.eventually("terminated with a reason", func() bool {
		st := e.instance("i-00000000000000001")
		return st.State == api.Terminated && st.Reason != nil && st.Reason.Code == "Server.InternalError" &&
			strings.Contains(st.Reason.Message, "could not reach node gone")
	})
}

func TestRestartResumesDispatch(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Poll = Duration{Duration: 50 * time.Millisecond}
		c.Heartbeat = Duration{Duration: 5 * time.Second}
	})
	late := newFakeNode(t, "late", small.Resources.Times(4))
	late.dropLaunch = true
	e.register(late)
	res, err := e.client.RunInstances(context.Background(), runReq(1, "i-00000000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	e.eventually("a launch attempt", func() bool { n, _ := late.counts(""); return n > 0 })
	e.restart()
	late.mu.Lock()
	late.dropLaunch = false
	late.mu.Unlock()
	e.eventually("launched after restart", func() bool {
		late.advance()
		return e.instance("i-00000000000000001").State == api.Running
	})
	if st := e.instance("i-00000000000000001"); st.PrivateIP != res.Instances[0].PrivateIP {
		t.Fatalf("lease changed: %+v", st)
	}
	more, err := e.client.RunInstances(context.Background(), runReq(1, "i-00000000000000002"))
	if err != nil || more.Instances[0].PrivateIP == res.Instances[0].PrivateIP {
		t.Fatalf("lease not kept across restart: %v %+v", err, more)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	base := "http://" + e.srv.Addr()
	res, err := http.Get(base + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", res.StatusCode)
	}
	res, err = http.Get(base + api.PathInstances)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "AuthFailure") {
		t.Fatalf("unsigned: %d %s", res.StatusCode, body)
	}
	stranger := api.NewClient(base, api.Credentials{AccessKeyID: "AKIASTRANGER", SecretAccessKey: "x"}, 5*time.Second)
	if _, err := stranger.Instances(context.Background()); func() int { s, _ := callCode(err); return s }() != http.StatusForbidden {
		t.Fatalf("unknown key: %v", err)
	}
	if sts, err := e.client.Instances(context.Background()); err != nil || len(sts) != 0 {
		t.Fatalf("signed list: %v %v", err, sts)
	}
}

func TestValidate(t *testing.T) {
	bad := Defaults()
	bad.Listen, bad.Policy, bad.Subnet = "nowhere", "BEST", "10.0.0.0/31"
	err := bad.Validate()
	for _, want := range []string{"zone", "listen", "cloudctl_url", "component_credentials", "policy", "subnet"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	good := Defaults()
	good.Zone, good.CloudctlURL, good.ComponentCredentials = "z", "http://127.0.0.1:8773", "key.json"
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
