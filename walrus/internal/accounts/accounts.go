package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/koala-cloud/koala/pkg/ident"
)

// ErrUnknownKey is returned for an access key no account holds.
var ErrUnknownKey = errors.New("unknown access key")

// ErrExists is returned when creating an account whose name is taken.
var ErrExists = errors.New("account already exists")

// Account is an account with its access key, in the form the file and the
// admin verb use.
type Account struct {
	AccountID       string `json:"account_id"`
	CanonicalUserID string `json:"canonical_user_id"`
	DisplayName     string `json:"display_name"`
	Email           string `json:"email"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`

	component string // set by Remote for a daemon's key
}

type document struct {
	Accounts []Account `json:"accounts"`
}

// File serves accounts from a JSON file. A lookup that misses re-reads
// the file if it changed, so accounts the admin verb adds work at once.
type File struct {
	path string

	mu      sync.RWMutex
	byKey   map[string]Account
	byEmail map[string]Account
	byID    map[string]Account
	mtime   time.Time
	size    int64
}

// Open loads the accounts file at path; a missing file is an empty one.
func Open(path string) (*File, error) {
	f := &File{path: path}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func read(path string) (document, error) {
	var doc document
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, fmt.Errorf("read accounts: %w", err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, fmt.Errorf("parse accounts %s: %w", path, err)
	}
	return doc, nil
}

// reload re-reads the file if its size or time changed.
func (f *File) reload() error {
	st, err := os.Stat(f.path)
	var mtime time.Time
	var size int64
	if err == nil {
		mtime, size = st.ModTime(), st.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat accounts: %w", err)
	}
	f.mu.RLock()
	same := f.byKey != nil && mtime.Equal(f.mtime) && size == f.size
	f.mu.RUnlock()
	if same {
		return nil
	}
	doc, err := read(f.path)
	if err != nil {
		return err
	}
	byKey, byEmail, byID := map[string]Account{}, map[string]Account{}, map[string]Account{}
	for _, a := range doc.Accounts {
		byKey[a.AccessKeyID] = a
		if a.Email != "" {
			byEmail[strings.ToLower(a.Email)] = a
		}
		byID[a.CanonicalUserID] = a
	}
	f.mu.Lock()
	f.byKey, f.byEmail, f.byID, f.mtime, f.size = byKey, byEmail, byID, mtime, size
	f.mu.Unlock()
	return nil
}

func (f *File) lookup(m func(*File) map[string]Account, k string) (Account, bool) {
	f.mu.RLock()
	a, ok := m(f)[k]
	f.mu.RUnlock()
	return a, ok
}

// Key returns the account holding an access key.
func (f *File) Key(ctx context.Context, accessKeyID string) (Account, error) {
	byKey := func(f *File) map[string]Account { return f.byKey }
	if a, ok := f.lookup(byKey, accessKeyID); ok {
		return a, nil
	}
	if err := f.reload(); err != nil {
		return Account{}, err
	}
	if a, ok := f.lookup(byKey, accessKeyID); ok {
		return a, nil
	}
	return Account{}, fmt.Errorf("%s: %w", accessKeyID, ErrUnknownKey)
}

// ByEmail returns the account with an email address.
func (f *File) ByEmail(email string) (Account, bool) {
	return f.lookup(func(f *File) map[string]Account { return f.byEmail }, strings.ToLower(email))
}

// ByID returns the account with a canonical user ID.
func (f *File) ByID(id string) (Account, bool) {
	return f.lookup(func(f *File) map[string]Account { return f.byID }, id)
}

// Create adds an account named name with a new key pair to the file at
// path and returns it. Concurrent creators are serialised by a lock file.
func Create(path, name, email string) (Account, error) {
	if name == "" {
		return Account{}, errors.New("account name is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Account{}, fmt.Errorf("create accounts dir: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return Account{}, fmt.Errorf("lock accounts: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Account{}, fmt.Errorf("lock accounts: %w", err)
	}
	doc, err := read(path)
	if err != nil {
		return Account{}, err
	}
	for _, a := range doc.Accounts {
		if a.DisplayName == name {
			return Account{}, fmt.Errorf("%s: %w", name, ErrExists)
		}
	}
	a := Account{
		AccountID:       ident.AccountID(),
		CanonicalUserID: ident.CanonicalID(),
		DisplayName:     name,
		Email:           email,
		AccessKeyID:     ident.AccessKeyID(),
		SecretAccessKey: ident.SecretKey(),
	}
	doc.Accounts = append(doc.Accounts, a)
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return Account{}, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return Account{}, fmt.Errorf("write accounts: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Account{}, fmt.Errorf("write accounts: %w", err)
	}
	return a, nil
}
