// Package vmtypes keeps the cloud's VM types: what an instance of each
// takes from a node. They are cloud-wide and admin-editable; until an
// admin changes them, Eucalyptus's five classic types apply.
package vmtypes

import (
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such vm type")
	ErrInvalid  = errors.New("invalid vm type")
)

// Defaults are Eucalyptus's classic types.
var Defaults = []api.VMType{
	{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 128, DiskGiB: 2}},
	{Name: "c1.medium", Resources: sched.Resources{Cores: 1, MemoryMiB: 256, DiskGiB: 5}},
	{Name: "m1.large", Resources: sched.Resources{Cores: 2, MemoryMiB: 512, DiskGiB: 10}},
	{Name: "m1.xlarge", Resources: sched.Resources{Cores: 2, MemoryMiB: 1024, DiskGiB: 20}},
	{Name: "c1.xlarge", Resources: sched.Resources{Cores: 4, MemoryMiB: 2048, DiskGiB: 20}},
}

// DefaultType is what RunInstances launches when no type is named.
const DefaultType = "m1.small"

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]{0,62}$`)

var seededKey = []byte("_seeded")

// All returns every type, smallest first.
func All(tx *store.Tx) ([]api.VMType, error) {
	b, err := tx.Bucket(state.VMTypes)
	if err != nil {
		return nil, err
	}
	if b.Get(seededKey) == nil {
		return append([]api.VMType(nil), Defaults...), nil
	}
	var out []api.VMType
	err = b.ForEach(func(k, v []byte) error {
		if string(k) == string(seededKey) {
			return nil
		}
		var t api.VMType
		if err := store.Decode(v, &t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Cores != b.Cores {
			return a.Cores < b.Cores
		}
		if a.MemoryMiB != b.MemoryMiB {
			return a.MemoryMiB < b.MemoryMiB
		}
		if a.DiskGiB != b.DiskGiB {
			return a.DiskGiB < b.DiskGiB
		}
		return a.Name < b.Name
	})
	return out, err
}

// Get returns one type.
func Get(tx *store.Tx, name string) (api.VMType, error) {
	all, err := All(tx)
	if err != nil {
		return api.VMType{}, err
	}
	for _, t := range all {
		if t.Name == name {
			return t, nil
		}
	}
	return api.VMType{}, fmt.Errorf("%w: %s", ErrNotFound, name)
}

// seed writes the defaults the first time an admin edits the types.
func seed(tx *store.Tx) error {
	b, err := tx.Bucket(state.VMTypes)
	if err != nil {
		return err
	}
	if b.Get(seededKey) != nil {
		return nil
	}
	for _, t := range Defaults {
		if err := store.PutIn(b, []byte(t.Name), t); err != nil {
			return err
		}
	}
	return b.Put(seededKey, []byte("1"))
}

// Put adds or changes a type.
func Put(tx *store.Tx, t api.VMType) error {
	if !nameRE.MatchString(t.Name) || t.Cores <= 0 || t.MemoryMiB <= 0 || t.DiskGiB < 0 {
		return fmt.Errorf("%w: %q needs a name and positive cores and memory", ErrInvalid, t.Name)
	}
	if err := seed(tx); err != nil {
		return err
	}
	return tx.Put(state.VMTypes, []byte(t.Name), t)
}

// Delete removes a type.
func Delete(tx *store.Tx, name string) error {
	if _, err := Get(tx, name); err != nil {
		return err
	}
	if err := seed(tx); err != nil {
		return err
	}
	return tx.Delete(state.VMTypes, []byte(name))
}
