package keypairs

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	ErrDuplicate = errors.New("key pair already exists")
	ErrNotFound  = errors.New("no such key pair")
	ErrBadName   = errors.New("invalid key pair name")
)

// MaxNameLen is EC2's limit on key pair names.
const MaxNameLen = 255

// KeyPair is a stored key pair.
type KeyPair struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	PublicKey   string    `json:"public_key"`
	Created     time.Time `json:"created"`
}

func key(account, name string) []byte { return []byte(account + "/" + name) }

// CheckName validates a key pair name: 1 to 255 ASCII characters.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrBadName, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return fmt.Errorf("%w: %q must be printable ASCII", ErrBadName, name)
		}
	}
	return nil
}

// Create stores kp for account; its name must be free.
func Create(tx *store.Tx, account string, kp KeyPair) error {
	if err := CheckName(kp.Name); err != nil {
		return err
	}
	b, err := tx.Bucket(state.KeyPairs)
	if err != nil {
		return err
	}
	if b.Get(key(account, kp.Name)) != nil {
		return fmt.Errorf("%w: The keypair '%s' already exists.", ErrDuplicate, kp.Name)
	}
	return store.PutIn(b, key(account, kp.Name), kp)
}

// List returns an account's key pairs, by name.
func List(tx *store.Tx, account string) ([]KeyPair, error) {
	b, err := tx.Bucket(state.KeyPairs)
	if err != nil {
		return nil, err
	}
	prefix := []byte(account + "/")
	var out []KeyPair
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var kp KeyPair
		if err := store.Decode(v, &kp); err != nil {
			return nil, err
		}
		out = append(out, kp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Find returns the key pair with a name (byID false) or a key-... ID.
func Find(tx *store.Tx, account, nameOrID string, byID bool) (KeyPair, error) {
	if !byID {
		var kp KeyPair
		err := tx.Get(state.KeyPairs, key(account, nameOrID), &kp)
		if errors.Is(err, store.ErrNotFound) {
			return kp, fmt.Errorf("%w: The key pair '%s' does not exist", ErrNotFound, nameOrID)
		}
		return kp, err
	}
	all, err := List(tx, account)
	if err != nil {
		return KeyPair{}, err
	}
	for _, kp := range all {
		if kp.ID == nameOrID {
			return kp, nil
		}
	}
	return KeyPair{}, fmt.Errorf("%w: The key pair '%s' does not exist", ErrNotFound, nameOrID)
}

// Delete removes a key pair by name or ID; a missing one is not an error,
// as in EC2. It returns the deleted pair's ID, "" if there was none.
func Delete(tx *store.Tx, account, nameOrID string, byID bool) (string, error) {
	kp, err := Find(tx, account, nameOrID, byID)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return kp.ID, tx.Delete(state.KeyPairs, key(account, kp.Name))
}
