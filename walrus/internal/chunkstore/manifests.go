package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"

	bolt "go.etcd.io/bbolt"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// MaxSizeGiB is the largest volume a manifest describes, as ebs's.
const MaxSizeGiB = 16384

const gib = 1 << 30

var snapshotID = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)

func checkID(id string) error {
	if !snapshotID.MatchString(id) {
		return fmt.Errorf("%w: snapshot id %q", ErrInvalid, id)
	}
	return nil
}

// validate reports what is wrong with a manifest: its ID, its chunk size
// (api.SnapshotChunkSize), its volume size (1 to MaxSizeGiB) and its
// chunks (ascending indices within the volume, valid names).
func validate(m api.SnapshotManifest) error {
	if err := checkID(m.ID); err != nil {
		return err
	}
	if m.ChunkSize != api.SnapshotChunkSize {
		return fmt.Errorf("%w: chunk size %d, want %d", ErrInvalid, m.ChunkSize, api.SnapshotChunkSize)
	}
	if m.SizeGiB < 1 || m.SizeGiB > MaxSizeGiB {
		return fmt.Errorf("%w: volume size %d GiB: want 1 to %d", ErrInvalid, m.SizeGiB, MaxSizeGiB)
	}
	n := int64(m.SizeGiB) * gib / m.ChunkSize
	prev := int64(-1)
	for i, c := range m.Chunks {
		switch {
		case c.Index <= prev:
			return fmt.Errorf("%w: chunk %d: index %d does not follow %d", ErrInvalid, i, c.Index, prev)
		case c.Index >= n:
			return fmt.Errorf("%w: chunk %d: index %d is beyond the volume's %d chunks", ErrInvalid, i, c.Index, n)
		case !validSum(c.SHA256):
			return fmt.Errorf("%w: chunk %d: name %q is not a lowercase hex sha-256", ErrInvalid, i, c.SHA256)
		}
		prev = c.Index
	}
	return nil
}

// PutManifest commits a snapshot's manifest: in one transaction it checks
// that every chunk it names is stored (else ErrMissingChunk naming the
// first missing one), stores it and counts a reference to each chunk it
// names. Putting the same manifest again is a no-op; putting a different
// one under the same ID is ErrMismatch.
func (s *Store) PutManifest(ctx context.Context, m api.SnapshotManifest) error {
	if err := validate(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Chunks == nil {
		m.Chunks = []api.SnapshotChunk{}
	}
	raw, err := store.Encode(m)
	if err != nil {
		return err
	}
	err = s.db.Commit(func(tx *store.Tx) error {
		manifests, err := tx.Bucket(bktManifests)
		if err != nil {
			return err
		}
		if old := manifests.Get([]byte(m.ID)); old != nil {
			if bytes.Equal(old, raw) {
				return nil
			}
			return fmt.Errorf("%w: %s", ErrMismatch, m.ID)
		}
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		unref, err := tx.Bucket(bktUnref)
		if err != nil {
			return err
		}
		err = eachChunk(chunks, m, func(ref api.SnapshotChunk, key []byte, c chunk, found bool) error {
			if !found {
				return fmt.Errorf("%w: chunk %s (index %d)", ErrMissingChunk, ref.SHA256, ref.Index)
			}
			if c.Refs == 0 {
				if err := unref.Delete(key); err != nil {
					return err
				}
			}
			c.Refs++
			return store.PutIn(chunks, key, c)
		})
		if err != nil {
			return err
		}
		if err := manifests.Put([]byte(m.ID), raw); err != nil {
			return err
		}
		return addTotals(tx, totals{Manifests: 1})
	})
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", m.ID, err)
	}
	return nil
}

// Manifest returns a snapshot's manifest, or ErrManifestNotFound.
func (s *Store) Manifest(ctx context.Context, id string) (api.SnapshotManifest, error) {
	var m api.SnapshotManifest
	if err := checkID(id); err != nil {
		return m, err
	}
	err := s.db.View(func(tx *store.Tx) error { return tx.Get(bktManifests, []byte(id), &m) })
	if errors.Is(err, store.ErrNotFound) {
		return m, fmt.Errorf("%w: %s", ErrManifestNotFound, id)
	}
	if err != nil {
		return m, fmt.Errorf("manifest %s: %w", id, err)
	}
	return m, nil
}

// DeleteManifest drops a snapshot's manifest and, in the same
// transaction, the records of the chunks no other manifest names; their
// files are removed after the commit. A snapshot the store does not hold
// is not an error.
func (s *Store) DeleteManifest(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var freed []string
	lost := 0
	err := s.db.Commit(func(tx *store.Tx) error {
		freed, lost = freed[:0], 0
		manifests, err := tx.Bucket(bktManifests)
		if err != nil {
			return err
		}
		var m api.SnapshotManifest
		err = store.GetIn(manifests, []byte(id), &m)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return fmt.Errorf("manifest %s: %w", id, err)
		}
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		d := totals{Manifests: -1}
		err = eachChunk(chunks, m, func(ref api.SnapshotChunk, key []byte, c chunk, found bool) error {
			if !found {
				lost++ // cannot happen; do not let it block the delete
				return nil
			}
			if c.Refs--; c.Refs > 0 {
				return store.PutIn(chunks, key, c)
			}
			if err := chunks.Delete(key); err != nil {
				return err
			}
			freed = append(freed, ref.SHA256)
			d.Chunks--
			d.Bytes -= c.Size
			return nil
		})
		if err != nil {
			return err
		}
		if err := manifests.Delete([]byte(id)); err != nil {
			return err
		}
		return addTotals(tx, d)
	})
	if err != nil {
		return fmt.Errorf("delete manifest %s: %w", id, err)
	}
	if lost > 0 {
		s.log.Warn("deleted manifest named chunks without records", "snapshot_id", id, "chunks", lost)
	}
	s.removeFiles(freed)
	return nil
}

// eachChunk calls fn once for each distinct chunk m names, with its
// record in chunks (found false when it has none).
func eachChunk(chunks *bolt.Bucket, m api.SnapshotManifest, fn func(ref api.SnapshotChunk, key []byte, c chunk, found bool) error) error {
	seen := make(map[string]bool, len(m.Chunks))
	for _, ref := range m.Chunks {
		if seen[ref.SHA256] {
			continue
		}
		seen[ref.SHA256] = true
		key := []byte(ref.SHA256)
		var c chunk
		err := store.GetIn(chunks, key, &c)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("chunk %s: %w", ref.SHA256, err)
		}
		if err := fn(ref, key, c, err == nil); err != nil {
			return err
		}
	}
	return nil
}

// Stats reports what the store holds.
func (s *Store) Stats(ctx context.Context) (api.ChunkStats, error) {
	var t totals
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		t, err = getTotals(tx)
		return err
	})
	if err != nil {
		return api.ChunkStats{}, fmt.Errorf("chunk stats: %w", err)
	}
	return api.ChunkStats{Chunks: t.Chunks, Bytes: t.Bytes, Manifests: t.Manifests}, nil
}
