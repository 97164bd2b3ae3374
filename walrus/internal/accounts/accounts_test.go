package accounts

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

func TestCreateAndLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Create(path, "alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for re, v := range map[string]string{
		`^[1-9][0-9]{11}$`:   a.AccountID,
		`^[0-9a-f]{64}$`:     a.CanonicalUserID,
		`^AKIA[A-Z2-7]{16}$`: a.AccessKeyID,
		`^.{40}$`:            a.SecretAccessKey,
	} {
		if !regexp.MustCompile(re).MatchString(v) {
			t.Errorf("%q does not match %s", v, re)
		}
	}
	// The open provider sees the new account without a restart.
	got, err := f.Key(context.Background(), a.AccessKeyID)
	if err != nil || got != a {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if o, ok := f.ByEmail("ALICE@example.com"); !ok || o.CanonicalUserID != a.CanonicalUserID {
		t.Fatalf("by email: %+v %v", o, ok)
	}
	if _, err := f.Key(context.Background(), "AKIANOBODY"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := Create(path, "alice", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
}

func TestConcurrentCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Create(path, string(rune('a'+i)), ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	doc, err := read(path)
	if err != nil || len(doc.Accounts) != 8 {
		t.Fatalf("%d accounts, %v", len(doc.Accounts), err)
	}
}
