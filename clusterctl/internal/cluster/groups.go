package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/koala-cloud/koala/clusterctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// SetGroups replaces the cluster's security groups with groups (the whole
// set, validated by the caller), commits them, and then tells
// Options.NetworkChanged. From then on the cluster enforces groups, also
// after a restart.
func (c *Cluster) SetGroups(ctx context.Context, groups []api.Group) error {
	set := state.GroupSet{Received: time.Now().UTC(), Groups: slices.Clone(groups)}
	if set.Groups == nil {
		set.Groups = []api.Group{}
	}
	return c.putSet("groups", state.GroupsKey, &set, func() { c.groups = &set })
}

// Groups returns the security groups last set, and whether a set was ever
// received; the caller must not change them.
func (c *Cluster) Groups() (groups []api.Group, received bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.groups == nil {
		return nil, false
	}
	return c.groups.Groups, true
}

// SetAddresses replaces the cluster's public address pool and the
// addresses associated with its instances (validated by the caller),
// commits them, and then tells Options.NetworkChanged.
func (c *Cluster) SetAddresses(ctx context.Context, req api.AddressesRequest) error {
	set := state.AddressSet{Received: time.Now().UTC(), Pool: slices.Clone(req.Pool), Addresses: slices.Clone(req.Addresses)}
	return c.putSet("addresses", state.AddressesKey, &set, func() { c.addrs = &set })
}

// Addresses returns the public addresses last set (the zero set when none
// was received); the caller must not change them.
func (c *Cluster) Addresses() api.AddressesRequest {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.addrs == nil {
		return api.AddressesRequest{}
	}
	return api.AddressesRequest{Pool: c.addrs.Pool, Addresses: c.addrs.Addresses}
}

// putSet commits one of the sets cloudctl hands the cluster, publishes it
// with publish (under the mirror's lock), and tells NetworkChanged.
func (c *Cluster) putSet(what string, key []byte, set any, publish func()) error {
	c.wmu.Lock()
	err := c.db.Update(func(stx *store.Tx) error { return stx.Put(state.GroupsBucket, key, set) })
	if err == nil {
		c.mu.Lock()
		publish()
		c.mu.Unlock()
	}
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("store %s: %w", what, err)
	}
	if c.opt.NetworkChanged != nil {
		c.opt.NetworkChanged()
	}
	return nil
}

// loadSet reads a stored set, if any.
func loadSet[T any](tx *store.Tx, key []byte) (*T, error) {
	var set T
	err := tx.Get(state.GroupsBucket, key, &set)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &set, nil
}
