package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// Lookups is how Remote asks cloudctl.
type Lookups interface {
	AccessKey(ctx context.Context, id string) (api.AccessKey, error)
	Account(ctx context.Context, by, value string) (api.Account, error)
}

// Remote resolves keys and accounts through cloudctl's internal API, with
// a short cache: a revoked key stops working within TTL, and an answer
// from cloudctl is reused for up to Stale while cloudctl cannot be
// reached.
type Remote struct {
	c     Lookups
	ttl   time.Duration
	stale time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	acct   Account
	found  bool
	at     time.Time
	secret string
}

// Client returns the cloudctl client behind the provider, for other calls.
func (r *Remote) Client() *api.Client {
	c, _ := r.c.(*api.Client)
	return c
}

// NewRemote returns a provider over c.
func NewRemote(c Lookups, ttl, stale time.Duration) *Remote {
	return &Remote{c: c, ttl: ttl, stale: stale, now: time.Now, entries: map[string]entry{}}
}

// lookup answers from the cache while fresh, else asks fetch; a failure to
// reach cloudctl falls back to an entry younger than stale.
func (r *Remote) lookup(ctx context.Context, key string, fetch func() (Account, string, error)) (entry, error) {
	now := r.now()
	r.mu.Lock()
	e, ok := r.entries[key]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < r.ttl {
		return e, nil
	}
	acct, secret, err := fetch()
	switch {
	case err == nil:
		e = entry{acct: acct, secret: secret, found: true, at: now}
	case errors.Is(err, api.ErrNotFound):
		e = entry{at: now}
	case ok && now.Sub(e.at) < r.stale:
		return e, nil
	default:
		return entry{}, err
	}
	r.mu.Lock()
	if len(r.entries) > 100000 {
		r.entries = map[string]entry{}
	}
	r.entries[key] = e
	r.mu.Unlock()
	return e, nil
}

func fromAPI(a api.Account) Account {
	return Account{AccountID: a.ID, CanonicalUserID: a.CanonicalID, DisplayName: a.DisplayName, Email: a.Email}
}

// Key returns the account holding an access key, with the secret filled.
// Component keys open no account.
func (r *Remote) Key(ctx context.Context, id string) (Account, error) {
	a, component, err := r.key(ctx, id)
	if err == nil && component != "" {
		err = fmt.Errorf("%s: %w", id, ErrUnknownKey)
	}
	return a, err
}

// ComponentKey returns the secret of a daemon's component key, and the
// daemon's name; account keys are not component keys.
func (r *Remote) ComponentKey(ctx context.Context, id string) (secret, component string, err error) {
	a, component, err := r.key(ctx, id)
	if err == nil && component == "" {
		err = fmt.Errorf("%s: %w", id, ErrUnknownKey)
	}
	return a.SecretAccessKey, component, err
}

func (r *Remote) key(ctx context.Context, id string) (Account, string, error) {
	e, err := r.lookup(ctx, "key:"+id, func() (Account, string, error) {
		k, err := r.c.AccessKey(ctx, id)
		if err == nil && !k.Active {
			err = fmt.Errorf("%w: inactive", api.ErrNotFound)
		}
		a := fromAPI(k.Account)
		a.component = k.Component
		return a, k.SecretAccessKey, err
	})
	if err != nil {
		return Account{}, "", err
	}
	if !e.found {
		return Account{}, "", fmt.Errorf("%s: %w", id, ErrUnknownKey)
	}
	a := e.acct
	a.AccessKeyID, a.SecretAccessKey = id, e.secret
	return a, a.component, nil
}

func (r *Remote) account(by, value string) (Account, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := r.lookup(ctx, by+":"+value, func() (Account, string, error) {
		a, err := r.c.Account(ctx, by, value)
		return fromAPI(a), "", err
	})
	return e.acct, err == nil && e.found
}

// ByEmail returns the account with an email address.
func (r *Remote) ByEmail(email string) (Account, bool) {
	return r.account("email", strings.ToLower(email))
}

// ByID returns the account with a canonical user ID.
func (r *Remote) ByID(id string) (Account, bool) { return r.account("canonical_id", id) }
