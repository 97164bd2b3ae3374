package instances

import (
	"errors"
	"fmt"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/addresses"
	"github.com/koala-cloud/koala/cloudctl/internal/clusters"
	"github.com/koala-cloud/koala/pkg/store"
)

// ErrAddressZone is an address from one zone's pool meeting an instance
// in another: only the pool's cluster routes the address.
var ErrAddressZone = errors.New("address from another zone's pool")

// Associate associates the account's elastic address a with its instance
// id and returns the address as now stored. An address associated with
// another instance moves only with reassociate (or when it is an
// EC2-Classic, "standard", address). The instance lets go of the public
// address it had: an elastic one stays allocated, one given at launch
// returns to the pool; the instance the address leaves gets a launch-time
// address again where its zone gives them.
func Associate(tx *store.Tx, account string, a addresses.Address, id string, reassociate bool) (addresses.Address, error) {
	in, err := Owned(tx, account, id)
	if err != nil {
		return a, err
	}
	if in.Final() || in.Desired == "terminated" {
		return a, fmt.Errorf("%w: The instance '%s' is not in a valid state for this operation.", ErrState, id)
	}
	if a.Zone != in.Zone {
		return a, fmt.Errorf("%w: The address '%s' is from the pool of availability zone %s and cannot be associated with instance '%s' in %s.",
			ErrAddressZone, a.PublicIP, a.Zone, id, in.Zone)
	}
	if a.Instance == id {
		return a, nil
	}
	if a.Instance != "" {
		if !reassociate && a.Domain != addresses.Standard {
			return a, fmt.Errorf("%w: resource %s is already associated with associate-id %s", addresses.ErrAssociated,
				a.AllocationID, a.AssociationID)
		}
		if err := leave(tx, a); err != nil {
			return a, err
		}
	}
	if in.PublicIP != "" {
		if err := addresses.Unbind(tx, in.PublicIP, in.ID); err != nil {
			return a, err
		}
	}
	if a, err = addresses.Associate(tx, a, id); err != nil {
		return a, err
	}
	in.PublicIP = a.PublicIP
	return a, Put(tx, in)
}

// Disassociate ends the association of the elastic address a, if any.
func Disassociate(tx *store.Tx, a addresses.Address) error {
	if a.Instance == "" {
		return nil
	}
	if err := leave(tx, a); err != nil {
		return err
	}
	a.Instance, a.AssociationID = "", ""
	return addresses.Put(tx, a)
}

// Release gives the elastic address a back to its pool. An associated
// address is disassociated first when it is a "standard" one; a "vpc" one
// must be disassociated by the caller (addresses.ErrInUse).
func Release(tx *store.Tx, a addresses.Address) error {
	if a.Instance != "" {
		if a.Domain != addresses.Standard {
			return fmt.Errorf("%w: Address '%s' is in use.", addresses.ErrInUse, a.PublicIP)
		}
		if err := Disassociate(tx, a); err != nil {
			return err
		}
	}
	return addresses.Delete(tx, a.PublicIP)
}

// leave takes the elastic address a off the instance it is associated
// with, which gets a launch-time address again where its zone gives
// them.
func leave(tx *store.Tx, a addresses.Address) error {
	in, err := Get(tx, a.Instance)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if in.PublicIP != a.PublicIP {
		return nil
	}
	in.PublicIP = ""
	if !in.Final() {
		// The address leaves first, so the pool has it back.
		a.Instance, a.AssociationID = "", ""
		if err := addresses.Put(tx, a); err != nil {
			return err
		}
		if err := autoAssign(tx, &in, time.Now()); err != nil {
			return err
		}
	}
	return Put(tx, in)
}

// autoAssign gives in a public address from its zone's pool when the zone
// gives them at launch and in has none. An empty pool leaves in without
// one: the instance still runs, reachable by its private address.
func autoAssign(tx *store.Tx, in *Instance, now time.Time) error {
	if in.PublicIP != "" || in.Final() {
		return nil
	}
	cl, err := clusters.Get(tx, in.Zone)
	if errors.Is(err, clusters.ErrNotFound) {
		return nil
	}
	if err != nil || !cl.AutoPublicIP {
		return err
	}
	pool, err := cl.Pool()
	if err != nil {
		return err
	}
	a, err := addresses.Allocate(tx, addresses.Request{Owner: in.Owner, Zone: in.Zone, Pool: pool, Now: now})
	if errors.Is(err, addresses.ErrNoCapacity) {
		return nil
	}
	if err != nil {
		return err
	}
	if a, err = addresses.Associate(tx, a, in.ID); err != nil {
		return err
	}
	in.PublicIP = a.PublicIP
	return nil
}
