//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/netfilter"
)

// binaries are the module's commands built once for every test that
// needs them at the same time; the last user removes them.
var binaries struct {
	mu    sync.Mutex
	users map[string]int
	bins  map[string]string
}

// daemonBinary builds ./name (once for all tests running together) and returns
// its path.
func daemonBinary(t *testing.T, name string) string {
	t.Helper()
	if name == "cloudctl" {
		return cloudctlBinary(t)
	}
	b := &binaries
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == nil {
		b.users, b.bins = map[string]int{}, map[string]string{}
	}
	if b.users[name] == 0 {
		bin, err := goBuild(name)
		if err != nil {
			t.Fatal(err)
		}
		b.bins[name] = bin
	}
	b.users[name]++
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.users[name]--; b.users[name] == 0 {
			os.RemoveAll(filepath.Dir(b.bins[name]))
			delete(b.bins, name)
		}
	})
	return b.bins[name]
}

// sharedDir is a directory the qemu user (libvirt-qemu) can traverse, for
// instance disks and consoles; t.TempDir's parents are private.
func sharedDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", pattern)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// libvirtUp is the prerequisite of a running libvirtd.
func libvirtUp() prereq {
	return prereq{what: "a running libvirtd (virsh list)", check: func() error {
		out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}}
}

// demoImages builds (or finds up to date) the demo image set under the
// repository's var/images/demo and returns its directory.
func demoImages(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "var", "images", "demo")
	run(t, os.Environ(), filepath.Join(root, "scripts", "mkimage.sh"), out)
	return out
}

// Configurations of the instance stack's daemons.

type instCloudctlConfig struct {
	Listen         string   `json:"listen"`
	DataDir        string   `json:"data_dir"`
	Region         string   `json:"region"`
	Zones          []string `json:"zones"`
	S3URL          string   `json:"s3_url"`
	WalrusURL      string   `json:"walrus_url"`
	ZonePolicy     string   `json:"zone_policy,omitempty"`
	PendingTimeout string   `json:"pending_timeout,omitempty"`
	ReconcilePoll  string   `json:"reconcile_poll,omitempty"`
	MaxInstances   int      `json:"max_instances,omitempty"`
	MetadataListen string   `json:"metadata_listen"`
}

type clusterctlConfig struct {
	Zone                 string          `json:"zone"`
	Listen               string          `json:"listen"`
	DataDir              string          `json:"data_dir"`
	CloudctlURL          string          `json:"cloudctl_url"`
	ComponentCredentials string          `json:"component_credentials"`
	Policy               string          `json:"policy"`
	Subnet               string          `json:"subnet"`
	Heartbeat            string          `json:"heartbeat"`
	Poll                 string          `json:"poll"`
	LaunchTimeout        string          `json:"launch_timeout"`
	Network              *clusterNetwork `json:"network,omitempty"`
}

// clusterNetwork is a cluster's network mode and bridge.
type clusterNetwork struct {
	Mode     string `json:"mode"`
	Bridge   string `json:"bridge"`
	Gateway  string `json:"gateway,omitempty"`
	Metadata string `json:"metadata,omitempty"`
	// PublicInterface holds the cluster's elastic IPs.
	PublicInterface string `json:"public_interface,omitempty"`
	// MACMap is STATIC mode's leases.
	MACMap []string `json:"mac_map,omitempty"`
}

type capacityConfig struct {
	Cores     int `json:"cores"`
	MemoryMiB int `json:"memory_mib"`
	DiskGiB   int `json:"disk_gib"`
}

type nodectlConfig struct {
	Name                 string         `json:"name"`
	Listen               string         `json:"listen"`
	DataDir              string         `json:"data_dir"`
	ClusterURL           string         `json:"cluster_url"`
	CloudctlURL          string         `json:"cloudctl_url"`
	WalrusURL            string         `json:"walrus_url"`
	ComponentCredentials string         `json:"component_credentials"`
	Driver               string         `json:"driver"`
	DomainType           string         `json:"domain_type,omitempty"`
	ProbeKernel          string         `json:"probe_kernel,omitempty"`
	Bridge               string         `json:"bridge"`
	Capacity             capacityConfig `json:"capacity"`
	Heartbeat            string         `json:"heartbeat"`
	StopGrace            string         `json:"stop_grace"`
	AoEInterface         string         `json:"aoe_interface,omitempty"`
}

// instStack is a whole cloud on this host: cloudctl, walrus, and
// clusters of nodes.
type instStack struct {
	t  *testing.T
	id int // tells the bridges of stacks running at once apart
	// metadataPort is cloudctl's metadata listener's port.
	metadataPort string
	c            *cloudctl
	w            *walrus
	clusters     []*cluster
	images       struct{ kernel, ramdisk, machine string }
	eucarc       map[string]string
	home         string
	user         account
	// storage is the storage network and ebs (stackSpec.storage).
	storage *storageNet
}

// cluster is one clusterctl with its nodes.
type cluster struct {
	*daemon
	subnet string // its first three octets
	zone   string
	config string
	keys   string
	nodes  []*node
	// client is the cluster's client host, whose network holds the
	// cluster's public address pool (stackSpec.clientHost).
	client *clientHost
}

// node is one nodectl.
type node struct {
	*daemon
	name    string
	config  string
	dataDir string
}

// staticMap is a STATIC cluster's MAC map on subnet 10.<n>.0.0/24: two
// leases, .50 and .51.
func staticMap(n int) []string {
	return []string{
		fmt.Sprintf("52:54:00:%02x:00:32=10.%d.0.50", n, n),
		fmt.Sprintf("52:54:00:%02x:00:33=10.%d.0.51", n, n),
	}
}

// stackSeq numbers the stacks of this test process.
var stackSeq atomic.Int32

// stackSpec says what to start.
type stackSpec struct {
	driver   string // libvirt or fake
	policies []string
	nodes    int            // per cluster
	capacity capacityConfig // per node
	pending  time.Duration
	zonePoly string
	maxInsts int
	// network is the clusters' network mode ("" = none configured: the
	// guests get no DHCP answer and no metadata).
	network string
	// subnetBase is the second octet of the first cluster's subnet
	// (10.<base+i>.0.0/24), default 100: stacks running at once with
	// managed networks need their own.
	subnetBase int
	// subnetBits is the prefix length of the clusters' subnets, default
	// 24 (254 private addresses); scale runs need a shorter one.
	subnetBits int
	// heartbeat and launchTimeout tune the clusters (default 1s and 1m);
	// poll is how often cloudctl and the clusters reconcile and nodes
	// report (default 1s, for quick tests).
	heartbeat, launchTimeout, poll string
	// clientHost gives each cluster a client host on a public network
	// 198.18.<subnet's second octet>.0/24 (see clientHost) and a pool of
	// public addresses there; it needs a network mode.
	clientHost bool
	// storage gives the first cluster's zone an ebs daemon on a storage
	// bridge, each node its own link to it (see storageNet).
	storage bool
}

// startInstStack starts cloudctl and walrus, then per policy a cluster
// with spec.nodes nodes, registers them, creates an account "runner" and
// installs the demo kernel, ramdisk and machine image as that account.
func startInstStack(t *testing.T, spec stackSpec) *instStack {
	t.Helper()
	walrusPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s3URL := "http://" + net.JoinHostPort("127.0.0.1", walrusPort)
	dir := t.TempDir()
	config := filepath.Join(dir, "cloudctl.json")
	c := &cloudctl{
		daemon:    newDaemon(t, "cloudctl", daemonBinary(t, "cloudctl"), filepath.Join(dir, "cloudctl.log"), "serve", "-config", config),
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		config:    config,
		walrusKey: filepath.Join(dir, "walrus-key.json"),
		s3URL:     s3URL,
	}
	pending := spec.pending
	if pending == 0 {
		pending = 5 * time.Minute
	}
	mdPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c.startOnFreePort(func(attempt int) error {
		err := writeJSON(c.config, instCloudctlConfig{
			MetadataListen: "0.0.0.0:" + mdPort,
			Listen:         c.addr, DataDir: c.dataDir, Region: "us-east-1", Zones: []string{"us-east-1a"}, S3URL: s3URL, WalrusURL: s3URL,
			ZonePolicy: spec.zonePoly, PendingTimeout: pending.String(), ReconcilePoll: or(spec.poll, "1s"), MaxInstances: spec.maxInsts,
		})
		if err != nil || attempt > 0 {
			return err
		}
		out, err := exec.Command(c.bin, "admin", "init", "-config", c.config, "-walrus-key", c.walrusKey).CombinedOutput()
		if err != nil {
			t.Fatalf("cloudctl admin init: %v\n%s", err, out)
		}
		c.admin = decodeAccount(t, "cloudctl admin init", out)
		return nil
	})
	st := &instStack{t: t, c: c, w: startStackWalrus(t, c, walrusPort), home: t.TempDir(), id: int(stackSeq.Add(1)) % 100,
		metadataPort: mdPort}
	if spec.storage {
		st.storage = newStorageNet(t, fmt.Sprintf("ks%d-%d", os.Getpid()%100000, st.id))
	}
	for i, policy := range spec.policies {
		st.clusters = append(st.clusters, st.startCluster(t, spec, i, policy))
	}
	if st.storage != nil {
		st.storage.startEBS(t, st.c, st.w)
		c.adminRun(t, []string{"cluster", "ebs", st.clusters[0].zone, st.storage.ebs.endpoint})
	}
	st.user = c.createAccount(t, "runner")
	creds := filepath.Join(t.TempDir(), "runner-creds")
	c.adminRun(t, []string{"credentials", "runner"}, "-dir", creds)
	st.eucarc = readEucarc(t, filepath.Join(creds, "eucarc"))
	st.installDemo(t)
	return st
}

func (st *instStack) startCluster(t *testing.T, spec stackSpec, i int, policy string) *cluster {
	t.Helper()
	zone := fmt.Sprintf("us-east-1%c", 'a'+i)
	dir := t.TempDir()
	cl := &cluster{zone: zone, config: filepath.Join(dir, "clusterctl.json"), keys: filepath.Join(dir, "key.json")}
	st.c.adminRun(t, []string{"component-key", "cluster-" + zone}, "-o", cl.keys)
	cl.daemon = newDaemon(t, "clusterctl-"+zone, daemonBinary(t, "clusterctl"), filepath.Join(dir, "clusterctl.log"), "serve", "-config", cl.config)
	// A bridge per stack and cluster, so that stacks running at once (and
	// make run's koala0) stay apart; Linux allows 15 characters.
	bridge := fmt.Sprintf("kt%d-%d%c", os.Getpid()%100000, st.id, 'a'+i)
	if spec.driver == "libvirt" || spec.network != "" {
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	}
	if spec.network != "" {
		// The cluster leaves its packet filter in place when it stops (its
		// guests keep their network); the test's goes with its bridge.
		t.Cleanup(func() { _ = netfilter.Runner{}.Remove(context.Background(), bridge) })
	}
	base := spec.subnetBase
	if base == 0 {
		base = 100
	}
	cl.subnet = fmt.Sprintf("10.%d.0", base+i)
	var network *clusterNetwork
	if spec.network != "" {
		network = &clusterNetwork{Mode: spec.network, Bridge: bridge, Gateway: cl.subnet + ".1",
			Metadata: cl.subnet + ".1:" + st.metadataPort}
		if spec.clientHost {
			cl.client = newClientHost(t, fmt.Sprintf("kc%d-%d%c", os.Getpid()%100000, st.id, 'a'+i), base+i)
			network.PublicInterface = cl.client.hostIf
		}
		if spec.network == "STATIC" {
			network.MACMap = staticMap(base + i)
		}
	}
	cl.startOnFreePort(func(int) error {
		return writeJSON(cl.config, clusterctlConfig{
			Zone: zone, Listen: cl.addr, DataDir: filepath.Join(dir, "data"), CloudctlURL: st.c.endpoint,
			ComponentCredentials: cl.keys, Policy: policy, Subnet: fmt.Sprintf("%s.0/%d", cl.subnet, cmp.Or(spec.subnetBits, 24)),
			Heartbeat: or(spec.heartbeat, or(spec.poll, "1s")), Poll: or(spec.poll, "1s"), LaunchTimeout: or(spec.launchTimeout, "1m"),
			Network: network,
		})
	})
	st.c.adminRun(t, []string{"cluster", "register", zone, cl.endpoint})
	if cl.client != nil {
		st.c.adminRun(t, []string{"cluster", "addresses", zone, cl.client.pool()})
	}
	for j := range spec.nodes {
		// Node names are libvirt domain owners: unique per stack, so that
		// one stack's node never takes another's guests for orphans.
		name := fmt.Sprintf("node-%c%d-%d-%d", 'a'+i, j+1, os.Getpid()%100000, st.id)
		cl.nodes = append(cl.nodes, st.startNode(t, spec, cl, name, bridge))
	}
	return cl
}

func (st *instStack) startNode(t *testing.T, spec stackSpec, cl *cluster, name, bridge string) *node {
	t.Helper()
	dir := sharedDir(t, "koala-e2e-"+name+"-")
	keys := filepath.Join(dir, "key.json")
	st.c.adminRun(t, []string{"component-key", name}, "-o", keys)
	n := &node{name: name, config: filepath.Join(dir, "nodectl.json"), dataDir: filepath.Join(dir, "data")}
	if spec.driver == "libvirt" {
		// Registered before the daemon, so it runs after the daemon has
		// stopped: a guest the test left (a terminate still on its way)
		// must not outlive it.
		t.Cleanup(func() { destroyDomainsOf(name) })
	}
	n.daemon = newDaemon(t, name, daemonBinary(t, "nodectl"), filepath.Join(dir, "nodectl.log"), "serve", "-config", n.config)
	demo := ""
	if spec.driver == "libvirt" {
		demo = filepath.Join(demoImages(t), "vmlinuz")
	}
	aoeIf := ""
	if st.storage != nil && cl.zone == "us-east-1a" {
		aoeIf = st.storage.link(t)
	}
	n.startOnFreePort(func(int) error {
		return writeJSON(n.config, nodectlConfig{
			Name: name, Listen: n.addr, DataDir: n.dataDir, ClusterURL: cl.endpoint, CloudctlURL: st.c.endpoint,
			WalrusURL: st.w.endpoint, ComponentCredentials: keys, Driver: spec.driver, ProbeKernel: demo,
			Bridge: bridge, Capacity: spec.capacity, Heartbeat: or(spec.poll, "1s"), StopGrace: "5s", AoEInterface: aoeIf,
		})
	})
	run(t, clientEnv(t.TempDir()), daemonBinary(t, "clusterctl"), "node", "register", name, n.endpoint, "-config", cl.config)
	return n
}

// installDemo bundles, uploads and registers the demo kernel, ramdisk and
// machine image as the stack's user.
func (st *instStack) installDemo(t *testing.T) {
	t.Helper()
	demo := demoImages(t)
	env := envOf(st.home, st.eucarc)
	install := func(file, bucket, name string, flags ...string) string {
		args := append([]string{"install-image", "-i", filepath.Join(demo, file), "-b", bucket, "-n", name, "-timeout", "2m"}, flags...)
		id := cloudctlTool(t, env, args...)
		if strings.Contains(id, "\n") || !strings.Contains(id, "-") {
			t.Fatalf("install-image %s printed %q", file, id)
		}
		return id
	}
	st.images.kernel = install("vmlinuz", "demo/kernel", "demo kernel", "-kernel", "true")
	st.images.ramdisk = install("initrd.img", "demo/ramdisk", "demo ramdisk", "-ramdisk", "true")
	st.images.machine = install("root.img", "demo/machine", "demo machine", "-kernel", st.images.kernel, "-ramdisk", st.images.ramdisk)
}

// cli is the aws CLI as the stack's user.
func (st *instStack) cli(t *testing.T) *awsCLI { return newAWSCLI(t, st.c.endpoint, st.user) }

// domains lists the libvirt domains whose names are instance IDs.
func domains(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	if err != nil {
		t.Fatalf("virsh list: %v", err)
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		if strings.HasPrefix(l, "i-") {
			m[l] = true
		}
	}
	return m
}

// waitFor polls cond every 200ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not after %s; last: %s", what, d, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cliInstance is an instance as `aws ec2 describe-instances` prints it.
type cliInstance struct {
	InstanceID string `json:"InstanceId"`
	State      struct {
		Name string `json:"Name"`
		Code int    `json:"Code"`
	} `json:"State"`
	InstanceType     string `json:"InstanceType"`
	PrivateIPAddress string `json:"PrivateIpAddress"`
	PublicIPAddress  string `json:"PublicIpAddress"`
	PrivateDNSName   string `json:"PrivateDnsName"`
	Placement        struct {
		AvailabilityZone string `json:"AvailabilityZone"`
	} `json:"Placement"`
	StateReason *struct {
		Code    string `json:"Code"`
		Message string `json:"Message"`
	} `json:"StateReason"`
	ImageID   string `json:"ImageId"`
	KernelID  string `json:"KernelId"`
	RamdiskID string `json:"RamdiskId"`
}

type cliReservations struct {
	Reservations []struct {
		ReservationID string        `json:"ReservationId"`
		OwnerID       string        `json:"OwnerId"`
		Instances     []cliInstance `json:"Instances"`
	} `json:"Reservations"`
}

// describe returns the user's instances by ID.
func (st *instStack) describe(t *testing.T, ids ...string) map[string]cliInstance {
	t.Helper()
	var out cliReservations
	args := []string{"ec2", "describe-instances"}
	if len(ids) > 0 {
		args = append(args, "--instance-ids")
		args = append(args, ids...)
	}
	st.cli(t).json(t, &out, args...)
	m := map[string]cliInstance{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			m[in.InstanceID] = in
		}
	}
	return m
}

// runInstances runs `aws ec2 run-instances` and returns the instances.
func (st *instStack) runInstances(t *testing.T, args ...string) []cliInstance {
	t.Helper()
	var out struct {
		Instances []cliInstance `json:"Instances"`
	}
	st.cli(t).json(t, &out, append([]string{"ec2", "run-instances", "--image-id", st.images.machine}, args...)...)
	return out.Instances
}

// nodeByName returns the stack's node called name.
func (st *instStack) nodeByName(name string) *node {
	for _, cl := range st.clusters {
		for _, n := range cl.nodes {
			if n.name == name {
				return n
			}
		}
	}
	st.t.Fatalf("no node %q", name)
	return nil
}

// nodeOf returns the node an instance runs on, per its directory.
func (st *instStack) nodeOf(id string) string {
	for _, cl := range st.clusters {
		for _, n := range cl.nodes {
			if _, err := os.Stat(filepath.Join(n.dataDir, "instances", id)); err == nil {
				return n.name
			}
		}
	}
	return ""
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// destroyDomainsOf destroys and undefines every libvirt domain whose
// Koala metadata names owner.
func destroyDomainsOf(owner string) {
	out, err := exec.Command("virsh", "-c", "qemu:///system", "list", "--all", "--name").Output()
	if err != nil {
		return
	}
	for _, dom := range strings.Fields(string(out)) {
		md, err := exec.Command("virsh", "-c", "qemu:///system", "metadata", dom, "--uri", "https://koala-cloud.dev/xmlns/instance/1").Output()
		if err != nil || !strings.Contains(string(md), "<owner>"+owner+"</owner>") {
			continue
		}
		_ = exec.Command("virsh", "-c", "qemu:///system", "destroy", dom).Run()
		_ = exec.Command("virsh", "-c", "qemu:///system", "undefine", dom).Run()
	}
}
