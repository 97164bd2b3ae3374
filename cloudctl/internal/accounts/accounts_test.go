package accounts

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "a.db"), state.Schema, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db)
}

func TestAccountsAndKeys(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, k, err := s.Create(ctx, "alice", "Alice@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, "alice", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, bad := range []string{"", "Alice", "a b", "-x"} {
		if _, _, err := s.Create(ctx, bad, ""); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	for _, lookup := range []func() (Account, error){
		func() (Account, error) { return s.Get(ctx, "alice") },
		func() (Account, error) { return s.Get(ctx, a.ID) },
		func() (Account, error) { return s.ByCanonicalID(ctx, a.CanonicalID) },
		func() (Account, error) { return s.ByEmail(ctx, "alice@example.COM") },
	} {
		if got, err := lookup(); err != nil || got.ID != a.ID {
			t.Errorf("lookup: %+v %v", got, err)
		}
	}
	gotKey, gotAcct, err := s.Key(ctx, k.ID)
	if err != nil || gotKey.Secret != k.Secret || gotAcct.ID != a.ID || !gotKey.Active {
		t.Fatalf("key: %+v %+v %v", gotKey, gotAcct, err)
	}
	k2, err := s.CreateKey(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateKey(ctx, "alice"); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("third key: %v", err)
	}
	comp, err := s.CreateComponentKey(ctx, "walrus")
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.Keys(ctx, "alice"); len(keys) != 2 {
		t.Fatalf("alice has %d keys", len(keys))
	}
	if ck, ca, err := s.Key(ctx, comp.ID); err != nil || ck.Component != "walrus" || ca.ID != "" {
		t.Fatalf("component key: %+v %+v %v", ck, ca, err)
	}
	if err := s.DeleteKey(ctx, k2.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Key(ctx, k2.ID); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("deleted key: %v", err)
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Key(ctx, k.ID); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("key of a deleted account: %v", err)
	}
	if _, err := s.ByCanonicalID(ctx, a.CanonicalID); !errors.Is(err, ErrNoSuchAccount) {
		t.Fatalf("deleted account: %v", err)
	}
	if _, _, err := s.Key(ctx, comp.ID); err != nil {
		t.Fatalf("component key survives account deletes: %v", err)
	}
}
