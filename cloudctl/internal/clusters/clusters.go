// Package clusters keeps the registry of cluster controllers: one per
// availability zone, with the URL cloudctl reaches it at.
package clusters

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/ippool"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such cluster")
	ErrInvalid  = errors.New("invalid cluster")
)

// Cluster is a registered cluster controller.
type Cluster struct {
	Zone       string    `json:"zone"`
	URL        string    `json:"url"`
	Registered time.Time `json:"registered"`
	// PublicIPs is the zone's pool of public addresses as the
	// administrator wrote it (see ippool.Parse).
	PublicIPs []string `json:"public_ips,omitempty"`
	// AutoPublicIP gives each instance a public address from the pool at
	// launch.
	AutoPublicIP bool `json:"auto_public_ip,omitempty"`
	// EBS is the internal URL of the zone's ebs daemon; empty: the zone
	// has no volumes.
	EBS string `json:"ebs,omitempty"`
}

// Pool returns the zone's public addresses.
func (c Cluster) Pool() ([]netip.Addr, error) { return ippool.Parse(c.PublicIPs) }

var zoneRE = regexp.MustCompile(`^[a-z0-9][a-z0-9\-]{0,62}$`)

// Put registers (or moves) a cluster.
func Put(tx *store.Tx, c Cluster) error {
	if !zoneRE.MatchString(c.Zone) {
		return fmt.Errorf("%w: zone %q", ErrInvalid, c.Zone)
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: url %q", ErrInvalid, c.URL)
	}
	if _, err := c.Pool(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.EBS != "" {
		if u, err := url.Parse(c.EBS); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: ebs url %q", ErrInvalid, c.EBS)
		}
	}
	if old, err := Get(tx, c.Zone); err == nil {
		c.Registered = old.Registered
	}
	if c.Registered.IsZero() {
		c.Registered = time.Now().UTC()
	}
	return tx.Put(state.Clusters, []byte(c.Zone), c)
}

// Get returns a zone's cluster.
func Get(tx *store.Tx, zone string) (Cluster, error) {
	var c Cluster
	err := tx.Get(state.Clusters, []byte(zone), &c)
	if errors.Is(err, store.ErrNotFound) {
		return c, fmt.Errorf("%w: %s", ErrNotFound, zone)
	}
	return c, err
}

// Lookup is Get in a read transaction of its own.
func Lookup(db *store.DB, zone string) (Cluster, error) {
	var c Cluster
	err := db.View(func(tx *store.Tx) error {
		var err error
		c, err = Get(tx, zone)
		return err
	})
	return c, err
}

// EBS returns a client of a zone's ebs daemon that signs with creds and
// gives each call timeout, or nil when the zone has no ebs.
func EBS(db *store.DB, zone string, creds api.Credentials, timeout time.Duration) (*api.Client, error) {
	c, err := Lookup(db, zone)
	if err != nil || c.EBS == "" {
		return nil, err
	}
	return api.NewClient(c.EBS, creds, timeout), nil
}

// Delete deregisters a zone's cluster.
func Delete(tx *store.Tx, zone string) error {
	if _, err := Get(tx, zone); err != nil {
		return err
	}
	return tx.Delete(state.Clusters, []byte(zone))
}

// All returns the clusters in registration order.
func All(tx *store.Tx) ([]Cluster, error) {
	b, err := tx.Bucket(state.Clusters)
	if err != nil {
		return nil, err
	}
	var out []Cluster
	err = b.ForEach(func(_, v []byte) error {
		var c Cluster
		if err := store.Decode(v, &c); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Registered.Equal(out[j].Registered) {
			return out[i].Registered.Before(out[j].Registered)
		}
		return out[i].Zone < out[j].Zone
	})
	return out, err
}
