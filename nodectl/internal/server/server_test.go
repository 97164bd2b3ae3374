package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/sigv4"
)

// Keys the fake cloudctl knows: nodectl's own, the cluster's (the caller)
// and an account's, which must not open the internal API.
var (
	nodeKey    = api.Credentials{AccessKeyID: "AKIANODE", SecretAccessKey: "node-secret"}
	clusterKey = api.Credentials{AccessKeyID: "AKIACLUSTER", SecretAccessKey: "cluster-secret"}
	userKey    = api.Credentials{AccessKeyID: "AKIAUSER", SecretAccessKey: "user-secret"}
)

// fakeCloud answers cloudctl's access-key lookups.
func fakeCloud(t *testing.T) *httptest.Server {
	keys := map[string]api.AccessKey{
		nodeKey.AccessKeyID:    {AccessKeyID: nodeKey.AccessKeyID, SecretAccessKey: nodeKey.SecretAccessKey, Active: true, Component: "nodectl"},
		clusterKey.AccessKeyID: {AccessKeyID: clusterKey.AccessKeyID, SecretAccessKey: clusterKey.SecretAccessKey, Active: true, Component: "clusterctl"},
		userKey.AccessKeyID:    {AccessKeyID: userKey.AccessKeyID, SecretAccessKey: userKey.SecretAccessKey, Active: true, Account: api.Account{ID: "111122223333"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+nodeKey.AccessKeyID+"/") {
			api.WriteError(w, http.StatusForbidden, "AuthFailure", "not signed by nodectl")
			return
		}
		k, ok := keys[strings.TrimPrefix(r.URL.Path, api.PathAccessKeys)]
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, api.PathAccessKeys) || !ok {
			api.WriteError(w, http.StatusNotFound, "InvalidAccessKeyId.NotFound", "no such key")
			return
		}
		api.WriteJSON(w, k)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fakeWalrus serves images by location.
func fakeWalrus(t *testing.T, images map[string][]byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := images[r.URL.Query().Get("location")]
		switch {
		case !strings.Contains(r.Header.Get("Authorization"), "Credential="+nodeKey.AccessKeyID+"/"):
			api.WriteError(w, http.StatusForbidden, "AuthFailure", "not signed by nodectl")
		case r.URL.Path != api.PathImages || !ok:
			api.WriteError(w, http.StatusNotFound, "NoSuchKey", "no such image")
		default:
			_, _ = w.Write(data)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// cluster records the statuses nodectl pushes.
type cluster struct {
	mu     sync.Mutex
	pushes []api.NodeStatus
	fail   int // answer 500 to this many pushes first
	srv    *httptest.Server
}

func fakeCluster(t *testing.T) *cluster {
	c := &cluster{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var st api.NodeStatus
		if r.Method != http.MethodPost || r.URL.Path != api.PathNodes+"node-1/status" || json.NewDecoder(r.Body).Decode(&st) != nil {
			api.WriteError(w, http.StatusBadRequest, "MalformedRequest", r.Method+" "+r.URL.Path)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fail > 0 {
			c.fail--
			api.WriteError(w, http.StatusInternalServerError, "InternalError", "not today")
			return
		}
		c.pushes = append(c.pushes, st)
		api.WriteJSON(w, struct{}{})
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// last is the newest pushed status of instance id.
func (c *cluster) last(id string) (api.InstanceStatus, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.pushes) - 1; i >= 0; i-- {
		for _, in := range c.pushes[i].Instances {
			if in.ID == id {
				return in, len(c.pushes)
			}
		}
	}
	return api.InstanceStatus{}, len(c.pushes)
}

type rig struct {
	t       *testing.T
	srv     *Server
	base    string
	client  *api.Client // signs as the cluster
	cluster *cluster
	kernel  api.ImageRef
	image   api.ImageRef
}

func image(id, location string, data []byte) api.ImageRef {
	sum := sha256.Sum256(data)
	return api.ImageRef{ID: id, Location: location, Digest: strings.Repeat("d", 64), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func newRig(t *testing.T, tune func(*Config)) *rig {
	t.Helper()
	kernel, root := []byte("a kernel"), bytes.Repeat([]byte("root"), 1024)
	r := &rig{t: t, cluster: fakeCluster(t),
		kernel: image("aki-00000001", "images/kernel.manifest.xml", kernel),
		image:  image("ami-00000001", "images/root.manifest.xml", root)}
	walrus := fakeWalrus(t, map[string][]byte{r.kernel.Location: kernel, r.image.Location: root})
	dir := t.TempDir()
	creds := filepath.Join(dir, "component.json")
	data, _ := json.Marshal(nodeKey)
	if err := os.WriteFile(creds, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Name, cfg.Listen, cfg.DataDir, cfg.Driver = "node-1", "127.0.0.1:0", filepath.Join(dir, "data"), DriverFake
	cfg.CloudctlURL, cfg.WalrusURL, cfg.ClusterURL = fakeCloud(t).URL, walrus.URL, r.cluster.srv.URL
	cfg.ComponentCredentials = creds
	cfg.Capacity = sched.Resources{Cores: 4, MemoryMiB: 4096, DiskGiB: 100}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	<-srv.Ready()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-srv.Done(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	r.srv, r.base = srv, "http://"+srv.Addr()
	r.client = api.NewClient(r.base, clusterKey, 0)
	return r
}

func (r *rig) spec(id string) api.InstanceSpec {
	k := r.kernel
	return api.InstanceSpec{ID: id, ReservationID: "r-00000001", AccountID: "111122223333",
		Type:   api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 128, DiskGiB: 1}},
		Kernel: &k, Image: r.image, UserData: []byte("#!/bin/sh\necho hi\n"), MAC: "d0:0d:0a:00:00:05", PrivateIP: "10.0.0.5"}
}

// until polls cond until it holds, failing the test when its deadline
// nears.
func (r *rig) until(what string, cond func() bool) {
	r.t.Helper()
	for !cond() {
		if dl, ok := r.t.Deadline(); ok && time.Until(dl) < time.Second {
			r.t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pushed waits until the cluster has been told id is in state.
func (r *rig) pushed(id, state string) api.InstanceStatus {
	r.t.Helper()
	var st api.InstanceStatus
	r.until(id+" pushed as "+state, func() bool {
		st, _ = r.cluster.last(id)
		return st.State == state
	})
	return st
}

// call makes a raw request, signed with key for service when key is set,
// and returns the status and the error body.
func (r *rig) call(method, path string, body []byte, key *api.Credentials, service string) (int, api.Error) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.base+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if key != nil {
		if err := sigv4.Sign(req, key.AccessKeyID, key.SecretAccessKey, "internal", service, "", time.Now()); err != nil {
			r.t.Fatal(err)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	var e api.Error
	data, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(data, &e)
	return res.StatusCode, e
}

func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ce *api.CallError
	if !errors.As(err, &ce) || ce.Status != status || ce.Code != code {
		t.Errorf("%s: %v, want %d %s", what, err, status, code)
	}
}

func TestLaunchRunTerminate(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "i-0123456789abcdef0"
	st, err := r.client.Launch(ctx, r.spec(id))
	if err != nil || st.ID != id || st.Node != "node-1" {
		t.Fatalf("Launch = %+v, %v", st, err)
	}
	if again, err := r.client.Launch(ctx, r.spec(id)); err != nil || again.ID != id {
		t.Errorf("a repeated launch = %+v, %v", again, err)
	}
	pushed := r.pushed(id, api.Running)
	if pushed.PrivateIP != "10.0.0.5" || pushed.Type != "m1.small" || pushed.Node != "node-1" {
		t.Errorf("pushed status = %+v", pushed)
	}
	list, err := r.client.Instances(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].State != api.Running {
		t.Errorf("Instances = %+v, %v", list, err)
	}
	ns, err := r.client.Node(ctx)
	if err != nil || ns.Name != "node-1" || ns.Capacity != (sched.Resources{Cores: 4, MemoryMiB: 4096, DiskGiB: 100}) || len(ns.Instances) != 1 {
		t.Errorf("Node = %+v, %v", ns, err)
	}
	out, err := r.client.Console(ctx, id)
	if err != nil || !strings.Contains(string(out.Output), "koala-demo: instance "+id+" is up") {
		t.Errorf("Console = %q, %v", out.Output, err)
	}
	if _, err := r.client.Act(ctx, id, api.VerbModify, api.ActionRequest{}); err == nil {
		t.Error("modify of a running instance succeeded")
	} else {
		wantCode(t, "modify while running", err, http.StatusConflict, "IncorrectInstanceState")
	}
	if _, err := r.client.Act(ctx, id, "explode", api.ActionRequest{}); err == nil {
		t.Error("an unknown verb succeeded")
	} else {
		wantCode(t, "unknown verb", err, http.StatusBadRequest, "InvalidParameterValue")
	}
	if _, err := r.client.Act(ctx, id, api.VerbTerminate, api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	term := r.pushed(id, api.Terminated)
	if term.Reason == nil || term.Reason.Code != "Client.UserInitiatedShutdown" {
		t.Errorf("terminated with reason %+v", term.Reason)
	}
	list, err = r.client.Instances(ctx)
	if err != nil || len(list) != 1 || list[0].State != api.Terminated {
		t.Errorf("Instances after terminate = %+v, %v", list, err)
	}
}

func TestUnknownInstance(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "i-00000000000000bad"
	for _, verb := range []string{api.VerbStop, api.VerbStart, api.VerbReboot, api.VerbModify} {
		_, err := r.client.Act(ctx, id, verb, api.ActionRequest{})
		wantCode(t, verb, err, http.StatusNotFound, "InvalidInstanceID.NotFound")
	}
	_, err := r.client.Console(ctx, id)
	wantCode(t, "console", err, http.StatusNotFound, "InvalidInstanceID.NotFound")
	st, err := r.client.Act(ctx, id, api.VerbTerminate, api.ActionRequest{})
	if err != nil || st.State != api.Terminated || st.ID != id {
		t.Errorf("terminating an unknown instance = %+v, %v", st, err)
	}
	// An action with no body at all is an empty ActionRequest.
	if status, e := r.call(http.MethodPost, api.PathInstances+"/"+id+"/terminate", nil, &clusterKey, api.InternalService); status != 200 {
		t.Errorf("terminate without a body: %d %+v", status, e)
	}
}

func TestBadRequests(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	for name, mut := range map[string]func(*api.InstanceSpec){
		"bad id":    func(s *api.InstanceSpec) { s.ID = "i-nothex" },
		"no kernel": func(s *api.InstanceSpec) { s.Kernel = nil },
		"no cores":  func(s *api.InstanceSpec) { s.Type.Cores = 0 },
	} {
		s := r.spec("i-0000000000000b0d1")
		mut(&s)
		_, err := r.client.Launch(ctx, s)
		wantCode(t, name, err, http.StatusBadRequest, "InvalidParameterValue")
	}
	body, _ := json.Marshal(r.spec("i-0000000000000b0d2"))
	for _, tc := range []struct {
		name         string
		method, path string
		body         []byte
		status       int
		code         string
	}{
		{"path and body disagree", http.MethodPut, api.PathInstances + "/i-0000000000000b0d3", body, 400, "InvalidParameterValue"},
		{"not json", http.MethodPut, api.PathInstances + "/i-0000000000000b0d2", []byte("{"), 400, "MalformedRequest"},
		{"no body", http.MethodPut, api.PathInstances + "/i-0000000000000b0d2", nil, 400, "MalformedRequest"},
		{"too big", http.MethodPut, api.PathInstances + "/i-0000000000000b0d2", make([]byte, maxBody+1), 413, "RequestEntityTooLarge"},
		{"no such call", http.MethodDelete, api.PathNode, nil, 404, "InvalidAction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := r.call(tc.method, tc.path, tc.body, &clusterKey, api.InternalService)
			if status != tc.status || e.Code != tc.code {
				t.Errorf("%d %+v, want %d %s", status, e, tc.status, tc.code)
			}
		})
	}
	if list, err := r.client.Instances(ctx); err != nil || len(list) != 0 {
		t.Errorf("bad requests left instances: %+v, %v", list, err)
	}
}

func TestAuth(t *testing.T) {
	r := newRig(t, nil)
	wrong := api.Credentials{AccessKeyID: clusterKey.AccessKeyID, SecretAccessKey: "not-the-secret"}
	unknown := api.Credentials{AccessKeyID: "AKIANOBODY", SecretAccessKey: "x"}
	for _, tc := range []struct {
		name    string
		key     *api.Credentials
		service string
	}{
		{"unsigned", nil, ""},
		{"wrong secret", &wrong, api.InternalService},
		{"unknown key", &unknown, api.InternalService},
		{"account key", &userKey, api.InternalService},
		{"another service", &clusterKey, "ec2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{api.PathNode, api.PathInstances} {
				if status, e := r.call(http.MethodGet, path, nil, tc.key, tc.service); status != 403 || e.Code != "AuthFailure" {
					t.Errorf("GET %s: %d %+v, want 403 AuthFailure", path, status, e)
				}
			}
		})
	}
	// A signed body that is not the body sent.
	req, _ := http.NewRequest(http.MethodPost, r.base+api.PathInstances+"/i-0000000000000aaaa/terminate", strings.NewReader("{}"))
	if err := sigv4.Sign(req, clusterKey.AccessKeyID, clusterKey.SecretAccessKey, "internal", api.InternalService, sigv4.EmptySHA256, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Errorf("a body that does not match its hash: %d", res.StatusCode)
	}
	// The health check needs no signature.
	res, err = http.Get(r.base + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("health: %d %q", res.StatusCode, body)
	}
}

func TestBadImageEndsTerminated(t *testing.T) {
	r := newRig(t, nil)
	s := r.spec("i-0000000000000c0de")
	s.Image.SHA256 = strings.Repeat("0", 64) // walrus's bytes do not hash to it
	if _, err := r.client.Launch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	st := r.pushed(s.ID, api.Terminated)
	if st.Reason == nil || st.Reason.Code != "Server.InternalError" || !strings.Contains(st.Reason.Message, "could not fetch image ami-00000001") {
		t.Errorf("reason = %+v", st.Reason)
	}
}

func TestPushRetriesAndHeartbeats(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Heartbeat = Duration{Duration: 20 * time.Millisecond} })
	r.cluster.mu.Lock()
	r.cluster.fail = 3
	r.cluster.mu.Unlock()
	const id = "i-0000000000000beef"
	if _, err := r.client.Launch(context.Background(), r.spec(id)); err != nil {
		t.Fatal(err)
	}
	r.pushed(id, api.Running)
	// With nothing changing, the heartbeat keeps pushing.
	_, n := r.cluster.last(id)
	r.until("two more heartbeats", func() bool { _, m := r.cluster.last(id); return m >= n+2 })
}

func TestRestartAdopts(t *testing.T) {
	// The fake hypervisor lives in the process: a restarted server sees
	// no domain and boots the instance again, from its record.
	dir := filepath.Join(t.TempDir(), "data")
	r := newRig(t, func(c *Config) { c.DataDir = dir })
	const id = "i-0000000000000abcd"
	if _, err := r.client.Launch(context.Background(), r.spec(id)); err != nil {
		t.Fatal(err)
	}
	r.pushed(id, api.Running)
	if err := r.srv.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := newRig(t, func(c *Config) { c.DataDir = dir })
	r2.pushed(id, api.Running)
	if _, err := os.Stat(filepath.Join(dir, "cache", r.image.SHA256+".img")); err != nil {
		t.Errorf("image cache: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := Defaults()
	good.Name, good.CloudctlURL, good.WalrusURL, good.ComponentCredentials = "node-1", "http://127.0.0.1:8773", "http://127.0.0.1:8776", "k.json"
	if err := good.Validate(); err != nil {
		t.Fatalf("good: %v", err)
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name"},
		{"name with a slash", func(c *Config) { c.Name = "a/b" }, "name"},
		{"listen", func(c *Config) { c.Listen = "nowhere" }, "listen"},
		{"data_dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"cloudctl_url", func(c *Config) { c.CloudctlURL = "" }, "cloudctl_url"},
		{"walrus_url", func(c *Config) { c.WalrusURL = "ftp://x" }, "walrus_url"},
		{"cluster_url", func(c *Config) { c.ClusterURL = "localhost:8774" }, "cluster_url"},
		{"credentials", func(c *Config) { c.ComponentCredentials = "" }, "component_credentials"},
		{"driver", func(c *Config) { c.Driver = "xen" }, "driver"},
		{"domain_type", func(c *Config) { c.DomainType = "hvf" }, "domain_type"},
		{"bridge", func(c *Config) { c.Bridge = "a-very-long-bridge-name" }, "bridge"},
		{"capacity", func(c *Config) { c.Capacity.Cores = -1 }, "capacity"},
		{"heartbeat", func(c *Config) { c.Heartbeat = Duration{} }, "heartbeat"},
		{"keep_terminated", func(c *Config) { c.KeepTerminated = Duration{} }, "keep_terminated"},
		{"cache_max_bytes", func(c *Config) { c.CacheMaxBytes = -1 }, "cache_max_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mut(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	data := `{"name": "node-7", "driver": "fake", "heartbeat": "2s", "create_bridge": false, "capacity": {"cores": 2}}`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Find(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "node-7" || c.Driver != DriverFake || c.Heartbeat.Duration != 2*time.Second || c.CreateBridge ||
		c.Capacity.Cores != 2 || c.Listen != "127.0.0.1:8775" || c.Bridge != "koala0" || c.StopGrace.Duration != 30*time.Second {
		t.Errorf("Load = %+v", c)
	}
	if err := os.WriteFile(path, []byte(`{"nmae": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(path); err == nil {
		t.Error("a misspelt field loaded")
	}
}

func TestCapacity(t *testing.T) {
	dir := t.TempDir()
	meminfo := filepath.Join(dir, "meminfo")
	if err := os.WriteFile(meminfo, []byte("MemTotal:        8388608 kB\nMemFree: 1 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := capacity(sched.Resources{}, dir, meminfo)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cores < 1 || c.MemoryMiB != 8192-512 || c.DiskGiB < 0 {
		t.Errorf("capacity = %+v", c)
	}
	set := sched.Resources{Cores: 3, MemoryMiB: 1000, DiskGiB: 7}
	if c, err := capacity(set, dir, filepath.Join(dir, "missing")); err != nil || c != set {
		t.Errorf("configured capacity = %+v, %v", c, err)
	}
	if _, err := capacity(sched.Resources{}, dir, filepath.Join(dir, "missing")); err == nil {
		t.Error("no meminfo and no memory_mib: no error")
	}
}

func TestCredential(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://x/internal/v1/node", nil)
	if err := sigv4.Sign(r, "AKIAX", "s", "us-east-1", api.InternalService, sigv4.EmptySHA256, time.Now()); err != nil {
		t.Fatal(err)
	}
	if key, svc := credential(r); key != "AKIAX" || svc != api.InternalService {
		t.Errorf("header: %q %q", key, svc)
	}
	r, _ = http.NewRequest(http.MethodGet, "http://x/internal/v1/node", nil)
	if err := sigv4.Presign(r, "AKIAY", "s", "us-east-1", "ec2", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if key, svc := credential(r); key != "AKIAY" || svc != "ec2" {
		t.Errorf("query: %q %q", key, svc)
	}
	r, _ = http.NewRequest(http.MethodGet, "http://x/", nil)
	if key, svc := credential(r); key != "" || svc != "" {
		t.Errorf("unsigned: %q %q", key, svc)
	}
}
