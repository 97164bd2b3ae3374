// Package volumes keeps cloudctl's records of EBS volumes and drives
// each zone's ebs daemon to match them: a volume is written as
// "creating" (or "deleting") before the reply, and the controller then
// creates (or deletes) it on the zone's ebs, retrying until ebs answers,
// as instances are driven through their clusters.
package volumes

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for; the wrapping error's text is worded for the
// client.
var (
	ErrNotFound = errors.New("no such volume")
	ErrState    = errors.New("volume in the wrong state")
	ErrInUse    = errors.New("volume in use")
	ErrInvalid  = errors.New("invalid volume parameter")
)

// Volume states, as EC2 names them.
const (
	Creating  = "creating"
	Available = "available"
	InUse     = "in-use"
	Deleting  = "deleting"
	Deleted   = "deleted"
	Error     = "error"
)

// Types are the volume types CreateVolume takes; all are served alike.
var Types = []string{"standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"}

// MaxSizeGiB is the largest volume.
const MaxSizeGiB = 16384

// Attachment is a volume's attachment to an instance.
type Attachment struct {
	Instance string    `json:"instance"`
	Device   string    `json:"device"`
	State    string    `json:"state"` // attaching, attached, detaching
	Time     time.Time `json:"time"`
	// Force detaches without the instance's node: ebs stops letting any
	// node use the volume (DetachVolume Force, or the instance ended).
	Force bool `json:"force,omitempty"`
}

// Attachment states.
const (
	Attaching = "attaching"
	Attached  = "attached"
	Detaching = "detaching"
)

// Volume is cloudctl's record of a volume.
type Volume struct {
	ID          string      `json:"id"`
	Owner       string      `json:"owner"`
	Zone        string      `json:"zone"`
	SizeGiB     int         `json:"size_gib"`
	Type        string      `json:"type"`
	SnapshotID  string      `json:"snapshot_id,omitempty"`
	State       string      `json:"state"`
	Created     time.Time   `json:"created"`
	Since       time.Time   `json:"since"` // in State since
	Attachment  *Attachment `json:"attachment,omitempty"`
	ClientToken string      `json:"client_token,omitempty"`
	// Reason says why a volume is in error.
	Reason string `json:"reason,omitempty"`
}

var idRE = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)

// CheckID refuses a malformed volume ID.
func CheckID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: Invalid id: \"%s\" (expecting \"vol-...\")", ErrInvalid, id)
	}
	return nil
}

// Put stores a volume.
func Put(tx *store.Tx, v Volume) error { return tx.Put(state.Volumes, []byte(v.ID), v) }

// Get returns a volume.
func Get(tx *store.Tx, id string) (Volume, error) {
	var v Volume
	err := tx.Get(state.Volumes, []byte(id), &v)
	if errors.Is(err, store.ErrNotFound) {
		return v, fmt.Errorf("%w: The volume '%s' does not exist.", ErrNotFound, id)
	}
	return v, err
}

// Owned returns an account's volume, else ErrNotFound.
func Owned(tx *store.Tx, account, id string) (Volume, error) {
	v, err := Get(tx, id)
	if err == nil && v.Owner != account {
		return Volume{}, fmt.Errorf("%w: The volume '%s' does not exist.", ErrNotFound, id)
	}
	return v, err
}

// Delete forgets a volume.
func Delete(tx *store.Tx, id string) error { return tx.Delete(state.Volumes, []byte(id)) }

// All returns the volumes (of one account when account is not empty),
// by creation time and ID.
func All(tx *store.Tx, account string) ([]Volume, error) {
	b, err := tx.Bucket(state.Volumes)
	if err != nil {
		return nil, err
	}
	var out []Volume
	err = b.ForEach(func(_, raw []byte) error {
		var v Volume
		if err := store.Decode(raw, &v); err != nil {
			return err
		}
		if account == "" || v.Owner == account {
			out = append(out, v)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// MarkDeleting starts the deletion of an account's volume: only an
// available (or failed) volume may go; an attached one is VolumeInUse.
func MarkDeleting(tx *store.Tx, account, id string, now time.Time) (Volume, error) {
	v, err := Owned(tx, account, id)
	if err != nil {
		return v, err
	}
	switch {
	case v.Attachment != nil:
		return v, fmt.Errorf("%w: Volume %s is currently attached to %s", ErrInUse, id, v.Attachment.Instance)
	case v.State == InUse:
		return v, fmt.Errorf("%w: Volume %s is in use", ErrInUse, id)
	case v.State == Deleting || v.State == Deleted:
		return v, nil
	case v.State != Available && v.State != Error:
		return v, fmt.Errorf("%w: The volume '%s' is '%s'.", ErrState, id, v.State)
	}
	v.State, v.Since = Deleting, now.UTC()
	return v, Put(tx, v)
}

// GuestDevice maps an EC2 device name (/dev/sdf, /dev/xvdf, /dev/vdf) to
// the virtio device the node plugs it in as (vdf); ok is false for a name
// EC2 would refuse or the root device.
func GuestDevice(device string) (string, bool) {
	m := deviceRE.FindStringSubmatch(device)
	if m == nil {
		return "", false
	}
	return "vd" + m[1], true
}

var deviceRE = regexp.MustCompile(`^/dev/(?:sd|xvd|vd)([b-z])$`)

// Attach records the attachment of an account's available volume to an
// instance in its zone (checked by the caller) at device.
func Attach(tx *store.Tx, account, id, instance, device string, now time.Time) (Volume, error) {
	v, err := Owned(tx, account, id)
	if err != nil {
		return v, err
	}
	if v.Attachment != nil {
		return v, fmt.Errorf("%w: %s is already attached to an instance", ErrInUse, id)
	}
	if v.State != Available {
		return v, fmt.Errorf("%w: %s is not 'available'.", ErrState, id)
	}
	all, err := All(tx, "")
	if err != nil {
		return v, err
	}
	for _, o := range all {
		if o.Attachment != nil && o.Attachment.Instance == instance && o.Attachment.Device == device {
			return v, fmt.Errorf("%w: Attachment point %s is already in use", ErrInvalid, device)
		}
	}
	v.State, v.Since = InUse, now.UTC()
	v.Attachment = &Attachment{Instance: instance, Device: device, State: Attaching, Time: now.UTC()}
	return v, Put(tx, v)
}

// MarkDetaching starts the detachment of an account's volume; instance
// and device, when given, must be its attachment's.
func MarkDetaching(tx *store.Tx, account, id, instance, device string, force bool, now time.Time) (Volume, error) {
	v, err := Owned(tx, account, id)
	if err != nil {
		return v, err
	}
	at := v.Attachment
	if at == nil {
		return v, fmt.Errorf("%w: Volume '%s' is in the 'available' state.", ErrState, id)
	}
	if (instance != "" && instance != at.Instance) || (device != "" && device != at.Device) {
		return v, fmt.Errorf("%w: Volume '%s' is not attached to '%s' at '%s'.", ErrInvalid, id, instance, device)
	}
	at.State = Detaching
	at.Force = at.Force || force
	return v, Put(tx, v)
}

// InstanceEnded detaches, by force, the volumes attached to an instance
// that is gone.
func InstanceEnded(tx *store.Tx, instance string) error {
	all, err := All(tx, "")
	if err != nil {
		return err
	}
	for _, v := range all {
		if v.Attachment == nil || v.Attachment.Instance != instance || (v.Attachment.State == Detaching && v.Attachment.Force) {
			continue
		}
		v.Attachment.State, v.Attachment.Force = Detaching, true
		if err := Put(tx, v); err != nil {
			return err
		}
	}
	return nil
}
