package admin

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

func TestEnsureMetadataKey(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "cloudctl.db"), state.Schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := EnsureMetadataKey(db); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("before init: %v", err)
	}
	if _, err := NewService(db).Init(context.Background(), InitOptions{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	set, err := LoadSettings(db)
	if err != nil || len(set.MetadataKey) != 32 || bytes.Equal(set.MetadataKey, set.TokenKey) {
		t.Fatalf("init's metadata key: %x (token key %x) %v", set.MetadataKey, set.TokenKey, err)
	}
	if key, err := EnsureMetadataKey(db); err != nil || !bytes.Equal(key, set.MetadataKey) {
		t.Fatalf("existing key: %x %v, want %x", key, err, set.MetadataKey)
	}

	// A database from before the key existed gets one, once.
	old := set
	old.MetadataKey = nil
	if err := db.Commit(func(tx *store.Tx) error { return tx.Put(state.Cloud, []byte(settingsKey), old) }); err != nil {
		t.Fatal(err)
	}
	key, err := EnsureMetadataKey(db)
	if err != nil || len(key) != 32 {
		t.Fatalf("new key: %x %v", key, err)
	}
	again, err := EnsureMetadataKey(db)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second call: %x %v, want %x", again, err, key)
	}
	if got, _ := LoadSettings(db); !bytes.Equal(got.TokenKey, set.TokenKey) || !bytes.Equal(got.CertPEM, set.CertPEM) {
		t.Error("adding the metadata key changed the other settings")
	}
}
