package accounts

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

type fakeCloud struct {
	keys  map[string]api.AccessKey
	calls int
	down  bool
}

func (f *fakeCloud) AccessKey(_ context.Context, id string) (api.AccessKey, error) {
	f.calls++
	if f.down {
		return api.AccessKey{}, errors.New("connection refused")
	}
	k, ok := f.keys[id]
	if !ok {
		return api.AccessKey{}, fmt.Errorf("%w: InvalidAccessKeyId", api.ErrNotFound)
	}
	return k, nil
}

func (f *fakeCloud) Account(_ context.Context, by, value string) (api.Account, error) {
	for _, k := range f.keys {
		if by == "canonical_id" && k.Account.CanonicalID == value {
			return k.Account, nil
		}
	}
	return api.Account{}, api.ErrNotFound
}

func TestRemoteCachesAndHonoursRevocation(t *testing.T) {
	cloud := &fakeCloud{keys: map[string]api.AccessKey{
		"AKIA1": {AccessKeyID: "AKIA1", SecretAccessKey: "s1", Active: true, Account: api.Account{ID: "111111111111", CanonicalID: "c1", DisplayName: "one"}},
	}}
	now := time.Unix(1000, 0)
	r := NewRemote(cloud, 5*time.Second, time.Minute)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	a, err := r.Key(ctx, "AKIA1")
	if err != nil || a.SecretAccessKey != "s1" || a.CanonicalUserID != "c1" {
		t.Fatalf("first lookup: %+v %v", a, err)
	}
	r.Key(ctx, "AKIA1")
	if cloud.calls != 1 {
		t.Fatalf("%d calls, want the second lookup from cache", cloud.calls)
	}
	delete(cloud.keys, "AKIA1") // revoked
	now = now.Add(6 * time.Second)
	if _, err := r.Key(ctx, "AKIA1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("revoked key after the TTL: %v", err)
	}
	cloud.keys["AKIA1"] = api.AccessKey{AccessKeyID: "AKIA1", SecretAccessKey: "s1", Active: true}
	now = now.Add(6 * time.Second)
	if _, err := r.Key(ctx, "AKIA1"); err != nil {
		t.Fatal(err)
	}
	cloud.down = true
	now = now.Add(30 * time.Second)
	if _, err := r.Key(ctx, "AKIA1"); err != nil {
		t.Fatalf("cloudctl down, entry younger than stale: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := r.Key(ctx, "AKIA1"); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("cloudctl down, entry too old: %v", err)
	}
}

func TestRemoteComponentKeys(t *testing.T) {
	cloud := &fakeCloud{keys: map[string]api.AccessKey{
		"AKIANODE": {AccessKeyID: "AKIANODE", SecretAccessKey: "n", Active: true, Component: "nodectl"},
		"AKIAUSER": {AccessKeyID: "AKIAUSER", SecretAccessKey: "u", Active: true, Account: api.Account{ID: "111111111111", CanonicalID: "c"}},
	}}
	r := NewRemote(cloud, time.Second, time.Minute)
	ctx := context.Background()
	if _, err := r.Key(ctx, "AKIANODE"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a component key opened S3: %v", err)
	}
	if secret, comp, err := r.ComponentKey(ctx, "AKIANODE"); err != nil || secret != "n" || comp != "nodectl" {
		t.Fatalf("component key: %q %q %v", secret, comp, err)
	}
	if _, _, err := r.ComponentKey(ctx, "AKIAUSER"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a user key opened the internal API: %v", err)
	}
}
