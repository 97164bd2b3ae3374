package instances

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

func TestOwned(t *testing.T) {
	e := newEnv(t, Config{})
	e.put(t, inst("i-1", "z-a", api.Running), edit(inst("i-2", "z-a", api.Running), func(in *Instance) { in.Owner = other }))
	cases := []struct {
		name, account, id string
		err               error
	}{
		{name: "own", account: acct, id: "i-1"},
		{name: "another account's", account: acct, id: "i-2", err: ErrNotFound},
		{name: "the other account's own", account: other, id: "i-2"},
		{name: "unknown", account: acct, id: "i-3", err: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := e.db.View(func(tx *store.Tx) error {
				in, err := Owned(tx, tc.account, tc.id)
				if err == nil && in.ID != tc.id {
					t.Errorf("got %s, want %s", in.ID, tc.id)
				}
				if err != nil && in.ID != "" {
					t.Errorf("an error came with instance %s", in.ID)
				}
				return err
			})
			if !errors.Is(err, tc.err) {
				t.Errorf("Owned = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestSpec(t *testing.T) {
	in := inst("i-1", "z-a", api.Running)
	in.LaunchIndex, in.KeyName, in.UserData = 3, "k", []byte("ud")
	in.Groups = []Group{{ID: "sg-1", Name: "default"}, {ID: "sg-2", Name: "web"}}
	s := in.Spec()
	if s.ID != "i-1" || s.ReservationID != "r-1" || s.AccountID != acct || s.LaunchIndex != 3 || s.KeyName != "k" ||
		string(s.UserData) != "ud" || s.Node != in.Node || s.MAC != in.MAC || s.PrivateIP != in.PrivateIP || s.Type != small {
		t.Errorf("Spec = %+v", s)
	}
	if !slices.Equal(s.Groups, []string{"sg-1", "sg-2"}) {
		t.Errorf("groups = %v, want the group IDs", s.Groups)
	}
}

func TestUserInitiated(t *testing.T) {
	at := time.Date(2026, 11, 22, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	if got, want := userInitiated(at), "User initiated (2026-11-22 10:00:00 GMT)"; got != want {
		t.Errorf("userInitiated = %q, want %q", got, want)
	}
}

func TestCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(id, owner, res string, idx int, launched time.Time) Instance {
		in := inst(id, "z-a", api.Running)
		in.Owner, in.Reservation, in.LaunchIndex, in.Launched = owner, res, idx, launched
		return in
	}
	e := newEnv(t, Config{})
	// Stored in ID order; listed by launch time, reservation and index.
	e.put(t,
		at("i-a", acct, "r-2", 0, t0.Add(time.Minute)),
		at("i-b", acct, "r-1", 1, t0),
		at("i-c", other, "r-3", 0, t0),
		at("i-d", acct, "r-1", 0, t0),
	)
	var c Cache
	list := func(account string) ([]string, []uint64) {
		t.Helper()
		var ids []string
		var versions []uint64
		err := e.db.View(func(tx *store.Tx) error {
			ins, vs, err := c.AllVersions(tx, account)
			for _, in := range ins {
				ids = append(ids, in.ID)
			}
			versions = vs
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(versions) {
			t.Fatalf("%d instances, %d versions", len(ids), len(versions))
		}
		return ids, versions
	}
	byID := func(ids []string, vs []uint64) map[string]uint64 {
		m := map[string]uint64{}
		for i, id := range ids {
			m[id] = vs[i]
		}
		return m
	}

	ids, vs := list("")
	if want := []string{"i-d", "i-b", "i-c", "i-a"}; !slices.Equal(ids, want) {
		t.Fatalf("All = %v, want %v", ids, want)
	}
	first := byID(ids, vs)
	seen := map[uint64]bool{}
	for _, v := range vs {
		if v == 0 || seen[v] {
			t.Fatalf("versions %v are not distinct and non-zero", vs)
		}
		seen[v] = true
	}

	t.Run("unchanged records keep their version", func(t *testing.T) {
		ids, vs := list("")
		if got := byID(ids, vs); !maps.Equal(got, first) {
			t.Errorf("versions = %v, want %v", got, first)
		}
	})
	t.Run("account filter", func(t *testing.T) {
		ids, vs := list(acct)
		if want := []string{"i-d", "i-b", "i-a"}; !slices.Equal(ids, want) {
			t.Errorf("All(%s) = %v, want %v", acct, ids, want)
		}
		for id, v := range byID(ids, vs) {
			if v != first[id] {
				t.Errorf("%s: version %d under a filter, want %d", id, v, first[id])
			}
		}
		if ids, _ := list(other); !slices.Equal(ids, []string{"i-c"}) {
			t.Errorf("All(%s) = %v, want [i-c]", other, ids)
		}
		if ids, _ := list("999999999999"); len(ids) != 0 {
			t.Errorf("All of an account without instances = %v", ids)
		}
	})
	t.Run("a changed record gets a new version", func(t *testing.T) {
		err := e.db.Update(func(tx *store.Tx) error {
			in, err := Get(tx, "i-b")
			if err != nil {
				return err
			}
			in.State = api.Stopping
			return Put(tx, in)
		})
		if err != nil {
			t.Fatal(err)
		}
		got := byID(list(""))
		for id, v := range got {
			if changed := v != first[id]; changed != (id == "i-b") {
				t.Errorf("%s: version %d, was %d", id, v, first[id])
			}
		}
		if seen[got["i-b"]] {
			t.Errorf("i-b's new version %d was used before", got["i-b"])
		}
		seen[got["i-b"]] = true
		var state string
		_ = e.db.View(func(tx *store.Tx) error {
			ins, err := c.All(tx, acct)
			for _, in := range ins {
				if in.ID == "i-b" {
					state = in.State
				}
			}
			return err
		})
		if state != api.Stopping {
			t.Errorf("cached i-b is %s, want stopping", state)
		}
		first = got
	})
	t.Run("deleted records disappear", func(t *testing.T) {
		err := e.db.Update(func(tx *store.Tx) error { return Delete(tx, "i-c") })
		if err != nil {
			t.Fatal(err)
		}
		ids, vs := list("")
		if want := []string{"i-d", "i-b", "i-a"}; !slices.Equal(ids, want) {
			t.Errorf("All = %v, want %v", ids, want)
		}
		for id, v := range byID(ids, vs) {
			if v != first[id] {
				t.Errorf("%s: version %d, want %d", id, v, first[id])
			}
		}
		c.mu.Lock()
		_, kept := c.m["i-c"]
		n := len(c.m)
		c.mu.Unlock()
		if kept || n != 3 {
			t.Errorf("cache holds %d records (i-c: %v), want 3 without i-c", n, kept)
		}
	})
	t.Run("a re-created record gets a new version", func(t *testing.T) {
		e.put(t, at("i-c", other, "r-3", 0, t0))
		got := byID(list(other))
		if v := got["i-c"]; v == 0 || seen[v] {
			t.Errorf("re-created i-c has version %d, used before", v)
		}
	})
	t.Run("no cache", func(t *testing.T) {
		err := e.db.View(func(tx *store.Tx) error {
			ins, vs, err := (*Cache)(nil).AllVersions(tx, acct)
			if len(ins) != 3 || !slices.Equal(vs, []uint64{0, 0, 0}) {
				t.Errorf("nil cache: %d instances, versions %v", len(ins), vs)
			}
			all, err2 := All(tx, "")
			if len(all) != 4 {
				t.Errorf("All = %d instances, want 4", len(all))
			}
			return errors.Join(err, err2)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
