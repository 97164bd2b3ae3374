package tags

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/koala-cloud/koala/cloudctl/internal/state"
	"github.com/koala-cloud/koala/pkg/store"
)

// EC2's tag limits.
const (
	MaxTags     = 50
	MaxKeyLen   = 128
	MaxValueLen = 256
)

// Errors callers test for.
var (
	ErrTooMany   = errors.New("tag limit exceeded")
	ErrBadKey    = errors.New("invalid tag key")
	ErrBadValue  = errors.New("invalid tag value")
	ErrReserved  = errors.New("tag keys starting with aws: are reserved")
	ErrNoSuchRes = errors.New("no such resource")
)

// Tag is a key and value.
type Tag struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Tagged is one tag of one resource, as DescribeTags lists it.
type Tagged struct {
	ResourceID string
	Tag
}

// Check validates tags a client sets.
func Check(ts []Tag) error {
	for _, t := range ts {
		switch {
		case t.Key == "" || utf8.RuneCountInString(t.Key) > MaxKeyLen:
			return fmt.Errorf("%w: %q", ErrBadKey, t.Key)
		case utf8.RuneCountInString(t.Value) > MaxValueLen:
			return fmt.Errorf("%w: value of %q is longer than %d characters", ErrBadValue, t.Key, MaxValueLen)
		case strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return fmt.Errorf("%w: %q", ErrReserved, t.Key)
		}
	}
	return nil
}

func key(account, resource string) []byte { return []byte(account + "/" + resource) }

// Of returns a resource's tags, sorted by key.
func Of(tx *store.Tx, account, resource string) ([]Tag, error) {
	var m map[string]string
	if err := tx.Get(state.Tags, key(account, resource), &m); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return sorted(m), nil
}

func sorted(m map[string]string) []Tag {
	out := make([]Tag, 0, len(m))
	for k, v := range m {
		out = append(out, Tag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Add sets tags on a resource, replacing the values of keys it has.
func Add(tx *store.Tx, account, resource string, ts []Tag) error {
	if err := Check(ts); err != nil {
		return err
	}
	var m map[string]string
	if err := tx.Get(state.Tags, key(account, resource), &m); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if m == nil {
		m = map[string]string{}
	}
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	if len(m) > MaxTags {
		return fmt.Errorf("%w: %s would have %d tags, the limit is %d", ErrTooMany, resource, len(m), MaxTags)
	}
	return tx.Put(state.Tags, key(account, resource), m)
}

// Remove deletes tags from a resource: a tag whose Value is nil goes
// whatever its value, one with a value only when it matches.
func Remove(tx *store.Tx, account, resource string, keys []string, values []*string) error {
	var m map[string]string
	if err := tx.Get(state.Tags, key(account, resource), &m); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if len(keys) == 0 {
		m = nil
	}
	for i, k := range keys {
		if v, ok := m[k]; ok && (values[i] == nil || *values[i] == v) {
			delete(m, k)
		}
	}
	if len(m) == 0 {
		return tx.Delete(state.Tags, key(account, resource))
	}
	return tx.Put(state.Tags, key(account, resource), m)
}

// Drop forgets every tag of a deleted resource.
func Drop(tx *store.Tx, account, resource string) error {
	return tx.Delete(state.Tags, key(account, resource))
}

// All lists every tag of an account's resources, by resource then key.
func All(tx *store.Tx, account string) ([]Tagged, error) {
	b, err := tx.Bucket(state.Tags)
	if err != nil {
		return nil, err
	}
	prefix := []byte(account + "/")
	var out []Tagged
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var m map[string]string
		if err := store.Decode(v, &m); err != nil {
			return nil, err
		}
		res := string(k[len(prefix):])
		for _, t := range sorted(m) {
			out = append(out, Tagged{res, t})
		}
	}
	return out, nil
}
