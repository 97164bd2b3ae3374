package cluster

import (
	"errors"
	"fmt"
)

// Errors the API edge maps to AWS codes.
var (
	ErrNotFound    = errors.New("no such instance")
	ErrNoNode      = errors.New("no such node")
	ErrCapacity    = errors.New("insufficient capacity")
	ErrAddresses   = errors.New("no free private addresses")
	ErrState       = errors.New("incorrect instance state")
	ErrInvalid     = errors.New("invalid request")
	ErrUnreachable = errors.New("node unreachable")
)

// CapacityError says that fewer instances fit than the request's
// MinCount. It is ErrCapacity, or ErrAddresses when the subnet ran out.
type CapacityError struct {
	Zone      string
	Count     int
	Type      string
	Addresses bool
}

func (e *CapacityError) Error() string {
	if e.Addresses {
		return fmt.Sprintf("There are not enough free addresses in zone %s for %d instance(s)", e.Zone, e.Count)
	}
	return fmt.Sprintf("There is not enough capacity in zone %s for %d instance(s) of type %s", e.Zone, e.Count, e.Type)
}

// Is makes a CapacityError match ErrCapacity or ErrAddresses.
func (e *CapacityError) Is(target error) bool {
	if e.Addresses {
		return target == ErrAddresses
	}
	return target == ErrCapacity
}
