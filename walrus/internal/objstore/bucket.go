package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/koala-cloud/koala/pkg/store"
	"github.com/koala-cloud/koala/walrus/internal/acl"
)

func ownerKey(owner, bucket string) []byte { return []byte(owner + "/" + bucket) }

// CreateBucket creates b. maxPerOwner > 0 limits how many buckets the
// owner may hold.
func (s *Store) CreateBucket(ctx context.Context, b Bucket, maxPerOwner int) error {
	if b.Created.IsZero() {
		b.Created = s.now().UTC()
	}
	return s.db.Commit(func(tx *store.Tx) error {
		var have Bucket
		err := tx.Get(bktBuckets, []byte(b.Name), &have)
		switch {
		case err == nil && have.Owner.ID == b.Owner.ID:
			return fmt.Errorf("%s: %w", b.Name, ErrBucketOwned)
		case err == nil:
			return fmt.Errorf("%s: %w", b.Name, ErrBucketExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		owners, _ := tx.Bucket(bktOwners)
		if maxPerOwner > 0 {
			n := 0
			prefix := []byte(b.Owner.ID + "/")
			c := owners.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				n++
			}
			if n >= maxPerOwner {
				return ErrTooManyBuckets
			}
		}
		if err := owners.Put(ownerKey(b.Owner.ID, b.Name), nil); err != nil {
			return err
		}
		for _, top := range []string{bktObjects, bktUploads} {
			t, _ := tx.Bucket(top)
			if _, err := t.CreateBucketIfNotExists([]byte(b.Name)); err != nil {
				return fmt.Errorf("create bucket index: %w", err)
			}
		}
		return tx.Put(bktBuckets, []byte(b.Name), b)
	})
}

// Bucket returns the bucket called name.
func (s *Store) Bucket(ctx context.Context, name string) (Bucket, error) {
	var b Bucket
	err := s.db.View(func(tx *store.Tx) error { return getBucket(tx, name, &b) })
	return b, err
}

func getBucket(tx *store.Tx, name string, b *Bucket) error {
	if err := tx.Get(bktBuckets, []byte(name), b); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", name, ErrNoSuchBucket)
		}
		return err
	}
	b.Name = name
	return nil
}

// Buckets lists the buckets owner holds, by name.
func (s *Store) Buckets(ctx context.Context, owner string) ([]Bucket, error) {
	var out []Bucket
	err := s.db.View(func(tx *store.Tx) error {
		owners, _ := tx.Bucket(bktOwners)
		prefix := []byte(owner + "/")
		c := owners.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			var b Bucket
			if err := getBucket(tx, string(k[len(prefix):]), &b); err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// DeleteBucket deletes an empty bucket and aborts its unfinished uploads.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	return s.commit(func(tx *store.Tx) (live, released []string, err error) {
		var b Bucket
		if err := getBucket(tx, name, &b); err != nil {
			return nil, nil, err
		}
		objs, err := nested(tx, bktObjects, name)
		if err != nil {
			return nil, nil, err
		}
		if k, _ := objs.Cursor().First(); k != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, ErrBucketNotEmpty)
		}
		ups, err := nested(tx, bktUploads, name)
		if err != nil {
			return nil, nil, err
		}
		var uploadIDs []string
		err = ups.ForEach(func(k, _ []byte) error {
			_, id := splitUploadKey(k)
			uploadIDs = append(uploadIDs, id)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		for _, id := range uploadIDs {
			ids, err := dropParts(tx, id)
			if err != nil {
				return nil, nil, err
			}
			released = append(released, ids...)
		}
		for _, top := range []string{bktObjects, bktUploads} {
			t, _ := tx.Bucket(top)
			if err := t.DeleteBucket([]byte(name)); err != nil {
				return nil, nil, err
			}
		}
		if err := tx.Delete(bktOwners, ownerKey(b.Owner.ID, name)); err != nil {
			return nil, nil, err
		}
		return nil, released, tx.Delete(bktBuckets, []byte(name))
	})
}

// SetBucketACL replaces a bucket's ACL.
func (s *Store) SetBucketACL(ctx context.Context, name string, p acl.Policy) error {
	return s.db.Commit(func(tx *store.Tx) error {
		var b Bucket
		if err := getBucket(tx, name, &b); err != nil {
			return err
		}
		b.ACL = p
		return tx.Put(bktBuckets, []byte(name), b)
	})
}
