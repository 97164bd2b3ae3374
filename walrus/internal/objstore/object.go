package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
	"github.com/koala-cloud/koala/walrus/internal/acl"
	bolt "go.etcd.io/bbolt"
)

// Precondition decides whether a write or delete may replace the object
// it would replace: old is that object, nil when there is none. It runs
// inside the commit, so no other write slips in between.
type Precondition func(old *Object) error

// PutInput describes an object to write.
type PutInput struct {
	Bucket, Key string
	Body        io.Reader
	Size        int64
	Owner       acl.Owner
	ACL         acl.Policy
	Meta        Meta
	// Verify, when set, runs once the data is durable and before the
	// commit, with the object as it will be stored; it may fill in the
	// checksum. An error aborts the put and leaves no trace.
	Verify func(o *Object) error
	// Precondition, when set, is checked before the data is received and
	// again, atomically, at the commit.
	Precondition Precondition
}

// Put stores an object, replacing any object with the same key.
func (s *Store) Put(ctx context.Context, in PutInput) (Object, error) {
	if _, err := s.Bucket(ctx, in.Bucket); err != nil {
		return Object{}, err
	}
	if in.Precondition != nil {
		// Fail early rather than after receiving the whole body.
		if err := s.checkCurrent(in.Bucket, in.Key, in.Precondition); err != nil {
			return Object{}, err
		}
	}
	w, err := s.writeData(ctx, in.Body, in.Size, true)
	if err != nil {
		return Object{}, err
	}
	o := Object{
		Bucket: in.Bucket, Key: in.Key, Size: w.size, ETag: w.md5,
		Modified: s.now().UTC().Truncate(time.Millisecond),
		Owner:    in.Owner, ACL: in.ACL, Meta: in.Meta,
		Chunks: w.chunks,
	}
	if in.Verify != nil {
		if err := in.Verify(&o); err != nil {
			s.files.discardAll(fileIDs(w.chunks))
			return Object{}, err
		}
	}
	if err := s.putRecord(o, inlineData(w), in.Precondition); err != nil {
		s.files.discardAll(fileIDs(w.chunks))
		return Object{}, err
	}
	return o, nil
}

// inlineData returns what putRecord takes of w: its inline data by chunk id.
func inlineData(w written) map[string][]byte {
	if w.inline == nil {
		return nil
	}
	return map[string][]byte{w.chunks[0].ID: w.inline}
}

// checkCurrent runs pre against the object as it is now.
func (s *Store) checkCurrent(bucket, key string, pre Precondition) error {
	return s.db.View(func(tx *store.Tx) error {
		var o Object
		switch err := getObject(tx, bucket, key, &o); {
		case errors.Is(err, ErrNoSuchKey):
			return pre(nil)
		case err != nil:
			return err
		}
		return pre(&o)
	})
}

// current reads the object at key of objs for a precondition: nil if
// there is none.
func current(objs *bolt.Bucket, key string) (*Object, error) {
	var old Object
	switch err := store.GetIn(objs, []byte(key), &old); {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &old, nil
}

// putRecord commits o, whose chunk files are uncommitted and whose inline
// chunks' data is in inline, releasing the data of the object it
// replaces, if pre allows replacing it.
func (s *Store) putRecord(o Object, inline map[string][]byte, pre Precondition) error {
	return s.commit(func(tx *store.Tx) (live, released []string, err error) {
		objs, err := nested(tx, bktObjects, o.Bucket)
		if err != nil {
			return nil, nil, err
		}
		old, err := current(objs, o.Key)
		if err != nil {
			return nil, nil, err
		}
		if pre != nil {
			if err := pre(old); err != nil {
				return nil, nil, err
			}
		}
		if released, err = dropData(tx, old); err != nil {
			return nil, nil, err
		}
		if err := putInline(tx, inline); err != nil {
			return nil, nil, err
		}
		if err := store.PutIn(objs, []byte(o.Key), o); err != nil {
			return nil, nil, err
		}
		return o.fileIDs(), released, nil
	})
}

// dropData deletes old's inline data and returns its files, for the
// commit to release; old may be nil.
func dropData(tx *store.Tx, old *Object) ([]string, error) {
	if old == nil {
		return nil, nil
	}
	b, err := tx.Bucket(bktInline)
	if err != nil {
		return nil, err
	}
	for _, c := range old.Chunks {
		if c.Inline {
			if err := b.Delete([]byte(c.ID)); err != nil {
				return nil, err
			}
		}
	}
	return old.fileIDs(), nil
}

// putInline stores inline chunks' data by chunk id.
func putInline(tx *store.Tx, inline map[string][]byte) error {
	if len(inline) == 0 {
		return nil
	}
	b, err := tx.Bucket(bktInline)
	if err != nil {
		return err
	}
	for id, data := range inline {
		if err := b.Put([]byte(id), data); err != nil {
			return err
		}
	}
	return nil
}

// getInline copies out the data of o's inline chunks, by chunk id.
func getInline(tx *store.Tx, o *Object) (map[string][]byte, error) {
	var inline map[string][]byte
	for _, c := range o.Chunks {
		if !c.Inline {
			continue
		}
		b, err := tx.Bucket(bktInline)
		if err != nil {
			return nil, err
		}
		data := b.Get([]byte(c.ID))
		if int64(len(data)) != c.Size {
			return nil, fmt.Errorf("%s/%s: inline data of %d bytes, want %d", o.Bucket, o.Key, len(data), c.Size)
		}
		if inline == nil {
			inline = map[string][]byte{}
		}
		inline[c.ID] = bytes.Clone(data)
	}
	return inline, nil
}

// Head returns an object's record.
func (s *Store) Head(ctx context.Context, bucket, key string) (Object, error) {
	var o Object
	err := s.db.View(func(tx *store.Tx) error { return getObject(tx, bucket, key, &o) })
	return o, err
}

func getObject(tx *store.Tx, bucket, key string, o *Object) error {
	objs, err := nested(tx, bktObjects, bucket)
	if err != nil {
		return err
	}
	if err := store.GetIn(objs, []byte(key), o); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s/%s: %w", bucket, key, ErrNoSuchKey)
		}
		return err
	}
	o.Bucket, o.Key = bucket, key
	return nil
}

// Open returns a reader of an object's data. check, when set, sees the
// record before any data is read and may refuse (conditional requests).
// The caller closes the reader.
func (s *Store) Open(ctx context.Context, bucket, key string, check func(*Object) error) (*Reader, error) {
	var (
		o      Object
		inline map[string][]byte
	)
	s.files.gate.RLock()
	err := s.db.View(func(tx *store.Tx) error {
		if err := getObject(tx, bucket, key, &o); err != nil {
			return err
		}
		if check != nil {
			if err := check(&o); err != nil {
				return err // before copying out inline data for nothing
			}
		}
		var err error
		inline, err = getInline(tx, &o)
		return err
	})
	if err != nil {
		s.files.gate.RUnlock()
		return nil, err
	}
	ids := o.fileIDs()
	s.files.pin(ids)
	s.files.gate.RUnlock()
	return &Reader{Object: o, files: s.files, ids: ids, inline: inline}, nil
}

// Delete removes an object if pre (when set) allows; deleting a missing
// key is not an error, as in S3. It reports whether an object was there.
func (s *Store) Delete(ctx context.Context, bucket, key string, pre Precondition) (bool, error) {
	found := false
	err := s.commit(func(tx *store.Tx) (live, released []string, err error) {
		objs, err := nested(tx, bktObjects, bucket)
		if err != nil {
			return nil, nil, err
		}
		old, err := current(objs, key)
		if err != nil {
			return nil, nil, err
		}
		if pre != nil {
			if err := pre(old); err != nil {
				return nil, nil, err
			}
		}
		found = old != nil
		if !found {
			return nil, nil, nil
		}
		if released, err = dropData(tx, old); err != nil {
			return nil, nil, err
		}
		return nil, released, objs.Delete([]byte(key))
	})
	return found, err
}

// UpdateObject changes an object's record in place (ACL, tags): fn
// edits it inside the commit; its data stays as it is.
func (s *Store) UpdateObject(ctx context.Context, bucket, key string, fn func(o *Object) error) error {
	return s.db.Commit(func(tx *store.Tx) error {
		objs, err := nested(tx, bktObjects, bucket)
		if err != nil {
			return err
		}
		var o Object
		if err := getObject(tx, bucket, key, &o); err != nil {
			return err
		}
		chunks := o.Chunks
		if err := fn(&o); err != nil {
			return err
		}
		o.Chunks = chunks
		return store.PutIn(objs, []byte(key), o)
	})
}

// CopyInput describes a copy of one object to another key.
type CopyInput struct {
	SrcBucket, SrcKey string
	DstBucket, DstKey string
	// Check sees the source record before the copy and may refuse it
	// (copy-source conditions, permissions).
	Check func(src *Object) error
	// Dest builds the destination record from the source's; the store
	// fills in data, size and time.
	Dest func(src *Object) (Object, error)
}

// Copy copies an object. The data is shared with the source through hard
// links, so a copy costs the same for any size (inline data, small by
// definition, is copied).
func (s *Store) Copy(ctx context.Context, in CopyInput) (Object, error) {
	r, err := s.Open(ctx, in.SrcBucket, in.SrcKey, in.Check)
	if err != nil {
		return Object{}, err
	}
	defer r.Close()
	src := r.Object
	dst, err := in.Dest(&src)
	if err != nil {
		return Object{}, err
	}
	dst.Bucket, dst.Key = in.DstBucket, in.DstKey
	dst.Size, dst.ETag, dst.Parts = src.Size, src.ETag, src.Parts
	dst.Modified = s.now().UTC().Truncate(time.Millisecond)
	dst.Chunks = make([]Chunk, 0, len(src.Chunks))
	var inline map[string][]byte
	for _, c := range src.Chunks {
		if c.Inline {
			if inline == nil {
				inline = map[string][]byte{}
			}
			data := r.inline[c.ID]
			c.ID = newID()
			inline[c.ID] = data
			dst.Chunks = append(dst.Chunks, c)
			continue
		}
		id, err := s.files.link(c.ID)
		if err != nil {
			s.files.discardAll(dst.fileIDs())
			return Object{}, err
		}
		c.ID = id
		dst.Chunks = append(dst.Chunks, c)
	}
	if err := s.putRecord(dst, inline, nil); err != nil {
		s.files.discardAll(dst.fileIDs())
		return Object{}, err
	}
	return dst, nil
}
