package snapshots

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for; the wrapping error's text is worded for the
// client.
var (
	ErrNotFound = errors.New("no such snapshot")
	ErrState    = errors.New("snapshot in the wrong state")
	ErrInvalid  = errors.New("invalid snapshot parameter")
	// ErrNotOwner is a change to a snapshot the caller may see (it is
	// shared with it) but does not own.
	ErrNotOwner = errors.New("not the snapshot's owner")
	// ErrBusy is a snapshot of a volume one of which is still pending.
	ErrBusy = errors.New("a snapshot of the volume is pending")
)

// Snapshot states, as EC2 names them; Deleting records are hidden.
const (
	Pending   = api.SnapshotPending
	Completed = api.SnapshotCompleted
	Error     = api.SnapshotError
	Deleting  = "deleting"
)

// Permission says who, besides its owner, may create volumes from a
// snapshot (and so see it).
type Permission struct {
	// Public is the group "all": every account.
	Public  bool     `json:"public,omitempty"`
	UserIDs []string `json:"user_ids,omitempty"`
}

// Allows reports whether the permission lets account create volumes.
func (p Permission) Allows(account string) bool {
	return p.Public || slices.Contains(p.UserIDs, account)
}

// Add grants the permission to users, and to everyone when public.
func (p *Permission) Add(users []string, public bool) {
	p.Public = p.Public || public
	for _, u := range users {
		if !slices.Contains(p.UserIDs, u) {
			p.UserIDs = append(p.UserIDs, u)
		}
	}
}

// Remove takes the permission from users, and from everyone when public
// (users listed keep it).
func (p *Permission) Remove(users []string, public bool) {
	p.Public = p.Public && !public
	p.UserIDs = slices.DeleteFunc(p.UserIDs, func(u string) bool { return slices.Contains(users, u) })
	if len(p.UserIDs) == 0 {
		p.UserIDs = nil
	}
}

// Snapshot is cloudctl's record of a snapshot.
type Snapshot struct {
	ID          string `json:"id"`
	Owner       string `json:"owner"` // account ID
	VolumeID    string `json:"volume_id"`
	VolumeSize  int    `json:"volume_size"` // GiB
	Description string `json:"description,omitempty"`
	// Zone is the zone of the volume, whose ebs takes the snapshot.
	Zone  string `json:"zone"`
	State string `json:"state"`
	// Progress is a percentage.
	Progress  int       `json:"progress"`
	StartTime time.Time `json:"start_time"`
	// StateMessage says why a snapshot failed.
	StateMessage           string     `json:"state_message,omitempty"`
	CreateVolumePermission Permission `json:"create_volume_permission"`
	// Submitted is when ebs took the job (zero until it has), and Seen
	// when ebs last reported on it.
	Submitted time.Time `json:"submitted,omitzero"`
	Seen      time.Time `json:"seen,omitzero"`
}

// Restorable reports whether account may create volumes from s: it owns
// s, or s is public, or shared with it.
func Restorable(s Snapshot, account string) bool {
	return s.Owner == account || s.CreateVolumePermission.Allows(account)
}

var idRE = regexp.MustCompile(`^snap-[0-9a-f]{8}([0-9a-f]{9})?$`)

// NewID returns a new snapshot ID: snap- and 17 hex digits.
func NewID() string { return ident.Resource("snap") }

// CheckID refuses a malformed snapshot ID.
func CheckID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: Invalid id: \"%s\" (expecting \"snap-...\")", ErrInvalid, id)
	}
	return nil
}

func notFound(id string) error {
	return fmt.Errorf("%w: The snapshot '%s' does not exist.", ErrNotFound, id)
}

// Put stores a snapshot.
func Put(tx *store.Tx, s Snapshot) error { return tx.Put(state.Snapshots, []byte(s.ID), s) }

// Get returns a snapshot, deleting ones included.
func Get(tx *store.Tx, id string) (Snapshot, error) {
	var s Snapshot
	err := tx.Get(state.Snapshots, []byte(id), &s)
	if errors.Is(err, store.ErrNotFound) {
		return s, notFound(id)
	}
	return s, err
}

// Visible returns a snapshot account may restore (and so see), else
// ErrNotFound.
func Visible(tx *store.Tx, account, id string) (Snapshot, error) {
	s, err := Get(tx, id)
	if err != nil {
		return Snapshot{}, err
	}
	if s.State == Deleting || !Restorable(s, account) {
		return Snapshot{}, notFound(id)
	}
	return s, nil
}

// Owned returns an account's snapshot for a change: ErrNotFound when the
// account cannot see it, ErrNotOwner when it can but does not own it.
func Owned(tx *store.Tx, account, id string) (Snapshot, error) {
	s, err := Visible(tx, account, id)
	if err == nil && s.Owner != account {
		return Snapshot{}, fmt.Errorf("%w: You are not authorized to perform this operation on snapshot %s.", ErrNotOwner, id)
	}
	return s, err
}

// Delete forgets a snapshot.
func Delete(tx *store.Tx, id string) error { return tx.Delete(state.Snapshots, []byte(id)) }

// All returns every snapshot record, deleting ones included, by start
// time and ID.
func All(tx *store.Tx) ([]Snapshot, error) {
	b, err := tx.Bucket(state.Snapshots)
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	err = b.ForEach(func(_, raw []byte) error {
		var s Snapshot
		if err := store.Decode(raw, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartTime.Equal(out[j].StartTime) {
			return out[i].StartTime.Before(out[j].StartTime)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// Create records a pending snapshot of an account's volume, which must be
// available or in use and have no other snapshot pending (ebs takes one
// at a time).
func Create(tx *store.Tx, account, volumeID, description string, now time.Time) (Snapshot, error) {
	v, err := volumes.Owned(tx, account, volumeID)
	if err != nil {
		return Snapshot{}, err
	}
	if v.State != volumes.Available && v.State != volumes.InUse {
		return Snapshot{}, fmt.Errorf("%w: The volume '%s' is '%s'; only an 'available' or 'in-use' volume can be snapshotted.", ErrState, volumeID, v.State)
	}
	all, err := All(tx)
	if err != nil {
		return Snapshot{}, err
	}
	for _, o := range all {
		if o.VolumeID == volumeID && o.State == Pending {
			return Snapshot{}, fmt.Errorf("%w: The maximum per volume CreateSnapshot request rate has been exceeded: snapshot %s of %s is still pending.", ErrBusy, o.ID, volumeID)
		}
	}
	s := Snapshot{ID: NewID(), Owner: account, VolumeID: volumeID, VolumeSize: v.SizeGiB, Description: description,
		Zone: v.Zone, State: Pending, StartTime: now.UTC()}
	return s, Put(tx, s)
}

// Restore checks that account may create a volume of sizeGiB (0: the
// snapshot's size) from a snapshot and returns the snapshot and the size.
func Restore(tx *store.Tx, account, id string, sizeGiB int) (Snapshot, int, error) {
	s, err := Visible(tx, account, id)
	if err != nil {
		return s, 0, err
	}
	if s.State != Completed {
		return s, 0, fmt.Errorf("%w: Snapshot is in invalid state - %s", ErrState, s.State)
	}
	if sizeGiB == 0 {
		sizeGiB = s.VolumeSize
	}
	if sizeGiB < s.VolumeSize {
		return s, 0, fmt.Errorf("%w: Volume of %d GiB is too small; minimum is %d GiB.", ErrInvalid, sizeGiB, s.VolumeSize)
	}
	return s, sizeGiB, nil
}

// MarkDeleting starts the deletion of an account's snapshot, which hides
// it, and drops its tags; a pending snapshot cannot go yet.
func MarkDeleting(tx *store.Tx, account, id string) (Snapshot, error) {
	s, err := Owned(tx, account, id)
	if err != nil {
		return s, err
	}
	if s.State == Pending {
		return s, fmt.Errorf("%w: The snapshot '%s' is still 'pending'; it can be deleted once it has completed or failed.", ErrState, id)
	}
	s.State = Deleting
	if err := Put(tx, s); err != nil {
		return s, err
	}
	return s, tags.Drop(tx, account, id)
}

// ChangePermission applies add, then remove, to the create volume
// permission of an account's snapshot.
func ChangePermission(tx *store.Tx, account, id string, add, remove Permission) (Snapshot, error) {
	s, err := Owned(tx, account, id)
	if err != nil {
		return s, err
	}
	s.CreateVolumePermission.Add(add.UserIDs, add.Public)
	s.CreateVolumePermission.Remove(remove.UserIDs, remove.Public)
	return s, Put(tx, s)
}

// ResetPermission makes an account's snapshot private again.
func ResetPermission(tx *store.Tx, account, id string) (Snapshot, error) {
	s, err := Owned(tx, account, id)
	if err != nil {
		return s, err
	}
	s.CreateVolumePermission = Permission{}
	return s, Put(tx, s)
}
