package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

func openStore(t *testing.T, dir string, shelves int) (*Store, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "ebs.db"), store.Schema{Version: 1, Buckets: []string{Bucket}}, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	back, err := NewFiles(filepath.Join(dir, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, back, 3, shelves)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return s, db
}

func TestCreateDeleteAndAddresses(t *testing.T) {
	dir := t.TempDir()
	s, db := openStore(t, dir, 1)
	defer db.Close()
	now := time.Now()
	a, err := s.Create("vol-0000000a", 2, "", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Shelf != 3 || a.Slot != 0 || a.Sectors() != 2<<21 {
		t.Errorf("first volume %+v", a)
	}
	fi, err := os.Stat(s.Path(a.ID))
	if err != nil || fi.Size() != 2<<30 {
		t.Fatalf("file: %v %v", fi, err)
	}
	again, err := s.Create("vol-0000000a", 2, "", nil, now)
	if err != nil || again.Slot != a.Slot {
		t.Errorf("repeat: %+v %v", again, err)
	}
	if _, err := s.Create("vol-0000000a", 3, "", nil, now); !errors.Is(err, ErrMismatch) {
		t.Errorf("same ID, other size: %v", err)
	}
	for _, bad := range []struct {
		id   string
		size int
	}{{"volume-1", 1}, {"vol-0000000b", 0}, {"vol-0000000b", MaxSizeGiB + 1}} {
		if _, err := s.Create(bad.id, bad.size, "", nil, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s %d GiB: %v", bad.id, bad.size, err)
		}
	}
	b, _ := s.Create("vol-0000000b", 1, "", nil, now)
	if b.Slot != 1 {
		t.Errorf("second volume slot %d", b.Slot)
	}
	// Attached, it cannot be deleted; detached, it can, and its address
	// is free again.
	if _, err := s.SetAllowed(a.ID, "52:54:00:00:00:01", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAllowed(a.ID, "01:00:5e:00:00:01", true, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("a multicast MAC: %v", err)
	}
	if err := s.Delete(a.ID, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete while attached: %v", err)
	}
	if _, err := s.SetAllowed(a.ID, "52:54:00:00:00:01", false, nil); err != nil {
		t.Fatal(err)
	}
	removed := false
	if err := s.Delete(a.ID, func(Volume) { removed = true }); err != nil || !removed {
		t.Fatalf("delete: %v, stopped serving %v", err, removed)
	}
	if _, err := os.Stat(s.Path(a.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file after delete: %v", err)
	}
	if _, err := s.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	c, _ := s.Create("vol-0000000c", 1, "", nil, now)
	if c.Slot != 0 {
		t.Errorf("freed slot not reused: %+v", c)
	}
}

func TestFullShelves(t *testing.T) {
	s, db := openStore(t, t.TempDir(), 1)
	defer db.Close()
	s.shelves = 0 // no address at all
	if _, err := s.Create("vol-0000000a", 1, "", nil, time.Now()); !errors.Is(err, ErrFull) {
		t.Errorf("create with no shelf: %v", err)
	}
}

// TestRecover checks what Open does after a crash: temporary and
// unrecorded files go, a deletion in progress completes, a recorded
// volume keeps its file and address.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	s, db := openStore(t, dir, 1)
	kept, _ := s.Create("vol-0000000a", 1, "", nil, time.Now())
	doomed, _ := s.Create("vol-0000000b", 1, "", nil, time.Now())
	doomed.Deleting = true
	if err := db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(doomed.ID), doomed) }); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.Path("vol-0000000c")+tmpSuffix, nil, 0o600) // a create cut short
	os.WriteFile(s.Path("vol-0000000d"), nil, 0o600)           // renamed, never recorded
	db.Close()

	s, db = openStore(t, dir, 1)
	defer db.Close()
	entries, _ := os.ReadDir(filepath.Join(dir, "volumes"))
	if len(entries) != 1 || entries[0].Name() != "vol-0000000a.img" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files after recovery: %v", names)
	}
	if v, err := s.Get(kept.ID); err != nil || v.Slot != kept.Slot {
		t.Errorf("kept volume: %+v %v", v, err)
	}
	if _, err := s.Get(doomed.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting volume: %v", err)
	}
}
