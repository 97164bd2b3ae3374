package volumes

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

func TestGuestDevice(t *testing.T) {
	for in, want := range map[string]string{"/dev/sdf": "vdf", "/dev/xvdp": "vdp", "/dev/vdb": "vdb", "/dev/sdz": "vdz"} {
		if got, ok := GuestDevice(in); !ok || got != want {
			t.Errorf("%s -> %q %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"/dev/sda", "/dev/sda1", "sdf", "/dev/hdf", "/dev/sdf1", "/dev/nvme1n1", ""} {
		if got, ok := GuestDevice(bad); ok {
			t.Errorf("%q accepted as %s", bad, got)
		}
	}
}

func TestAttachRules(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	const me = "000000000001"
	db.Commit(func(tx *store.Tx) error {
		for _, id := range []string{"vol-0000000a", "vol-0000000b"} {
			Put(tx, Volume{ID: id, Owner: me, Zone: "z", SizeGiB: 1, State: Available, Created: now})
		}
		return Put(tx, Volume{ID: "vol-0000000c", Owner: me, Zone: "z", SizeGiB: 1, State: Creating, Created: now})
	})
	try := func(fn func(tx *store.Tx) error) error { return db.Commit(fn) }
	if err := try(func(tx *store.Tx) error { _, err := Attach(tx, me, "vol-0000000a", "i-1", "/dev/sdf", now); return err }); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		fn   func(tx *store.Tx) error
		want error
	}{
		"attached twice": {func(tx *store.Tx) error { _, err := Attach(tx, me, "vol-0000000a", "i-2", "/dev/sdg", now); return err }, ErrInUse},
		"device in use":  {func(tx *store.Tx) error { _, err := Attach(tx, me, "vol-0000000b", "i-1", "/dev/sdf", now); return err }, ErrInvalid},
		"still creating": {func(tx *store.Tx) error { _, err := Attach(tx, me, "vol-0000000c", "i-1", "/dev/sdg", now); return err }, ErrState},
		"someone else's": {func(tx *store.Tx) error {
			_, err := Attach(tx, "000000000002", "vol-0000000b", "i-1", "/dev/sdg", now)
			return err
		}, ErrNotFound},
		"delete attached": {func(tx *store.Tx) error { _, err := MarkDeleting(tx, me, "vol-0000000a", now); return err }, ErrInUse},
		"detach free": {func(tx *store.Tx) error {
			_, err := MarkDetaching(tx, me, "vol-0000000b", "", "", false, now)
			return err
		}, ErrState},
		"detach wrong instance": {func(tx *store.Tx) error {
			_, err := MarkDetaching(tx, me, "vol-0000000a", "i-9", "", false, now)
			return err
		}, ErrInvalid},
	} {
		if err := try(c.fn); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
