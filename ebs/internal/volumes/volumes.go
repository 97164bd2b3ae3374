// Package volumes keeps ebs's volumes: a record per volume in bbolt and
// its storage in a Backend (a sparse file per volume under the data
// directory, or a thin logical volume of LVM), each with an AoE address
// (shelf.slot) that is unique and stays the volume's for its life,
// across restarts.
//
// A create makes the storage durably before the record commits; a
// delete marks the record, removes the storage, then drops the record.
// Open finishes or undoes whatever a crash interrupted: storage without
// a record goes, deletions in progress complete.
package volumes

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such volume")
	ErrInUse    = errors.New("volume in use")
	ErrInvalid  = errors.New("invalid volume request")
	ErrMismatch = errors.New("volume exists with other parameters")
	ErrFull     = errors.New("no free AoE address")
)

const (
	// Bucket holds the volumes' records.
	Bucket = "volumes"
	// SlotsPerShelf is how many slots of a shelf volumes use (255 is
	// the broadcast slot).
	SlotsPerShelf = 255
	// MaxSizeGiB is the largest volume, as EC2's standard volumes.
	MaxSizeGiB = 16384
)

// Volume is a volume's record.
type Volume struct {
	ID      string    `json:"id"`
	SizeGiB int       `json:"size_gib"`
	Shelf   uint16    `json:"shelf"`
	Slot    uint8     `json:"slot"`
	Created time.Time `json:"created"`
	// Allow are the MACs (canonical form) that may use the volume.
	Allow []string `json:"allow,omitempty"`
	// Deleting is set while the volume's file is being removed.
	Deleting bool `json:"deleting,omitempty"`
	// SnapshotID is the snapshot the volume was created from; while
	// Filling, Fill has a bit set for each chunk that holds its data
	// (the others are still to be read from the snapshot).
	SnapshotID string `json:"snapshot_id,omitempty"`
	Filling    bool   `json:"filling,omitempty"`
	Fill       []byte `json:"fill,omitempty"`
}

// Sectors is the volume's size in 512-byte sectors.
func (v Volume) Sectors() uint64 { return uint64(v.SizeGiB) << 21 }

var idRE = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)

// Backend keeps the volumes' storage.
type Backend interface {
	// Make creates the storage of volume id, size bytes of zeros,
	// durably, replacing any left of an interrupted Make.
	Make(id string, size int64) error
	// Remove deletes a volume's storage; one not there is no error.
	Remove(id string) error
	// Path is what ebs opens to serve a volume.
	Path(id string) string
	// Clean removes the storage of every volume keep does not name, and
	// reports one keep names that is missing.
	Clean(keep map[string]bool) error
}

// Store is the volumes of one ebs.
type Store struct {
	db    *store.DB
	back  Backend
	shelf uint16 // first shelf
	// shelves is how many shelves from shelf the store may use.
	shelves int

	mu sync.Mutex // serializes changes
}

// Open opens the store over db, with storage in back, and recovers from
// an interrupted create or delete. Volumes take AoE addresses from shelf
// (and the shelves after it, shelves in all).
func Open(db *store.DB, back Backend, shelf uint16, shelves int) (*Store, error) {
	s := &Store{db: db, back: back, shelf: shelf, shelves: max(shelves, 1)}
	return s, s.recover()
}

// Path is what ebs opens to serve volume id.
func (s *Store) Path(id string) string { return s.back.Path(id) }

// recover completes deletions, and removes the storage no record names.
func (s *Store) recover() error {
	all, err := s.List()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, v := range all {
		if v.Deleting {
			if err := s.finishDelete(v.ID); err != nil {
				return err
			}
			continue
		}
		known[v.ID] = true
	}
	return s.back.Clean(known)
}

// Get returns a volume.
func (s *Store) Get(id string) (Volume, error) {
	var v Volume
	err := s.db.View(func(tx *store.Tx) error { return tx.Get(Bucket, []byte(id), &v) })
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleting) {
		return Volume{}, fmt.Errorf("%w: The volume '%s' does not exist.", ErrNotFound, id)
	}
	return v, err
}

// List returns every volume, by ID.
func (s *Store) List() ([]Volume, error) {
	var out []Volume
	err := s.db.View(func(tx *store.Tx) error {
		b, err := tx.Bucket(Bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(_, raw []byte) error {
			var v Volume
			if err := store.Decode(raw, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

// Create makes volume id of sizeGiB, or returns it when it exists with
// that size (ErrMismatch otherwise). A volume from snapshot snap (when
// not "") starts filling, with the chunks fill marks as filled already.
func (s *Store) Create(id string, sizeGiB int, snap string, fill []byte, now time.Time) (Volume, error) {
	if !idRE.MatchString(id) {
		return Volume{}, fmt.Errorf("%w: volume ID %q", ErrInvalid, id)
	}
	if sizeGiB < 1 || sizeGiB > MaxSizeGiB {
		return Volume{}, fmt.Errorf("%w: size %d GiB: want 1 to %d", ErrInvalid, sizeGiB, MaxSizeGiB)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.List()
	if err != nil {
		return Volume{}, err
	}
	used := map[uint32]bool{}
	for _, v := range all {
		if v.ID == id {
			if v.SizeGiB != sizeGiB || v.SnapshotID != snap || v.Deleting {
				return Volume{}, fmt.Errorf("%w: %s has %d GiB from snapshot %q", ErrMismatch, id, v.SizeGiB, v.SnapshotID)
			}
			return v, nil
		}
		used[uint32(v.Shelf)<<8|uint32(v.Slot)] = true
	}
	v := Volume{ID: id, SizeGiB: sizeGiB, Created: now.UTC(), SnapshotID: snap, Filling: snap != "", Fill: fill}
	found := false
	for i := 0; i < s.shelves*SlotsPerShelf && !found; i++ {
		shelf, slot := s.shelf+uint16(i/SlotsPerShelf), uint8(i%SlotsPerShelf)
		if !used[uint32(shelf)<<8|uint32(slot)] {
			v.Shelf, v.Slot, found = shelf, slot, true
		}
	}
	if !found {
		return Volume{}, fmt.Errorf("%w: all %d shelves from %d are taken", ErrFull, s.shelves, s.shelf)
	}
	if err := s.back.Make(id, int64(v.Sectors())*512); err != nil {
		return Volume{}, err
	}
	err = s.db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(id), v) })
	if err != nil {
		s.back.Remove(id)
		return Volume{}, err
	}
	return v, nil
}

// Delete removes a volume and its file; an attached volume is
// ErrInUse. remove is called between marking the record and removing the
// file, to stop serving it.
func (s *Store) Delete(id string, remove func(Volume)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.Get(id)
	if err != nil {
		return err
	}
	if len(v.Allow) > 0 {
		return fmt.Errorf("%w: Volume %s is currently attached to %s", ErrInUse, id, strings.Join(v.Allow, ", "))
	}
	v.Deleting = true
	if err := s.db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(id), v) }); err != nil {
		return err
	}
	if remove != nil {
		remove(v)
	}
	return s.finishDelete(id)
}

func (s *Store) finishDelete(id string) error {
	if err := s.back.Remove(id); err != nil {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	return s.db.Commit(func(tx *store.Tx) error { return tx.Delete(Bucket, []byte(id)) })
}

// SetAllowed adds (allow) or removes mac from a volume's attachments and
// returns the volume as stored; apply, when set, sees the new volume
// before the next change, so that what serves it follows in order.
func (s *Store) SetAllowed(id, mac string, allow bool, apply func(Volume)) (Volume, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw[0]&1 == 1 {
		return Volume{}, fmt.Errorf("%w: MAC %q: not a unicast Ethernet address", ErrInvalid, mac)
	}
	mac = hw.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.Get(id)
	if err != nil {
		return Volume{}, err
	}
	has := slices.Contains(v.Allow, mac)
	switch {
	case allow && !has:
		v.Allow = append(v.Allow, mac)
		slices.Sort(v.Allow)
	case !allow && has:
		v.Allow = slices.DeleteFunc(v.Allow, func(m string) bool { return m == mac })
	default:
		if apply != nil {
			apply(v)
		}
		return v, nil
	}
	if err := s.db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(id), v) }); err != nil {
		return Volume{}, err
	}
	if apply != nil {
		apply(v)
	}
	return v, nil
}

// SaveFill records which chunks of a filling volume hold their data;
// complete ends the filling.
func (s *Store) SaveFill(id string, bits []byte, complete bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.Get(id)
	if err != nil {
		return err
	}
	v.Fill, v.Filling = bits, !complete
	if complete {
		v.Fill = nil
	}
	return s.db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(id), v) })
}

// MACs parses a volume's attachments.
func (v Volume) MACs() []net.HardwareAddr {
	out := make([]net.HardwareAddr, 0, len(v.Allow))
	for _, m := range v.Allow {
		if hw, err := net.ParseMAC(m); err == nil {
			out = append(out, hw)
		}
	}
	return out
}
