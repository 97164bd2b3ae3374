package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors callers test for.
var (
	ErrNotFound      = errors.New("not found")
	ErrSchemaTooNew  = errors.New("database schema is newer than this program")
	ErrUnknownBucket = errors.New("bucket not declared in the schema")
	ErrBadValue      = errors.New("stored value has an unknown encoding")
)

// Schema declares a database's top-level buckets and its version. Each
// daemon keeps its Schema in one file.
type Schema struct {
	// Version is the layout version stored in the database. Opening a
	// database written by a newer version fails with ErrSchemaTooNew.
	Version uint32
	// Buckets lists every top-level bucket.
	Buckets []string
	// Migrate, when set, upgrades a database from an older version inside
	// the opening transaction.
	Migrate func(tx *Tx, from uint32) error
}

const metaBucket = "_meta"

var versionKey = []byte("schema_version")

// DB is an open bbolt database with a declared schema.
type DB struct {
	bolt    *bolt.DB
	buckets map[string]bool

	beforeCommit func() error

	mu      sync.Mutex
	pending []*op
	running bool
}

// Options tune Open.
type Options struct {
	// NoSync skips fsync on commit; only for tests and benchmarks that say so.
	NoSync bool
	// BeforeCommit, when set, runs once before each group transaction of
	// Commit, after the group is formed: the place to make durable, once
	// for the whole group, what its records will point to.
	BeforeCommit func() error
}

// Open opens (creating if needed) the database at path, creates the
// schema's buckets and checks or records its version.
func Open(path string, schema Schema, opts Options) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{bolt: b, buckets: map[string]bool{metaBucket: true}, beforeCommit: opts.BeforeCommit}
	for _, name := range schema.Buckets {
		db.buckets[name] = true
	}
	err = db.Update(func(tx *Tx) error {
		for name := range db.buckets {
			if _, err := tx.bolt.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.bolt.Bucket([]byte(metaBucket))
		var have uint32
		if v := meta.Get(versionKey); len(v) == 4 {
			have = binary.BigEndian.Uint32(v)
		} else if v != nil {
			return fmt.Errorf("schema version: %w", ErrBadValue)
		} else {
			have = schema.Version
		}
		switch {
		case have > schema.Version:
			return fmt.Errorf("%s has version %d, want <= %d: %w", path, have, schema.Version, ErrSchemaTooNew)
		case have < schema.Version && schema.Migrate != nil:
			if err := schema.Migrate(tx, have); err != nil {
				return fmt.Errorf("migrate from version %d: %w", have, err)
			}
		}
		return meta.Put(versionKey, binary.BigEndian.AppendUint32(nil, schema.Version))
	})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.bolt.Close() }

// Path returns the database file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{bolt: btx, db: db}) })
}

// Update runs fn in a read-write transaction of its own.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{bolt: btx, db: db}) })
}

// Tx is a transaction.
type Tx struct {
	bolt *bolt.Tx
	db   *DB
}

// Bolt returns the underlying bbolt transaction, for nested buckets and
// cursors.
func (tx *Tx) Bolt() *bolt.Tx { return tx.bolt }

// Bucket returns a top-level bucket declared in the schema.
func (tx *Tx) Bucket(name string) (*bolt.Bucket, error) {
	if !tx.db.buckets[name] {
		return nil, fmt.Errorf("%s: %w", name, ErrUnknownBucket)
	}
	return tx.bolt.Bucket([]byte(name)), nil
}

// Get decodes the value at bucket/key into v; ErrNotFound if absent.
func (tx *Tx) Get(bucket string, key []byte, v any) error {
	b, err := tx.Bucket(bucket)
	if err != nil {
		return err
	}
	return GetIn(b, key, v)
}

// Put encodes v at bucket/key.
func (tx *Tx) Put(bucket string, key []byte, v any) error {
	b, err := tx.Bucket(bucket)
	if err != nil {
		return err
	}
	return PutIn(b, key, v)
}

// Delete removes bucket/key; deleting an absent key is not an error.
func (tx *Tx) Delete(bucket string, key []byte) error {
	b, err := tx.Bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete(key)
}

// Values are stored as one version byte followed by JSON, so that the
// encoding can change later without guessing.
const valueJSON = 1

// GetIn decodes the value at key in bucket b into v.
func GetIn(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	return Decode(raw, v)
}

// PutIn encodes v at key in bucket b.
func PutIn(b *bolt.Bucket, key []byte, v any) error {
	raw, err := Encode(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// Encode returns the stored form of v.
func Encode(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return append([]byte{valueJSON}, raw...), nil
}

// Decode decodes a stored value into v.
func Decode(raw []byte, v any) error {
	if len(raw) == 0 || raw[0] != valueJSON {
		return ErrBadValue
	}
	if err := json.Unmarshal(raw[1:], v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
