package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/accounts"
	"github.com/koala-cloud/koala/cloudctl/internal/ca"
	"github.com/koala-cloud/koala/cloudctl/internal/images"
	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrInitialized    = errors.New("the cloud is already initialised")
	ErrNotInitialized = errors.New("the cloud is not initialised: run cloudctl admin init")
)

// Settings are the cloud-wide secrets kept in the database.
type Settings struct {
	Name        string    `json:"name"`
	CertPEM     []byte    `json:"cert_pem"`
	KeyPEM      []byte    `json:"key_pem"`
	TokenKey    []byte    `json:"token_key"`              // signs pagination tokens
	MetadataKey []byte    `json:"metadata_key,omitempty"` // signs IMDSv2 tokens; older databases get it from EnsureMetadataKey
	Created     time.Time `json:"created"`
}

const settingsKey = "settings"

// LoadSettings reads the cloud's settings.
func LoadSettings(db *store.DB) (Settings, error) {
	var s Settings
	err := db.View(func(tx *store.Tx) error { return tx.Get(state.Cloud, []byte(settingsKey), &s) })
	if errors.Is(err, store.ErrNotFound) {
		return s, ErrNotInitialized
	}
	return s, err
}

// EnsureMetadataKey returns the metadata service's token key, generating
// and storing a random 32-byte one when the settings have none, so that a
// database initialised before the key existed gets one at start and keeps
// it across restarts.
func EnsureMetadataKey(db *store.DB) ([]byte, error) {
	var key []byte
	err := db.Commit(func(tx *store.Tx) error {
		var s Settings
		if err := tx.Get(state.Cloud, []byte(settingsKey), &s); errors.Is(err, store.ErrNotFound) {
			return ErrNotInitialized
		} else if err != nil {
			return err
		}
		if len(s.MetadataKey) == 0 {
			s.MetadataKey = make([]byte, 32)
			rand.Read(s.MetadataKey) // never fails (crypto/rand, Go 1.24+)
			if err := tx.Put(state.Cloud, []byte(settingsKey), s); err != nil {
				return err
			}
		}
		key = s.MetadataKey
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metadata key: %w", err)
	}
	return key, nil
}

// Credential is an account with one of its access keys, as the admin
// verbs print it.
type Credential struct {
	AccountID       string `json:"account_id"`
	CanonicalUserID string `json:"canonical_user_id"`
	DisplayName     string `json:"display_name"`
	Email           string `json:"email"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

func credential(a accounts.Account, k accounts.AccessKey) Credential {
	return Credential{a.ID, a.CanonicalID, a.Name, a.Email, k.ID, k.Secret}
}

// Key is an access key as the admin verbs list it.
type Key struct {
	AccessKeyID string    `json:"access_key_id"`
	AccountID   string    `json:"account_id,omitempty"`
	Component   string    `json:"component,omitempty"`
	Created     time.Time `json:"created"`
}

// Bundle is what `cloudctl admin credentials` writes for an account: a key
// pair, a user certificate signed by the cloud for bundling images, and
// the cloud's certificate.
type Bundle struct {
	Credential
	UserCertPEM  []byte `json:"user_cert_pem"`
	UserKeyPEM   []byte `json:"user_key_pem"`
	CloudCertPEM []byte `json:"cloud_cert_pem"`
}

// Service performs the admin verbs on a cloudctl database.
type Service struct {
	db       *store.DB
	accounts *accounts.Store
	now      func() time.Time
}

// NewService returns the service over db.
func NewService(db *store.DB) *Service {
	return &Service{db: db, accounts: accounts.New(db), now: time.Now}
}

// InitResult is what init creates: the admin account's credentials, and
// the component key walrus signs its internal calls with.
type InitResult struct {
	Admin  Credential   `json:"admin"`
	Walrus ComponentKey `json:"walrus"`
}

// ComponentKey is a daemon's credential for internal calls.
type ComponentKey struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// InitOptions shape a new cloud.
type InitOptions struct {
	// Name is the cloud's name, the CN of its certificate.
	Name string
	// CertPEM and KeyPEM, when set, are an existing cloud certificate and
	// private key to adopt (a cloud migrating from Eucalyptus keeps its
	// key, so bundles made for it still decrypt).
	CertPEM, KeyPEM []byte
}

// Init creates the cloud: its CA (new or adopted), token key, the admin
// account and a component key for walrus.
func (s *Service) Init(ctx context.Context, opts InitOptions) (InitResult, error) {
	if _, err := LoadSettings(s.db); err == nil {
		return InitResult{}, ErrInitialized
	} else if !errors.Is(err, ErrNotInitialized) {
		return InitResult{}, err
	}
	var authority *ca.CA
	var err error
	if len(opts.CertPEM) > 0 || len(opts.KeyPEM) > 0 {
		authority, err = ca.Load(opts.CertPEM, opts.KeyPEM)
	} else {
		authority, err = ca.New(opts.Name, s.now())
	}
	if err != nil {
		return InitResult{}, err
	}
	name := opts.Name
	tokenKey, metadataKey := make([]byte, 32), make([]byte, 32)
	rand.Read(tokenKey) // never fails (crypto/rand, Go 1.24+)
	rand.Read(metadataKey)
	set := Settings{Name: name, CertPEM: authority.CertPEM(), KeyPEM: authority.KeyPEM(), TokenKey: tokenKey,
		MetadataKey: metadataKey, Created: s.now().UTC()}
	err = s.db.Commit(func(tx *store.Tx) error {
		b, _ := tx.Bucket(state.Cloud)
		if b.Get([]byte(settingsKey)) != nil {
			return ErrInitialized
		}
		return tx.Put(state.Cloud, []byte(settingsKey), set)
	})
	if err != nil {
		return InitResult{}, err
	}
	admin, err := s.CreateAccount(ctx, "admin", "")
	if err != nil {
		return InitResult{}, err
	}
	wk, err := s.accounts.CreateComponentKey(ctx, "walrus")
	if err != nil {
		return InitResult{}, err
	}
	return InitResult{Admin: admin, Walrus: ComponentKey{wk.ID, wk.Secret}}, nil
}

// CreateAccount makes an account with an access key.
func (s *Service) CreateAccount(ctx context.Context, name, email string) (Credential, error) {
	a, k, err := s.accounts.Create(ctx, name, email)
	if err != nil {
		return Credential{}, err
	}
	return credential(a, k), nil
}

// Accounts lists the accounts.
func (s *Service) Accounts(ctx context.Context) ([]accounts.Account, error) {
	return s.accounts.List(ctx)
}

// DeleteAccount removes an account and its keys.
func (s *Service) DeleteAccount(ctx context.Context, name string) error {
	return s.accounts.Delete(ctx, name)
}

// CreateKey adds an access key to an account.
func (s *Service) CreateKey(ctx context.Context, account string) (Credential, error) {
	a, err := s.accounts.Get(ctx, account)
	if err != nil {
		return Credential{}, err
	}
	k, err := s.accounts.CreateKey(ctx, a.ID)
	if err != nil {
		return Credential{}, err
	}
	return credential(a, k), nil
}

// Keys lists an account's access keys (without secrets).
func (s *Service) Keys(ctx context.Context, account string) ([]Key, error) {
	ks, err := s.accounts.Keys(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(ks))
	for i, k := range ks {
		out[i] = Key{AccessKeyID: k.ID, AccountID: k.Account, Created: k.Created}
	}
	return out, nil
}

// DeleteKey revokes an access key.
func (s *Service) DeleteKey(ctx context.Context, id string) error {
	return s.accounts.DeleteKey(ctx, id)
}

// Credentials returns an account's credentials bundle: its first access
// key (a new one if it has none), and a fresh user certificate.
func (s *Service) Credentials(ctx context.Context, account string) (Bundle, error) {
	set, err := LoadSettings(s.db)
	if err != nil {
		return Bundle{}, err
	}
	authority, err := ca.Load(set.CertPEM, set.KeyPEM)
	if err != nil {
		return Bundle{}, fmt.Errorf("load the cloud's certificate: %w", err)
	}
	a, err := s.accounts.Get(ctx, account)
	if err != nil {
		return Bundle{}, err
	}
	keys, err := s.accounts.Keys(ctx, a.ID)
	if err != nil {
		return Bundle{}, err
	}
	var k accounts.AccessKey
	if len(keys) > 0 {
		k = keys[0]
	} else if k, err = s.accounts.CreateKey(ctx, a.ID); err != nil {
		return Bundle{}, err
	}
	certPEM, keyPEM, err := authority.IssueUser(a.ID, a.Name, s.now())
	if err != nil {
		return Bundle{}, err
	}
	// Bundles signed with this key verify against the account.
	if _, err := s.accounts.AddCert(ctx, a.ID, string(certPEM)); err != nil {
		return Bundle{}, err
	}
	return Bundle{Credential: credential(a, k), UserCertPEM: certPEM, UserKeyPEM: keyPEM, CloudCertPEM: set.CertPEM}, nil
}

// AddSigningCert attaches an existing X.509 certificate (PEM) to an
// account, so that bundles signed with its key register.
func (s *Service) AddSigningCert(ctx context.Context, account, certPEM string) (accounts.Cert, error) {
	return s.accounts.AddCert(ctx, account, certPEM)
}

// SetImageDefaults sets the kernel and ramdisk machine images get when
// they name none.
func (s *Service) SetImageDefaults(ctx context.Context, d images.Defaults) error {
	return s.db.Commit(func(tx *store.Tx) error { return images.SetDefaults(tx, d) })
}
