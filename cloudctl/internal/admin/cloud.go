package admin

import (
	"context"
	"errors"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/cloudctl/internal/vmtypes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// VMTypes lists the cloud's VM types.
func (s *Service) VMTypes(ctx context.Context) ([]api.VMType, error) {
	var out []api.VMType
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = vmtypes.All(tx)
		return err
	})
	return out, err
}

// SetVMType adds or changes a VM type.
func (s *Service) SetVMType(ctx context.Context, t api.VMType) error {
	return s.db.Commit(func(tx *store.Tx) error { return vmtypes.Put(tx, t) })
}

// DeleteVMType removes a VM type.
func (s *Service) DeleteVMType(ctx context.Context, name string) error {
	return s.db.Commit(func(tx *store.Tx) error { return vmtypes.Delete(tx, name) })
}

// Clusters lists the registered clusters.
func (s *Service) Clusters(ctx context.Context) ([]clusters.Cluster, error) {
	var out []clusters.Cluster
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = clusters.All(tx)
		return err
	})
	return out, err
}

// RegisterCluster registers the cluster controller of a zone at url; a
// zone registered again keeps its address pool.
func (s *Service) RegisterCluster(ctx context.Context, zone, url string) error {
	return s.db.Commit(func(tx *store.Tx) error {
		c, err := clusters.Get(tx, zone)
		if err != nil && !errors.Is(err, clusters.ErrNotFound) {
			return err
		}
		c.Zone, c.URL, c.Registered = zone, url, time.Now().UTC()
		return clusters.Put(tx, c)
	})
}

// SetClusterAddresses sets a zone's pool of public addresses (see
// ippool.Parse) and whether its instances get one at launch.
// Addresses in use stay theirs' until released, even when the pool no
// longer holds them.
func (s *Service) SetClusterAddresses(ctx context.Context, zone string, pool []string, auto bool) error {
	return s.db.Commit(func(tx *store.Tx) error {
		c, err := clusters.Get(tx, zone)
		if err != nil {
			return err
		}
		c.PublicIPs, c.AutoPublicIP = pool, auto
		return clusters.Put(tx, c)
	})
}

// SetClusterEBS sets the internal URL of a zone's ebs daemon (empty:
// none).
func (s *Service) SetClusterEBS(ctx context.Context, zone, url string) error {
	return s.db.Commit(func(tx *store.Tx) error {
		c, err := clusters.Get(tx, zone)
		if err != nil {
			return err
		}
		c.EBS = url
		return clusters.Put(tx, c)
	})
}

// DeregisterCluster forgets a zone's cluster; its instances end.
func (s *Service) DeregisterCluster(ctx context.Context, zone string) error {
	return s.db.Commit(func(tx *store.Tx) error { return clusters.Delete(tx, zone) })
}

// ComponentKey makes a new key for a daemon (a cluster or node
// controller) to sign internal calls with, replacing its old one.
func (s *Service) ComponentKey(ctx context.Context, component string) (ComponentKey, error) {
	k, err := s.accounts.CreateComponentKey(ctx, component)
	return ComponentKey{k.ID, k.Secret}, err
}
