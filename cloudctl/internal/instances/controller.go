package instances

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

// Config tunes a Controller.
type Config struct {
	// Credentials sign cloudctl's calls to the clusters.
	Credentials api.Credentials
	// ZonePolicy chooses a cluster when a request names no zone.
	ZonePolicy sched.ZonePolicy
	// Poll is how often every cluster is reconciled.
	Poll time.Duration
	// PendingTimeout ends an instance that is still pending after it in
	// terminated, with the reason.
	PendingTimeout time.Duration
	// Keep is how long terminated instances stay visible.
	Keep time.Duration
	// CallTimeout bounds one call to a cluster.
	CallTimeout time.Duration
}

func (c *Config) defaults() {
	if c.ZonePolicy == "" {
		c.ZonePolicy = sched.MostFree
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = 10 * time.Minute
	}
	if c.Keep <= 0 {
		c.Keep = time.Hour
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
}

// Controller drives the clusters for cloudctl's instances.
type Controller struct {
	db  *store.DB
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	cursor int // round-robin over zones
	kick   chan struct{}

	netsync networkSync
}

// New returns a controller over cloudctl's database.
func New(db *store.DB, cfg Config, log *slog.Logger) *Controller {
	cfg.defaults()
	return &Controller{db: db, cfg: cfg, log: log, kick: make(chan struct{}, 1), netsync: networkSync{
		sent: map[string][sha256.Size]byte{}, busy: map[string]bool{}, redo: map[string]bool{}, kick: make(chan struct{}, 1),
	}}
}

func (c *Controller) client(zone string) (*api.Client, error) {
	cl, err := clusters.Lookup(c.db, zone)
	if err != nil {
		return nil, err
	}
	return api.NewClient(cl.URL, c.cfg.Credentials, c.cfg.CallTimeout), nil
}

// Zones returns the registered clusters' zones in registration order.
func (c *Controller) Zones() ([]string, error) {
	var all []clusters.Cluster
	err := c.db.View(func(tx *store.Tx) error {
		var err error
		all, err = clusters.All(tx)
		return err
	})
	zones := make([]string, len(all))
	for i, cl := range all {
		zones[i] = cl.Zone
	}
	return zones, err
}

// ZoneResources is one cluster's answer to a resources query, or why it
// gave none.
type ZoneResources struct {
	api.ClusterResources
	Err error
}

// Resources asks every cluster, at once, how many instances of each type
// fit.
func (c *Controller) Resources(ctx context.Context, types []api.VMType) ([]ZoneResources, error) {
	zones, err := c.Zones()
	if err != nil {
		return nil, err
	}
	out := make([]ZoneResources, len(zones))
	var wg sync.WaitGroup
	for i, z := range zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Zone = z
			cl, err := c.client(z)
			if err == nil {
				var res api.ClusterResources
				res, err = cl.Resources(ctx, api.ResourcesRequest{Types: types})
				if err == nil {
					res.Zone = z
					out[i].ClusterResources = res
				}
			}
			out[i].Err = err
		}()
	}
	wg.Wait()
	return out, nil
}

// ChooseZone returns the zone to run instances of type t in: zone when
// given (ErrZone when no cluster serves it), else the one the zone
// policy picks among those with room for one (ErrCapacity when none).
func (c *Controller) ChooseZone(ctx context.Context, zone string, t api.VMType) (string, error) {
	if zone != "" {
		if _, err := c.client(zone); err != nil {
			return "", fmt.Errorf("%w: %s", ErrZone, zone)
		}
		return zone, nil
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := c.Resources(qctx, []api.VMType{t})
	if err != nil {
		return "", err
	}
	cands := make([]sched.Zone, len(res))
	for i, r := range res {
		cands[i].Name = r.Zone
		if r.Err != nil {
			c.log.Warn("cluster did not answer a resources query", "zone", r.Zone, "err", r.Err)
			continue
		}
		for _, ts := range r.Types {
			if ts.Name == t.Name {
				cands[i].Free = ts.Free
			}
		}
	}
	c.mu.Lock()
	i, next, ok := sched.PickZone(c.cfg.ZonePolicy, cands, c.cursor)
	c.cursor = next
	c.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("%w: There is no capacity available for instance type %s in any availability zone.", ErrCapacity, t.Name)
	}
	return cands[i].Name, nil
}

// Place hands stored pending instances to their zone's cluster, which
// takes all, at least minCount, or none (ErrCapacity, or ErrAddresses
// when it has no private address left; the records are deleted: they
// never ran). It returns the instances that now exist. A
// cluster that cannot be reached leaves them pending: the reconciler
// retries, and ends them with a reason if it never succeeds.
func (c *Controller) Place(ctx context.Context, zone string, ids []string, minCount int) ([]Instance, error) {
	var ins []Instance
	err := c.db.View(func(tx *store.Tx) error {
		for _, id := range ids {
			in, err := Get(tx, id)
			if err != nil {
				return err
			}
			ins = append(ins, in)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cl, err := c.client(zone)
	if err != nil {
		return nil, err
	}
	req := api.RunRequest{MinCount: minCount}
	for _, in := range ins {
		req.Instances = append(req.Instances, in.Spec())
	}
	res, err := cl.RunInstances(ctx, req)
	var ce *api.CallError
	switch {
	case err == nil:
	case api.Code(err) == "InsufficientInstanceCapacity":
		if derr := c.drop(ids); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("%w: %s", ErrCapacity, ce2msg(err))
	case api.Code(err) == "InsufficientFreeAddressesInSubnet":
		if derr := c.drop(ids); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("%w: %s", ErrAddresses, ce2msg(err))
	case errors.As(err, &ce) && ce.Status < 500:
		if derr := c.drop(ids); derr != nil {
			return nil, derr
		}
		return nil, fmt.Errorf("cluster %s refused the instances: %w", zone, err)
	default:
		c.log.Warn("cluster unreachable; the instances stay pending", "zone", zone, "err", err)
		c.Kick()
		return ins, nil
	}
	return c.placed(ids, res.Instances, true)
}

func ce2msg(err error) string {
	var ce *api.CallError
	if errors.As(err, &ce) && ce.Message != "" {
		return ce.Message
	}
	return "Insufficient capacity."
}

// drop deletes instances that never ran.
func (c *Controller) drop(ids []string) error {
	return c.db.Commit(func(tx *store.Tx) error {
		for _, id := range ids {
			if err := Delete(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// placed records what a cluster took and, with drop, deletes the rest.
func (c *Controller) placed(ids []string, took []api.InstanceSpec, drop bool) ([]Instance, error) {
	bySpec := map[string]api.InstanceSpec{}
	for _, s := range took {
		bySpec[s.ID] = s
	}
	var out []Instance
	err := c.db.Commit(func(tx *store.Tx) error {
		out = out[:0]
		for _, id := range ids {
			in, err := Get(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			s, ok := bySpec[id]
			if !ok {
				if in.Placed || !drop {
					out = append(out, in)
					continue
				}
				if err := Delete(tx, id); err != nil {
					return err
				}
				continue
			}
			in.Placed = true
			in.Node, in.MAC, in.PrivateIP = s.Node, s.MAC, s.PrivateIP
			if err := autoAssign(tx, &in, time.Now()); err != nil {
				return err
			}
			if err := Put(tx, in); err != nil {
				return err
			}
			out = append(out, in)
		}
		return nil
	})
	return out, err
}

// Change is an instance's state before and after an action.
type Change struct {
	ID       string
	Previous string
	Current  string
}

// update reads, changes and writes the account's instances in one
// transaction; fn returns whether to write.
func (c *Controller) update(account string, ids []string, fn func(in *Instance) (bool, error)) ([]Instance, []Change, error) {
	var ins []Instance
	var changes []Change
	err := c.db.Commit(func(tx *store.Tx) error {
		ins, changes = ins[:0], changes[:0]
		for _, id := range ids {
			in, err := Owned(tx, account, id)
			if err != nil {
				return err
			}
			prev := in.State
			write, err := fn(&in)
			if err != nil {
				return err
			}
			if write {
				if err := Put(tx, in); err != nil {
					return err
				}
			}
			ins = append(ins, in)
			changes = append(changes, Change{ID: id, Previous: prev, Current: in.State})
		}
		return nil
	})
	return ins, changes, err
}

// Terminate ends instances: the answer says each one's previous and
// current state.
func (c *Controller) Terminate(ctx context.Context, account string, ids []string) ([]Change, error) {
	now := time.Now().UTC()
	ins, changes, err := c.update(account, ids, func(in *Instance) (bool, error) {
		if in.Final() || in.Desired == api.Terminated {
			return false, nil
		}
		in.Desired, in.Transition = api.Terminated, userInitiated(now)
		if !in.Placed {
			in.State, in.Since = api.Terminated, now
			in.Reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
		} else {
			in.State, in.Since = api.ShuttingDown, now
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for i, in := range ins {
		if in.Placed && !in.Final() {
			if st, err := c.act(ctx, in, api.VerbTerminate, api.ActionRequest{}); err == nil {
				if cur, ok := c.apply(in.Zone, st); ok {
					changes[i].Current = cur
				}
			}
		}
	}
	return changes, nil
}

// Stop stops running instances; their disks stay on their nodes.
func (c *Controller) Stop(ctx context.Context, account string, ids []string) ([]Change, error) {
	now := time.Now().UTC()
	ins, changes, err := c.update(account, ids, func(in *Instance) (bool, error) {
		switch {
		case in.Desired == api.Stopped || in.State == api.Stopped:
			return false, nil
		case in.State != api.Running || in.Desired != api.Running:
			return false, fmt.Errorf("%w: This instance '%s' is not in a state from which it can be stopped.", ErrState, in.ID)
		}
		in.Desired, in.State, in.Since, in.Transition = api.Stopped, api.Stopping, now, userInitiated(now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	c.forward(ctx, ins, api.VerbStop)
	return changes, nil
}

// Start starts stopped instances on the nodes that hold their disks.
func (c *Controller) Start(ctx context.Context, account string, ids []string) ([]Change, error) {
	now := time.Now().UTC()
	ins, changes, err := c.update(account, ids, func(in *Instance) (bool, error) {
		switch {
		case in.Desired == api.Running && (in.State == api.Running || in.State == api.Pending):
			return false, nil
		case in.State != api.Stopped || in.Desired != api.Stopped:
			return false, fmt.Errorf("%w: The instance '%s' is not in a state from which it can be started.", ErrState, in.ID)
		}
		in.Desired, in.State, in.Since, in.Transition, in.Reason = api.Running, api.Pending, now, "", nil
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	c.forward(ctx, ins, api.VerbStart)
	return changes, nil
}

// forward sends an action to the clusters of instances that need it;
// the reconciler repeats what fails.
func (c *Controller) forward(ctx context.Context, ins []Instance, verb string) {
	for _, in := range ins {
		if !in.Placed {
			continue
		}
		if st, err := c.act(ctx, in, verb, api.ActionRequest{}); err == nil {
			c.apply(in.Zone, st)
		}
	}
}

// Reboot reboots running instances.
func (c *Controller) Reboot(ctx context.Context, account string, ids []string) error {
	ins, _, err := c.update(account, ids, func(in *Instance) (bool, error) {
		if in.Final() || in.Desired == api.Terminated {
			return false, fmt.Errorf("%w: The instance '%s' is not in a state from which it can be rebooted.", ErrState, in.ID)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.State == api.Running {
			_, _ = c.act(ctx, in, api.VerbReboot, api.ActionRequest{})
		}
	}
	return nil
}

// Modify changes a stopped instance's type or user data.
func (c *Controller) Modify(ctx context.Context, account, id string, t *api.VMType, userData []byte) error {
	ins, _, err := c.update(account, []string{id}, func(in *Instance) (bool, error) {
		if in.State != api.Stopped {
			return false, fmt.Errorf("%w: The instance '%s' is not in the 'stopped' state.", ErrState, in.ID)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if t != nil && t.Name != ins[0].Type.Name {
		if _, err := c.act(ctx, ins[0], api.VerbModify, api.ActionRequest{Type: t}); err != nil {
			if api.Code(err) == "InsufficientInstanceCapacity" {
				return fmt.Errorf("%w: %s", ErrCapacity, ce2msg(err))
			}
			return err
		}
	}
	_, _, err = c.update(account, []string{id}, func(in *Instance) (bool, error) {
		if t != nil {
			in.Type = *t
		}
		if userData != nil {
			in.UserData = userData
		}
		return true, nil
	})
	return err
}

// Console returns the tail of an instance's console; empty before it
// was placed.
func (c *Controller) Console(ctx context.Context, account, id string) (api.ConsoleOutput, error) {
	ins, _, err := c.update(account, []string{id}, func(*Instance) (bool, error) { return false, nil })
	if err != nil {
		return api.ConsoleOutput{}, err
	}
	in := ins[0]
	if !in.Placed {
		return api.ConsoleOutput{Timestamp: time.Now().UTC()}, nil
	}
	cl, err := c.client(in.Zone)
	if err != nil {
		return api.ConsoleOutput{}, err
	}
	out, err := cl.Console(ctx, in.ID)
	if errors.Is(err, api.ErrNotFound) {
		return api.ConsoleOutput{Timestamp: time.Now().UTC()}, nil
	}
	return out, err
}

// act sends one instance action to its cluster.
func (c *Controller) act(ctx context.Context, in Instance, verb string, req api.ActionRequest) (api.InstanceStatus, error) {
	cl, err := c.client(in.Zone)
	if err != nil {
		return api.InstanceStatus{}, err
	}
	st, err := cl.Act(ctx, in.ID, verb, req)
	if err != nil {
		c.log.Warn("instance action", "instance_id", in.ID, "zone", in.Zone, "verb", verb, "err", err)
	}
	return st, err
}
