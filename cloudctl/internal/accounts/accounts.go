package accounts

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/ident"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrNoSuchAccount = errors.New("no such account")
	ErrNoSuchKey     = errors.New("no such access key")
	ErrExists        = errors.New("account already exists")
	ErrBadName       = errors.New("invalid account name")
	ErrTooManyKeys   = errors.New("too many access keys")
)

// MaxKeys is how many access keys one account may hold, as in IAM.
const MaxKeys = 2

// Account is an account.
type Account struct {
	ID          string    `json:"id"` // 12 digits
	CanonicalID string    `json:"canonical_id"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	Created     time.Time `json:"created"`
}

// AccessKey is an access key of an account, or of a component (a daemon
// signing internal calls), never both.
type AccessKey struct {
	ID        string    `json:"id"`
	Secret    string    `json:"secret"`
	Account   string    `json:"account,omitempty"`   // account ID
	Component string    `json:"component,omitempty"` // daemon name
	Active    bool      `json:"active"`
	Created   time.Time `json:"created"`
}

// Store is the accounts store over cloudctl's database.
type Store struct {
	db  *store.DB
	now func() time.Time
}

// New returns the store over db.
func New(db *store.DB) *Store { return &Store{db: db, now: time.Now} }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Create makes an account with one access key.
func (s *Store) Create(ctx context.Context, name, email string) (Account, AccessKey, error) {
	if !nameRE.MatchString(name) {
		return Account{}, AccessKey{}, fmt.Errorf("%w: %q (lower-case letters, digits, . _ -; up to 63)", ErrBadName, name)
	}
	a := Account{ID: ident.AccountID(), CanonicalID: ident.CanonicalID(), Name: name, Email: email, Created: s.now().UTC()}
	k := newKey(s.now())
	k.Account = a.ID
	err := s.db.Commit(func(tx *store.Tx) error {
		names, _ := tx.Bucket(state.AccountNames)
		if names.Get([]byte(name)) != nil {
			return fmt.Errorf("%s: %w", name, ErrExists)
		}
		accts, _ := tx.Bucket(state.Accounts)
		if accts.Get([]byte(a.ID)) != nil {
			return fmt.Errorf("account id collision %s: %w", a.ID, ErrExists)
		}
		if err := names.Put([]byte(name), []byte(a.ID)); err != nil {
			return err
		}
		if err := tx.Put(state.Canonical, []byte(a.CanonicalID), a.ID); err != nil {
			return err
		}
		if err := tx.Put(state.Accounts, []byte(a.ID), a); err != nil {
			return err
		}
		return tx.Put(state.AccessKeys, []byte(k.ID), k)
	})
	if err != nil {
		return Account{}, AccessKey{}, err
	}
	return a, k, nil
}

// Get returns the account with a name or a 12-digit ID.
func (s *Store) Get(ctx context.Context, nameOrID string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *store.Tx) error { return get(tx, nameOrID, &a) })
	return a, err
}

func get(tx *store.Tx, nameOrID string, a *Account) error {
	id := nameOrID
	names, _ := tx.Bucket(state.AccountNames)
	if v := names.Get([]byte(nameOrID)); v != nil {
		id = string(v)
	}
	if err := tx.Get(state.Accounts, []byte(id), a); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", nameOrID, ErrNoSuchAccount)
		}
		return err
	}
	return nil
}

// ByCanonicalID returns the account with a canonical user ID.
func (s *Store) ByCanonicalID(ctx context.Context, id string) (Account, error) {
	var a Account
	err := s.db.View(func(tx *store.Tx) error {
		var acct string
		if err := tx.Get(state.Canonical, []byte(id), &acct); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s: %w", id, ErrNoSuchAccount)
			}
			return err
		}
		return get(tx, acct, &a)
	})
	return a, err
}

// ByEmail returns the account with an email address (case-insensitive).
func (s *Store) ByEmail(ctx context.Context, email string) (Account, error) {
	all, err := s.List(ctx)
	if err != nil {
		return Account{}, err
	}
	for _, a := range all {
		if a.Email != "" && strings.EqualFold(a.Email, email) {
			return a, nil
		}
	}
	return Account{}, fmt.Errorf("%s: %w", email, ErrNoSuchAccount)
}

// List returns every account, by name.
func (s *Store) List(ctx context.Context) ([]Account, error) {
	var out []Account
	err := s.db.View(func(tx *store.Tx) error {
		b, _ := tx.Bucket(state.Accounts)
		return b.ForEach(func(_, v []byte) error {
			var a Account
			if err := store.Decode(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Delete removes an account and its access keys. Its resources are the
// caller's to remove first.
func (s *Store) Delete(ctx context.Context, nameOrID string) error {
	return s.db.Commit(func(tx *store.Tx) error {
		var a Account
		if err := get(tx, nameOrID, &a); err != nil {
			return err
		}
		keys, _ := tx.Bucket(state.AccessKeys)
		var drop [][]byte
		err := keys.ForEach(func(k, v []byte) error {
			var ak AccessKey
			if err := store.Decode(v, &ak); err != nil {
				return err
			}
			if ak.Account == a.ID {
				drop = append(drop, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := keys.Delete(k); err != nil {
				return err
			}
		}
		for _, del := range []struct{ bucket, key string }{
			{state.AccountNames, a.Name}, {state.Canonical, a.CanonicalID}, {state.Accounts, a.ID},
		} {
			if err := tx.Delete(del.bucket, []byte(del.key)); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateKey adds an access key to an account.
func (s *Store) CreateKey(ctx context.Context, nameOrID string) (AccessKey, error) {
	k := newKey(s.now())
	err := s.db.Commit(func(tx *store.Tx) error {
		var a Account
		if err := get(tx, nameOrID, &a); err != nil {
			return err
		}
		have, err := keysOf(tx, a.ID)
		if err != nil {
			return err
		}
		if len(have) >= MaxKeys {
			return fmt.Errorf("%s has %d: %w", a.Name, len(have), ErrTooManyKeys)
		}
		k.Account = a.ID
		return tx.Put(state.AccessKeys, []byte(k.ID), k)
	})
	return k, err
}

// CreateComponentKey makes the access key a daemon signs internal calls
// with, replacing the component's earlier key.
func (s *Store) CreateComponentKey(ctx context.Context, component string) (AccessKey, error) {
	k := newKey(s.now())
	k.Component = component
	err := s.db.Commit(func(tx *store.Tx) error {
		keys, _ := tx.Bucket(state.AccessKeys)
		var drop [][]byte
		err := keys.ForEach(func(id, v []byte) error {
			var ak AccessKey
			if err := store.Decode(v, &ak); err != nil {
				return err
			}
			if ak.Component == component {
				drop = append(drop, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range drop {
			if err := keys.Delete(id); err != nil {
				return err
			}
		}
		return tx.Put(state.AccessKeys, []byte(k.ID), k)
	})
	return k, err
}

// EnsureComponentKey returns a daemon's component key, making it if the
// daemon has none.
func (s *Store) EnsureComponentKey(ctx context.Context, component string) (AccessKey, error) {
	var found AccessKey
	err := s.db.View(func(tx *store.Tx) error {
		keys, _ := tx.Bucket(state.AccessKeys)
		return keys.ForEach(func(_, v []byte) error {
			var ak AccessKey
			if err := store.Decode(v, &ak); err != nil {
				return err
			}
			if ak.Component == component {
				found = ak
			}
			return nil
		})
	})
	if err != nil || found.ID != "" {
		return found, err
	}
	return s.CreateComponentKey(ctx, component)
}

func keysOf(tx *store.Tx, accountID string) ([]AccessKey, error) {
	keys, _ := tx.Bucket(state.AccessKeys)
	var out []AccessKey
	err := keys.ForEach(func(_, v []byte) error {
		var ak AccessKey
		if err := store.Decode(v, &ak); err != nil {
			return err
		}
		if ak.Account == accountID && accountID != "" {
			out = append(out, ak)
		}
		return nil
	})
	return out, err
}

// Keys lists an account's access keys.
func (s *Store) Keys(ctx context.Context, nameOrID string) ([]AccessKey, error) {
	var out []AccessKey
	err := s.db.View(func(tx *store.Tx) error {
		var a Account
		if err := get(tx, nameOrID, &a); err != nil {
			return err
		}
		var err error
		out, err = keysOf(tx, a.ID)
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// DeleteKey removes an access key: requests signed with it fail from then
// on (daemons that cache keys notice within their cache lifetime).
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return s.db.Commit(func(tx *store.Tx) error {
		var k AccessKey
		if err := tx.Get(state.AccessKeys, []byte(id), &k); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s: %w", id, ErrNoSuchKey)
			}
			return err
		}
		return tx.Delete(state.AccessKeys, []byte(id))
	})
}

// Key resolves an access key. The account is the zero value for a
// component key.
func (s *Store) Key(ctx context.Context, id string) (AccessKey, Account, error) {
	var k AccessKey
	var a Account
	err := s.db.View(func(tx *store.Tx) error {
		if err := tx.Get(state.AccessKeys, []byte(id), &k); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s: %w", id, ErrNoSuchKey)
			}
			return err
		}
		if k.Account == "" {
			return nil
		}
		return get(tx, k.Account, &a)
	})
	return k, a, err
}

func newKey(now time.Time) AccessKey {
	return AccessKey{ID: ident.AccessKeyID(), Secret: ident.SecretKey(), Active: true, Created: now.UTC()}
}

// Cert is a signing certificate of an account: bundles the account signs
// with its key verify against it.
type Cert struct {
	ID      string    `json:"id"`
	PEM     string    `json:"pem"`
	Created time.Time `json:"created"`
}

// ErrBadCert reports data that is not a PEM X.509 certificate.
var ErrBadCert = errors.New("not a PEM certificate")

// AddCert attaches a signing certificate (PEM) to an account.
func (s *Store) AddCert(ctx context.Context, nameOrID, pemText string) (Cert, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" {
		return Cert{}, ErrBadCert
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return Cert{}, fmt.Errorf("%w: %v", ErrBadCert, err)
	}
	c := Cert{ID: ident.CertificateID(), PEM: string(pem.EncodeToMemory(block)), Created: s.now().UTC()}
	err := s.db.Commit(func(tx *store.Tx) error {
		var a Account
		if err := get(tx, nameOrID, &a); err != nil {
			return err
		}
		return tx.Put(state.Certs, []byte(a.ID+"/"+c.ID), c)
	})
	return c, err
}

// Certs returns an account's signing certificates.
func (s *Store) Certs(ctx context.Context, accountID string) ([]Cert, error) {
	var out []Cert
	err := s.db.View(func(tx *store.Tx) error {
		b, err := tx.Bucket(state.Certs)
		if err != nil {
			return err
		}
		prefix := []byte(accountID + "/")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ct Cert
			if err := store.Decode(v, &ct); err != nil {
				return err
			}
			out = append(out, ct)
		}
		return nil
	})
	return out, err
}
