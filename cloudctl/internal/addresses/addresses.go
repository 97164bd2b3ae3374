package addresses

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for. The wrapping error's text is worded for the
// client.
var (
	ErrNotFound        = errors.New("no such address")
	ErrNoAllocation    = errors.New("no such allocation")
	ErrNoAssociation   = errors.New("no such association")
	ErrLimit           = errors.New("address limit reached")
	ErrNoCapacity      = errors.New("no free address")
	ErrInvalid         = errors.New("invalid address")
	ErrInUse           = errors.New("address in use")
	ErrAssociated      = errors.New("address already associated")
	ErrUnavailableHere = errors.New("address unavailable")
)

// Domains an elastic address may be allocated for.
const (
	VPC      = "vpc"
	Standard = "standard"
)

// Address is a public IPv4 address from a cluster's pool that is in use:
// an elastic IP an account allocated (AllocationID set), or an address
// the cloud gave an instance at launch (no AllocationID; it goes back to
// the pool when the instance lets go of it).
type Address struct {
	PublicIP string `json:"public_ip"`
	// Zone is the cluster whose pool the address is from (EC2's network
	// border group): only that cluster's instances can use it.
	Zone         string `json:"zone"`
	Owner        string `json:"owner"` // account ID
	AllocationID string `json:"allocation_id,omitempty"`
	Domain       string `json:"domain,omitempty"`
	// Instance and AssociationID are set while the address is associated.
	Instance      string    `json:"instance,omitempty"`
	AssociationID string    `json:"association_id,omitempty"`
	Allocated     time.Time `json:"allocated"`
}

// Elastic reports whether an account allocated the address.
func (a Address) Elastic() bool { return a.AllocationID != "" }

func key(ip netip.Addr) []byte { b := ip.As4(); return b[:] }

// parse reads a public IPv4 address as a client wrote it.
func parse(ip string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(ip)
	return a, err == nil && a.Is4()
}

// Get returns the record of an address in use.
func Get(tx *store.Tx, ip string) (Address, error) {
	var a Address
	addr, ok := parse(ip)
	if ok {
		err := tx.Get(state.Addresses, key(addr), &a)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return a, err
		}
	}
	return a, fmt.Errorf("%w: Address '%s' not found.", ErrNotFound, ip)
}

// Owned returns an account's elastic address by its public IP.
func Owned(tx *store.Tx, account, ip string) (Address, error) {
	a, err := Get(tx, ip)
	if err == nil && (a.Owner != account || !a.Elastic()) {
		return Address{}, fmt.Errorf("%w: Address '%s' not found.", ErrNotFound, ip)
	}
	return a, err
}

// ByAllocation returns an account's elastic address by allocation ID.
func ByAllocation(tx *store.Tx, account, id string) (Address, error) {
	return find(tx, account, func(a Address) bool { return a.AllocationID == id },
		fmt.Errorf("%w: The allocation ID '%s' does not exist", ErrNoAllocation, id))
}

// ByAssociation returns an account's elastic address by association ID.
func ByAssociation(tx *store.Tx, account, id string) (Address, error) {
	return find(tx, account, func(a Address) bool { return a.AssociationID == id },
		fmt.Errorf("%w: The association ID '%s' does not exist", ErrNoAssociation, id))
}

func find(tx *store.Tx, account string, ok func(Address) bool, notFound error) (Address, error) {
	all, err := List(tx, account)
	if err != nil {
		return Address{}, err
	}
	for _, a := range all {
		if ok(a) {
			return a, nil
		}
	}
	return Address{}, notFound
}

// List returns the account's elastic addresses by public IP; with an
// empty account, every address in use, the launch-time ones included.
func List(tx *store.Tx, account string) ([]Address, error) {
	b, err := tx.Bucket(state.Addresses)
	if err != nil {
		return nil, err
	}
	var out []Address
	err = b.ForEach(func(_, v []byte) error {
		var a Address
		if err := store.Decode(v, &a); err != nil {
			return err
		}
		if account == "" || (a.Owner == account && a.Elastic()) {
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// Put stores an address record.
func Put(tx *store.Tx, a Address) error {
	addr, ok := parse(a.PublicIP)
	if !ok {
		return fmt.Errorf("%w: %q is not an IPv4 address", ErrInvalid, a.PublicIP)
	}
	return tx.Put(state.Addresses, key(addr), a)
}

// Delete returns an address to its pool.
func Delete(tx *store.Tx, ip string) error {
	addr, ok := parse(ip)
	if !ok {
		return nil
	}
	return tx.Delete(state.Addresses, key(addr))
}

// Request is what an allocation asks for.
type Request struct {
	Owner string
	// Zone is the pool to take from.
	Zone string
	Pool []netip.Addr
	// Want is a particular address of the pool; the zero Addr takes the
	// lowest free one.
	Want netip.Addr
	// Domain is VPC or Standard for an elastic address; empty for an
	// address given at launch.
	Domain string
	// Limit is the most elastic addresses the owner may hold; 0 is no
	// limit.
	Limit int
	Now   time.Time
}

// Allocate takes an address from r.Zone's pool: an elastic address
// (r.Domain set, within r.Limit) or a launch-time one.
func Allocate(tx *store.Tx, r Request) (Address, error) {
	if r.Domain != "" && r.Limit > 0 {
		mine, err := List(tx, r.Owner)
		if err != nil {
			return Address{}, err
		}
		if len(mine) >= r.Limit {
			return Address{}, fmt.Errorf("%w: The maximum number of addresses has been reached.", ErrLimit)
		}
	}
	ip, err := free(tx, r)
	if err != nil {
		return Address{}, err
	}
	a := Address{PublicIP: ip.String(), Zone: r.Zone, Owner: r.Owner, Domain: r.Domain, Allocated: r.Now.UTC()}
	if r.Domain != "" {
		a.AllocationID = ident.Resource("eipalloc")
	}
	return a, Put(tx, a)
}

// free returns the address r wants, or the pool's lowest free one.
func free(tx *store.Tx, r Request) (netip.Addr, error) {
	b, err := tx.Bucket(state.Addresses)
	if err != nil {
		return netip.Addr{}, err
	}
	if r.Want.IsValid() {
		want := r.Want.Unmap()
		inPool := false
		for _, a := range r.Pool {
			inPool = inPool || a == want
		}
		if !inPool || b.Get(key(want)) != nil {
			return netip.Addr{}, fmt.Errorf("%w: The address '%s' is not available.", ErrUnavailableHere, r.Want)
		}
		return want, nil
	}
	for _, a := range r.Pool {
		if b.Get(key(a)) == nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: There are not enough free addresses in %s to satisfy your request.", ErrNoCapacity, r.Zone)
}

// Free counts the addresses of pool no one uses.
func Free(tx *store.Tx, pool []netip.Addr) (int, error) {
	b, err := tx.Bucket(state.Addresses)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range pool {
		if b.Get(key(a)) == nil {
			n++
		}
	}
	return n, nil
}

// Associate records that a is associated with instance, under a new
// association ID, and returns the record.
func Associate(tx *store.Tx, a Address, instance string) (Address, error) {
	a.Instance, a.AssociationID = instance, ident.Resource("eipassoc")
	return a, Put(tx, a)
}

// Unbind lets instance go of the address ip: an address given at launch
// returns to the pool, an elastic one stays allocated but unassociated.
// An address that is not the instance's is left alone.
func Unbind(tx *store.Tx, ip, instance string) error {
	a, err := Get(tx, ip)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || a.Instance != instance {
		return err
	}
	if !a.Elastic() {
		return Delete(tx, ip)
	}
	a.Instance, a.AssociationID = "", ""
	return Put(tx, a)
}

// InZone returns the zone's associated addresses.
func InZone(tx *store.Tx, zone string) ([]Address, error) {
	all, err := List(tx, "")
	if err != nil {
		return nil, err
	}
	var out []Address
	for _, a := range all {
		if a.Zone == zone && a.Instance != "" {
			out = append(out, a)
		}
	}
	return out, nil
}

// CheckDomain reads AllocateAddress's Domain: "vpc" (the default) or
// "standard".
func CheckDomain(d string) (string, error) {
	switch strings.TrimSpace(d) {
	case "", VPC:
		return VPC, nil
	case Standard:
		return Standard, nil
	}
	return "", fmt.Errorf("%w: Value (%s) for parameter domain is invalid. Valid values are: vpc, standard", ErrInvalid, d)
}
