package instances

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such instance")
	ErrState    = errors.New("instance in the wrong state")
	// ErrCapacity is a cluster's (or the cloud's) InsufficientInstanceCapacity.
	ErrCapacity = errors.New("insufficient capacity")
	// ErrAddresses is a cluster without a free private address (its
	// subnet, or STATIC mode's map, is used up).
	ErrAddresses = errors.New("insufficient free addresses")
	// ErrZone is an availability zone no cluster serves.
	ErrZone = errors.New("no such availability zone")
)

// Group is a security group an instance is in.
type Group struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Instance is cloudctl's record of an instance.
type Instance struct {
	ID          string        `json:"id"`
	Reservation string        `json:"reservation"`
	Owner       string        `json:"owner"` // account ID
	LaunchIndex int           `json:"launch_index"`
	Type        api.VMType    `json:"type"`
	Image       api.ImageRef  `json:"image"`
	Kernel      *api.ImageRef `json:"kernel,omitempty"`
	Ramdisk     *api.ImageRef `json:"ramdisk,omitempty"`
	KeyName     string        `json:"key_name,omitempty"`
	PublicKey   string        `json:"public_key,omitempty"`
	Groups      []Group       `json:"groups,omitempty"`
	UserData    []byte        `json:"user_data,omitempty"`
	ClientToken string        `json:"client_token,omitempty"`
	Zone        string        `json:"zone"`
	Node        string        `json:"node,omitempty"`
	MAC         string        `json:"mac,omitempty"`
	PrivateIP   string        `json:"private_ip,omitempty"`
	// PublicIP is the address from the zone's pool the instance is
	// reached at (see package addresses); the address record names the
	// instance too, and both change in one transaction.
	PublicIP string `json:"public_ip,omitempty"`
	// Metadata are the instance's metadata service options.
	Metadata MetadataOptions `json:"metadata_options"`
	State    string          `json:"state"`
	Reason   *api.Reason     `json:"reason,omitempty"`
	// Transition is EC2's StateTransitionReason, e.g. "User initiated
	// (2026-11-22 10:00:00 GMT)".
	Transition string    `json:"transition,omitempty"`
	Desired    string    `json:"desired"` // running, stopped or terminated
	Placed     bool      `json:"placed"`  // the cluster took it
	Launched   time.Time `json:"launched"`
	Since      time.Time `json:"since"` // in State since
	// Generation is the newest cluster report applied.
	Generation uint64 `json:"generation"`
}

// MetadataOptions are an instance's metadata service settings, EC2's
// InstanceMetadataOptions. The zero value is EC2's default.
type MetadataOptions struct {
	// HTTPTokens is "optional" (IMDSv1 and v2) or "required" (IMDSv2
	// only); empty means optional.
	HTTPTokens string `json:"http_tokens,omitempty"`
	// HTTPEndpoint is "enabled" or "disabled"; empty means enabled.
	HTTPEndpoint string `json:"http_endpoint,omitempty"`
	// HopLimit is the PUT response hop limit, 1 to 64; 0 means 1.
	HopLimit int `json:"hop_limit,omitempty"`
}

// Effective returns o with the defaults filled in.
func (o MetadataOptions) Effective() MetadataOptions {
	if o.HTTPTokens == "" {
		o.HTTPTokens = "optional"
	}
	if o.HTTPEndpoint == "" {
		o.HTTPEndpoint = "enabled"
	}
	if o.HopLimit == 0 {
		o.HopLimit = 1
	}
	return o
}

// Spec is the instance as a cluster runs it.
func (in Instance) Spec() api.InstanceSpec {
	groups := make([]string, len(in.Groups))
	for i, g := range in.Groups {
		groups[i] = g.ID
	}
	return api.InstanceSpec{
		ID: in.ID, ReservationID: in.Reservation, AccountID: in.Owner, LaunchIndex: in.LaunchIndex,
		Type: in.Type, Image: in.Image, Kernel: in.Kernel, Ramdisk: in.Ramdisk, UserData: in.UserData,
		KeyName: in.KeyName, PublicKey: in.PublicKey, Groups: groups, Node: in.Node, MAC: in.MAC, PrivateIP: in.PrivateIP,
	}
}

// PrivateDNS is the private host name EC2 forms from a private IP in a
// region ("ip-10-0-0-5.ec2.internal" in us-east-1,
// "ip-10-0-0-5.eu-west-1.compute.internal" elsewhere); empty without an IP.
// DescribeInstances and the metadata service both report it.
func PrivateDNS(ip, region string) string {
	if ip == "" {
		return ""
	}
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if region != "us-east-1" {
		return host + "." + region + ".compute.internal"
	}
	return host + ".ec2.internal"
}

// Final reports whether the instance is gone for good.
func (in Instance) Final() bool { return in.State == api.Terminated }

// Put stores an instance. An instance that is gone lets go of its public
// address: one given at launch returns to the pool, an elastic one stays
// with its account, unassociated.
func Put(tx *store.Tx, in Instance) error {
	if in.Final() && in.PublicIP != "" {
		if err := addresses.Unbind(tx, in.PublicIP, in.ID); err != nil {
			return err
		}
		in.PublicIP = ""
	}
	if in.Final() {
		if err := volumes.InstanceEnded(tx, in.ID); err != nil {
			return err
		}
	}
	return tx.Put(state.Instances, []byte(in.ID), in)
}

// Get returns an instance.
func Get(tx *store.Tx, id string) (Instance, error) {
	var in Instance
	err := tx.Get(state.Instances, []byte(id), &in)
	if errors.Is(err, store.ErrNotFound) {
		return in, fmt.Errorf("%w: The instance ID '%s' does not exist", ErrNotFound, id)
	}
	return in, err
}

// Owned returns an account's instance, else ErrNotFound.
func Owned(tx *store.Tx, account, id string) (Instance, error) {
	in, err := Get(tx, id)
	if err == nil && in.Owner != account {
		return Instance{}, fmt.Errorf("%w: The instance ID '%s' does not exist", ErrNotFound, id)
	}
	return in, err
}

// Delete forgets an instance, letting go of its public address as Put
// does.
func Delete(tx *store.Tx, id string) error {
	in, err := Get(tx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if in.PublicIP != "" {
		if err := addresses.Unbind(tx, in.PublicIP, in.ID); err != nil {
			return err
		}
	}
	return tx.Delete(state.Instances, []byte(id))
}

// All returns every instance (of one account when account is not
// empty), by launch time, reservation and launch index.
func All(tx *store.Tx, account string) ([]Instance, error) {
	return (*Cache)(nil).All(tx, account)
}

// Cache keeps decoded records for All: a record whose stored bytes have
// not changed is not decoded again. Listing 10,000 instances is then a
// scan and a comparison of bytes. The zero Cache is ready; a nil one
// decodes every time.
type Cache struct {
	mu  sync.Mutex
	m   map[string]cached
	seq uint64
}

type cached struct {
	raw     []byte
	in      Instance
	version uint64
}

// All is All with the cache.
func (c *Cache) All(tx *store.Tx, account string) ([]Instance, error) {
	out, _, err := c.AllVersions(tx, account)
	return out, err
}

// AllVersions is All that also returns, for each instance, a number that
// changes whenever its record does: a key for what callers derive from
// the record. Without a cache the versions are zero.
func (c *Cache) AllVersions(tx *store.Tx, account string) ([]Instance, []uint64, error) {
	type entry struct {
		in      Instance
		version uint64
	}
	b, err := tx.Bucket(state.Instances)
	if err != nil {
		return nil, nil, err
	}
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m == nil {
			c.m = map[string]cached{}
		}
	}
	seen := 0
	out := make([]entry, 0, b.Stats().KeyN)
	err = b.ForEach(func(k, v []byte) error {
		seen++
		var e entry
		hit := false
		if c != nil {
			if ce, ok := c.m[string(k)]; ok && bytes.Equal(ce.raw, v) {
				e, hit = entry{ce.in, ce.version}, true
			}
		}
		if !hit {
			if err := store.Decode(v, &e.in); err != nil {
				return err
			}
			if c != nil {
				c.seq++
				e.version = c.seq
				c.m[string(k)] = cached{raw: bytes.Clone(v), in: e.in, version: e.version}
			}
		}
		if account == "" || e.in.Owner == account {
			out = append(out, e)
		}
		return nil
	})
	if c != nil && len(c.m) > seen {
		// Forget deleted instances.
		for k := range c.m {
			if b.Get([]byte(k)) == nil {
				delete(c.m, k)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].in, out[j].in
		if !a.Launched.Equal(b.Launched) {
			return a.Launched.Before(b.Launched)
		}
		if a.Reservation != b.Reservation {
			return a.Reservation < b.Reservation
		}
		return a.LaunchIndex < b.LaunchIndex
	})
	ins, versions := make([]Instance, len(out)), make([]uint64, len(out))
	for i, e := range out {
		ins[i], versions[i] = e.in, e.version
	}
	return ins, versions, err
}

// userInitiated is EC2's StateTransitionReason for a user's action.
func userInitiated(t time.Time) string {
	return "User initiated (" + t.UTC().Format("2006-01-02 15:04:05 GMT") + ")"
}
