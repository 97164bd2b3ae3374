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
// Options.GroupsChanged. From then on the cluster enforces groups, also
// after a restart.
func (c *Cluster) SetGroups(ctx context.Context, groups []api.Group) error {
	set := state.GroupSet{Received: time.Now().UTC(), Groups: slices.Clone(groups)}
	if set.Groups == nil {
		set.Groups = []api.Group{}
	}
	c.wmu.Lock()
	err := c.db.Update(func(stx *store.Tx) error { return stx.Put(state.GroupsBucket, state.GroupsKey, &set) })
	if err == nil {
		c.mu.Lock()
		c.groups = &set
		c.mu.Unlock()
	}
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("store groups: %w", err)
	}
	if c.opt.GroupsChanged != nil {
		c.opt.GroupsChanged()
	}
	return nil
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

// loadGroups reads the stored group set, if any.
func loadGroups(tx *store.Tx) (*state.GroupSet, error) {
	var set state.GroupSet
	err := tx.Get(state.GroupsBucket, state.GroupsKey, &set)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	return &set, nil
}
