package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/placement"
	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

// NodeClient is what the cluster needs of a node; *api.Client is one.
type NodeClient interface {
	Launch(ctx context.Context, spec api.InstanceSpec) (api.InstanceStatus, error)
	Act(ctx context.Context, id, verb string, in api.ActionRequest) (api.InstanceStatus, error)
	Node(ctx context.Context) (api.NodeStatus, error)
	Console(ctx context.Context, id string) (api.ConsoleOutput, error)
}

// EventSink receives instance changes: cloudctl; *api.Client is one.
type EventSink interface {
	PushEvents(ctx context.Context, zone string, st []api.InstanceStatus) error
}

// Options configure a Cluster.
type Options struct {
	Zone   string
	Policy sched.Policy
	// Pool is the subnet private addresses are leased from.
	Pool *placement.Pool
	// Heartbeat: a node is DOWN when neither a push nor a poll of it
	// succeeded for three heartbeats.
	Heartbeat time.Duration
	// Poll is the period of the reconcile loop (node polls, retries, GC).
	Poll time.Duration
	// LaunchTimeout bounds how long a node may stay unreachable for a
	// launch or a termination before the instance ends terminated.
	LaunchTimeout time.Duration
	// KeepTerminated is how long terminated instances stay listed.
	KeepTerminated time.Duration
	// Dial returns the client of the node at url.
	Dial func(url string) NodeClient
	// Events receives instance changes; nil for none.
	Events EventSink
	// Debounce is how long changes are gathered before a push (50ms when 0).
	Debounce time.Duration
	// LeasesChanged, when set, is called after each committed change that
	// took or released a lease, or changed the host device a node reported
	// for a leased instance (Leases has the new set). It runs on the
	// change's path, so it must not block.
	LeasesChanged func()
	// NetworkChanged, when set, is called after SetGroups or SetAddresses
	// committed a new set (Groups or Addresses has it). It must not block.
	NetworkChanged func()
	Log            *slog.Logger
}

// Cluster is a cluster controller's state and background work.
type Cluster struct {
	opt Options
	db  *store.DB
	log *slog.Logger

	wmu sync.Mutex   // serializes changes; held while one is computed and committed
	mu  sync.RWMutex // guards the mirror below for readers; writers also hold wmu
	// The mirror of the database. Records are never changed in place
	// once published: a change puts new copies.
	nodes    map[string]*state.Node
	insts    map[string]*state.Instance
	leases   map[string]string // IP -> instance ID
	settings state.Settings
	groups   *state.GroupSet      // nil until cloudctl sent one
	addrs    *state.AddressSet    // nil until cloudctl sent one
	seen     map[string]time.Time // node -> newest successful push or poll

	bgMu      sync.Mutex
	ctx       context.Context // background work's lifetime; nil until Start
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	clients   map[string]NodeClient // by URL
	launching map[string]bool
	ending    map[string]bool // terminations in progress
	killing   map[string]bool // orphans being terminated
	relaunch  map[string]bool // relaunched once since last reported
	events    *pusher
}

// Open loads the cluster's state from db. Background work (dispatch,
// polls, events) begins with Start; without it the cluster still serves
// the admin calls, as the CLI does when no daemon runs.
func Open(db *store.DB, opt Options) (*Cluster, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Debounce <= 0 {
		opt.Debounce = 50 * time.Millisecond
	}
	c := &Cluster{
		opt: opt, db: db, log: opt.Log,
		nodes: map[string]*state.Node{}, insts: map[string]*state.Instance{}, leases: map[string]string{},
		seen: map[string]time.Time{}, clients: map[string]NodeClient{},
		launching: map[string]bool{}, ending: map[string]bool{}, killing: map[string]bool{}, relaunch: map[string]bool{},
	}
	err := db.View(func(tx *store.Tx) error {
		if err := each(tx, state.Nodes, func(k []byte, n *state.Node) { c.nodes[n.Name] = n; c.seen[n.Name] = n.LastSeen }); err != nil {
			return err
		}
		if err := each(tx, state.Instances, func(k []byte, in *state.Instance) { c.insts[in.Spec.ID] = in }); err != nil {
			return err
		}
		if err := each(tx, state.Leases, func(k []byte, id *string) { c.leases[string(k)] = *id }); err != nil {
			return err
		}
		var err error
		if c.groups, err = loadSet[state.GroupSet](tx, state.GroupsKey); err != nil {
			return err
		}
		if c.addrs, err = loadSet[state.AddressSet](tx, state.AddressesKey); err != nil {
			return err
		}
		err = tx.Get(state.SettingsBucket, state.SettingsKey, &c.settings)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load cluster state: %w", err)
	}
	return c, nil
}

// each decodes every value of a bucket.
func each[T any](tx *store.Tx, bucket string, fn func(k []byte, v *T)) error {
	b, err := tx.Bucket(bucket)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, raw []byte) error {
		v := new(T)
		if err := store.Decode(raw, v); err != nil {
			return fmt.Errorf("%s/%s: %w", bucket, k, err)
		}
		fn(k, v)
		return nil
	})
}

// Start begins the background work: the reconcile loop, which at once
// resumes the launches and terminations a previous run left, and the
// event pusher. ctx bounds it, as Close does.
func (c *Cluster) Start(ctx context.Context) {
	c.bgMu.Lock()
	c.ctx, c.cancel = context.WithCancel(ctx)
	if c.opt.Events != nil {
		c.events = &pusher{sink: c.opt.Events, zone: c.opt.Zone, log: c.log, debounce: c.opt.Debounce,
			pending: map[string]api.InstanceStatus{}, kick: make(chan struct{}, 1)}
		c.goLocked(func() { c.events.run(c.ctx) })
	}
	c.goLocked(c.loop)
	c.bgMu.Unlock()
}

// Close stops the background work and waits for it. The database stays
// open: its owner closes it.
func (c *Cluster) Close() {
	c.bgMu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.bgMu.Unlock()
	c.wg.Wait()
}

// goLocked runs fn in the background unless the cluster is stopped or
// not started; c.bgMu is held.
func (c *Cluster) goLocked(fn func()) bool {
	if c.ctx == nil || c.ctx.Err() != nil {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// client returns the client of the node at url.
func (c *Cluster) client(url string) NodeClient {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	cl, ok := c.clients[url]
	if !ok {
		cl = c.opt.Dial(url)
		c.clients[url] = cl
	}
	return cl
}

// instance returns the current record of an instance, nil if none.
func (c *Cluster) instance(id string) *state.Instance {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.insts[id]
}

// node returns the current record of a node, nil if none.
func (c *Cluster) node(name string) *state.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nodes[name]
}

// tx is one change being computed: what it will write, over the mirror.
type tx struct {
	c        *Cluster
	now      time.Time
	insts    map[string]*state.Instance // nil deletes
	nodes    map[string]*state.Node     // nil deletes
	leases   map[string]string          // "" deletes
	settings *state.Settings
	seen     map[string]time.Time
	events   []api.InstanceStatus
}

// change runs fn over a new tx and commits what it staged: to the
// database first, then to the mirror, then to the event queue. fn's
// error aborts the change.
func (c *Cluster) change(fn func(t *tx) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	t := &tx{c: c, now: time.Now().UTC(), insts: map[string]*state.Instance{}, nodes: map[string]*state.Node{},
		leases: map[string]string{}, seen: map[string]time.Time{}}
	if err := fn(t); err != nil {
		return err
	}
	return t.commit()
}

func (t *tx) inst(id string) *state.Instance {
	if in, ok := t.insts[id]; ok {
		return in
	}
	return t.c.insts[id]
}

func (t *tx) node(name string) *state.Node {
	if n, ok := t.nodes[name]; ok {
		return n
	}
	return t.c.nodes[name]
}

func (t *tx) lease(ip string) string {
	if id, ok := t.leases[ip]; ok {
		return id
	}
	return t.c.leases[ip]
}

func (t *tx) settingsCopy() *state.Settings {
	if t.settings == nil {
		s := t.c.settings
		t.settings = &s
	}
	return t.settings
}

// putInst stages an instance's new record: it takes the next
// generation, fills the status from the spec, queues the status as an
// event, and gives up the lease of a terminated instance.
func (t *tx) putInst(in *state.Instance) {
	s := t.settingsCopy()
	s.Generation++
	in.Generation = s.Generation
	st := &in.Status
	st.ID, st.Node, st.MAC, st.PrivateIP, st.Type = in.Spec.ID, in.Spec.Node, in.Spec.MAC, in.Spec.PrivateIP, in.Spec.Type.Name
	st.Generation = in.Generation
	if !in.Holds() {
		st.Iface = ""
	}
	if !in.Holds() && in.Spec.PrivateIP != "" && t.lease(in.Spec.PrivateIP) == in.Spec.ID {
		t.leases[in.Spec.PrivateIP] = ""
	}
	t.insts[in.Spec.ID] = in
	t.events = append(t.events, in.Status)
}

func (t *tx) commit() error {
	if len(t.insts) > 0 || len(t.nodes) > 0 || len(t.leases) > 0 || t.settings != nil {
		err := t.c.db.Update(func(stx *store.Tx) error {
			for id, in := range t.insts {
				if err := putOrDelete(stx, state.Instances, id, in, in == nil); err != nil {
					return err
				}
			}
			for name, n := range t.nodes {
				if err := putOrDelete(stx, state.Nodes, name, n, n == nil); err != nil {
					return err
				}
			}
			for ip, id := range t.leases {
				if err := putOrDelete(stx, state.Leases, ip, id, id == ""); err != nil {
					return err
				}
			}
			if t.settings != nil {
				return stx.Put(state.SettingsBucket, state.SettingsKey, t.settings)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	c := t.c
	leasesChanged := len(t.leases) > 0
	c.mu.Lock()
	for id, in := range t.insts {
		if old := c.insts[id]; in != nil && old != nil && in.Status.Iface != old.Status.Iface {
			leasesChanged = true // the lease's port moved
		}
		if in == nil {
			delete(c.insts, id)
		} else {
			c.insts[id] = in
		}
	}
	for name, n := range t.nodes {
		if n == nil {
			delete(c.nodes, name)
			delete(c.seen, name)
		} else {
			c.nodes[name] = n
		}
	}
	for ip, id := range t.leases {
		if id == "" {
			delete(c.leases, ip)
		} else {
			c.leases[ip] = id
		}
	}
	if t.settings != nil {
		c.settings = *t.settings
	}
	for name, at := range t.seen {
		if c.nodes[name] != nil && at.After(c.seen[name]) {
			c.seen[name] = at
		}
	}
	c.mu.Unlock()
	if leasesChanged && c.opt.LeasesChanged != nil {
		c.opt.LeasesChanged()
	}
	if len(t.events) > 0 {
		c.bgMu.Lock()
		ev := c.events
		c.bgMu.Unlock()
		if ev != nil {
			ev.add(t.events, true)
		}
	}
	return nil
}

func putOrDelete(stx *store.Tx, bucket, key string, v any, del bool) error {
	if del {
		return stx.Delete(bucket, []byte(key))
	}
	return stx.Put(bucket, []byte(key), v)
}

// upNodes returns the UP nodes in registration order as placement sees
// them, with their free resources, under wmu (t's view).
func (t *tx) upNodes() ([]sched.Node, []*state.Node) {
	var recs []*state.Node
	for name := range t.c.nodes {
		if n := t.node(name); n != nil && n.State == state.Up {
			recs = append(recs, n)
		}
	}
	for name, n := range t.nodes {
		if n != nil && n.State == state.Up && t.c.nodes[name] == nil {
			recs = append(recs, n)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	used := t.usage()
	out := make([]sched.Node, len(recs))
	for i, n := range recs {
		u := used[n.Name]
		out[i] = sched.Node{Name: n.Name, Total: n.Capacity, Free: n.Capacity.Sub(u.res), Instances: u.count}
	}
	return out, recs
}

type use struct {
	res   sched.Resources
	count int
}

// usage sums the resources the instances holding them take, per node.
func (t *tx) usage() map[string]use {
	used := map[string]use{}
	add := func(in *state.Instance) {
		if in != nil && in.Holds() {
			u := used[in.Spec.Node]
			u.res = u.res.Add(in.Spec.Type.Resources)
			u.count++
			used[in.Spec.Node] = u
		}
	}
	for id, in := range t.c.insts {
		if _, staged := t.insts[id]; !staged {
			add(in)
		}
	}
	for _, in := range t.insts {
		add(in)
	}
	return used
}

// readTx runs fn over a tx that is never committed, under wmu, for
// answers computed like a change's.
func (c *Cluster) readTx(fn func(t *tx)) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	fn(&tx{c: c, now: time.Now().UTC(), insts: map[string]*state.Instance{}, nodes: map[string]*state.Node{}, leases: map[string]string{}})
}
