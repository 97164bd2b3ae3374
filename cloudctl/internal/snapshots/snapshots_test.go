package snapshots

import (
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/cloudctl/internal/tags"
	"github.com/koala-cloud/koala/cloudctl/internal/volumes"
	"github.com/koala-cloud/koala/pkg/store"
)

const (
	alice = "000000000001"
	bob   = "000000000002"
	carol = "000000000003"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestIDs(t *testing.T) {
	id := NewID()
	if !regexp.MustCompile(`^snap-[0-9a-f]{17}$`).MatchString(id) || CheckID(id) != nil {
		t.Errorf("NewID gave %q", id)
	}
	for _, bad := range []string{"snap-", "snap-xyz", "vol-0123456789abcdef0", "snap-0123456789", "SNAP-01234567", ""} {
		if err := CheckID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckID(%q) = %v", bad, err)
		}
	}
	if err := CheckID("snap-01234567"); err != nil {
		t.Errorf("a short ID: %v", err)
	}
}

func TestPermission(t *testing.T) {
	s := Snapshot{ID: "snap-01234567", Owner: alice}
	p := &s.CreateVolumePermission
	check := func(name string, want map[string]bool) {
		t.Helper()
		for acct, ok := range want {
			if got := Restorable(s, acct); got != ok {
				t.Errorf("%s: Restorable(%s) = %v, want %v (%+v)", name, acct, got, ok, *p)
			}
		}
	}
	check("private", map[string]bool{alice: true, bob: false, carol: false})
	p.Add([]string{bob, bob}, false)
	check("shared with bob", map[string]bool{alice: true, bob: true, carol: false})
	if len(p.UserIDs) != 1 {
		t.Errorf("bob added twice: %v", p.UserIDs)
	}
	p.Add(nil, true)
	check("public", map[string]bool{bob: true, carol: true})
	p.Remove(nil, true)
	check("no longer public", map[string]bool{bob: true, carol: false})
	p.Remove([]string{bob, carol}, false)
	check("private again", map[string]bool{alice: true, bob: false})
	if p.UserIDs != nil || p.Public {
		t.Errorf("after removing everyone: %+v", *p)
	}
}

func TestRules(t *testing.T) {
	db := openDB(t)
	now := time.Now().UTC()
	vol := func(id, st string) volumes.Volume {
		return volumes.Volume{ID: id, Owner: alice, Zone: "z-a", SizeGiB: 4, Type: "gp2", State: st, Created: now, Since: now}
	}
	db.Commit(func(tx *store.Tx) error {
		for _, v := range []volumes.Volume{vol("vol-0000000a", volumes.Available), vol("vol-0000000b", volumes.InUse),
			vol("vol-0000000c", volumes.Creating), vol("vol-0000000d", volumes.Error)} {
			if err := volumes.Put(tx, v); err != nil {
				return err
			}
		}
		return nil
	})
	var snap Snapshot
	err := db.Commit(func(tx *store.Tx) error {
		var err error
		snap, err = Create(tx, alice, "vol-0000000a", "nightly", now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if snap.State != Pending || snap.VolumeSize != 4 || snap.Zone != "z-a" || snap.Owner != alice || snap.Description != "nightly" {
		t.Fatalf("created %+v", snap)
	}
	completed := func() {
		t.Helper()
		db.Commit(func(tx *store.Tx) error {
			s, _ := Get(tx, snap.ID)
			s.State, s.Progress = Completed, 100
			return Put(tx, s)
		})
	}
	type result struct {
		size int
		err  error
	}
	try := func(fn func(tx *store.Tx) (int, error)) result {
		var r result
		r.err = db.Commit(func(tx *store.Tx) error { var err error; r.size, err = fn(tx); return err })
		return r
	}
	create := func(account, vol string) func(tx *store.Tx) (int, error) {
		return func(tx *store.Tx) (int, error) { _, err := Create(tx, account, vol, "", now); return 0, err }
	}
	restore := func(account string, size int) func(tx *store.Tx) (int, error) {
		return func(tx *store.Tx) (int, error) { _, n, err := Restore(tx, account, snap.ID, size); return n, err }
	}
	share := func(add, remove Permission) func(tx *store.Tx) (int, error) {
		return func(tx *store.Tx) (int, error) {
			_, err := ChangePermission(tx, alice, snap.ID, add, remove)
			return 0, err
		}
	}
	steps := []struct {
		name   string
		before func()
		fn     func(tx *store.Tx) (int, error)
		want   result
	}{
		{"another of the same volume while pending", nil, create(alice, "vol-0000000a"), result{0, ErrBusy}},
		{"of an attached volume", nil, create(alice, "vol-0000000b"), result{}},
		{"of a creating volume", nil, create(alice, "vol-0000000c"), result{0, ErrState}},
		{"of a failed volume", nil, create(alice, "vol-0000000d"), result{0, ErrState}},
		{"of someone else's volume", nil, create(bob, "vol-0000000a"), result{0, volumes.ErrNotFound}},
		{"restore a pending snapshot", nil, restore(alice, 0), result{0, ErrState}},
		{"delete a pending snapshot", nil, func(tx *store.Tx) (int, error) { _, err := MarkDeleting(tx, alice, snap.ID); return 0, err }, result{0, ErrState}},
		{"restore at its size", completed, restore(alice, 0), result{4, nil}},
		{"restore larger", nil, restore(alice, 10), result{10, nil}},
		{"restore smaller", nil, restore(alice, 3), result{0, ErrInvalid}},
		{"bob restores a private one", nil, restore(bob, 0), result{0, ErrNotFound}},
		{"bob shares it", nil, func(tx *store.Tx) (int, error) {
			_, err := ChangePermission(tx, bob, snap.ID, Permission{Public: true}, Permission{})
			return 0, err
		}, result{0, ErrNotFound}},
		{"alice shares it with bob", nil, share(Permission{UserIDs: []string{bob}}, Permission{}), result{}},
		{"bob restores it", nil, restore(bob, 0), result{4, nil}},
		{"carol restores it", nil, restore(carol, 0), result{0, ErrNotFound}},
		{"bob makes it public", nil, func(tx *store.Tx) (int, error) {
			_, err := ChangePermission(tx, bob, snap.ID, Permission{Public: true}, Permission{})
			return 0, err
		}, result{0, ErrNotOwner}},
		{"bob deletes it", nil, func(tx *store.Tx) (int, error) { _, err := MarkDeleting(tx, bob, snap.ID); return 0, err }, result{0, ErrNotOwner}},
		{"alice makes it public", nil, share(Permission{Public: true}, Permission{}), result{}},
		{"carol restores a public one", nil, restore(carol, 0), result{4, nil}},
		{"alice makes it private", nil, func(tx *store.Tx) (int, error) { _, err := ResetPermission(tx, alice, snap.ID); return 0, err }, result{}},
		{"carol restores it again", nil, restore(carol, 0), result{0, ErrNotFound}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		got := try(st.fn)
		if got.size != st.want.size || (st.want.err == nil) != (got.err == nil) || (st.want.err != nil && !errors.Is(got.err, st.want.err)) {
			t.Errorf("%s: got %d, %v; want %d, %v", st.name, got.size, got.err, st.want.size, st.want.err)
		}
	}

	// Deleting hides the snapshot and drops its tags at once.
	db.Commit(func(tx *store.Tx) error { return tags.Add(tx, alice, snap.ID, []tags.Tag{{Key: "Name", Value: "n"}}) })
	if r := try(func(tx *store.Tx) (int, error) { _, err := MarkDeleting(tx, alice, snap.ID); return 0, err }); r.err != nil {
		t.Fatal(r.err)
	}
	db.View(func(tx *store.Tx) error {
		if _, err := Visible(tx, alice, snap.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleting snapshot is visible: %v", err)
		}
		if ts, _ := tags.Of(tx, alice, snap.ID); len(ts) != 0 {
			t.Errorf("a deleting snapshot keeps tags %v", ts)
		}
		all, _ := All(tx)
		if !slices.ContainsFunc(all, func(s Snapshot) bool { return s.ID == snap.ID && s.State == Deleting }) {
			t.Errorf("the record went before the controller deleted it: %+v", all)
		}
		return nil
	})
}
