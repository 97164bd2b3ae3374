package chunkstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/durable"
	"github.com/koala-cloud/koala/pkg/store"
)

// PutChunk stores the chunk named sum, reading its bytes from body
// (which must hash to sum and hold at most api.SnapshotChunkSize bytes),
// and reports whether it stored it: a chunk already stored is not written
// again and body is not read (if no manifest names it yet, its grace
// period starts again). Errors of body come back wrapped.
func (s *Store) PutChunk(ctx context.Context, sum string, body io.Reader) (bool, error) {
	if err := checkSum(sum); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if have, err := s.touch(sum); err != nil || have {
		return false, err
	}
	tmp, size, err := s.writeTemp(sum, body)
	if err != nil {
		return false, err
	}
	mu := s.lock(sum)
	mu.Lock()
	defer mu.Unlock()
	// A put of the same chunk may have won the race since touch.
	if _, err := s.Stat(ctx, sum); !errors.Is(err, ErrChunkNotFound) {
		_ = removeQuiet(tmp)
		return false, err
	}
	dst := s.path(sum)
	if err := os.Rename(tmp, dst); err != nil {
		_ = removeQuiet(tmp)
		return false, fmt.Errorf("chunk %s: %w", sum, err)
	}
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		_ = removeQuiet(dst)
		return false, fmt.Errorf("chunk %s: %w", sum, err)
	}
	created := s.now().UTC()
	err = s.db.Commit(func(tx *store.Tx) error {
		if err := tx.Put(bktChunks, []byte(sum), chunk{Size: size, Created: created}); err != nil {
			return err
		}
		if err := tx.Put(bktUnref, []byte(sum), struct{}{}); err != nil {
			return err
		}
		return addTotals(tx, totals{Chunks: 1, Bytes: size})
	})
	if err != nil {
		// No record names the file, and the lock keeps others from
		// making one: it can go (else Open removes it).
		_ = removeQuiet(dst)
		return false, fmt.Errorf("record chunk %s: %w", sum, err)
	}
	return true, nil
}

// touch reports whether chunk sum is stored and, when no manifest names
// it, restarts its grace period.
func (s *Store) touch(sum string) (bool, error) {
	var c chunk
	err := s.db.View(func(tx *store.Tx) error { return tx.Get(bktChunks, []byte(sum), &c) })
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("chunk %s: %w", sum, err)
	case c.Refs > 0:
		return true, nil
	}
	found := false
	now := s.now().UTC()
	err = s.db.Commit(func(tx *store.Tx) error {
		found = false
		var c chunk
		err := tx.Get(bktChunks, []byte(sum), &c)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		found = true
		if c.Refs > 0 {
			return nil
		}
		c.Created = now
		return tx.Put(bktChunks, []byte(sum), c)
	})
	if err != nil {
		return false, fmt.Errorf("chunk %s: %w", sum, err)
	}
	return found, nil
}

// writeTemp streams body into a new file in tmp/, checks it against sum
// and fsyncs it; it returns the file's path and size.
func (s *Store) writeTemp(sum string, body io.Reader) (path string, size int64, err error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), sum[:16]+".*")
	if err != nil {
		return "", 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = removeQuiet(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, api.SnapshotChunkSize+1))
	if err != nil {
		return "", 0, fmt.Errorf("chunk %s: read body: %w", sum, err)
	}
	if n > api.SnapshotChunkSize {
		return "", 0, fmt.Errorf("%w: chunk %s exceeds %d bytes", ErrTooLarge, sum, api.SnapshotChunkSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", 0, fmt.Errorf("%w: the body of chunk %s hashes to %s", ErrBadDigest, sum, got)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	return f.Name(), n, nil
}

// Stat returns the size of chunk sum, or ErrChunkNotFound.
func (s *Store) Stat(ctx context.Context, sum string) (int64, error) {
	if err := checkSum(sum); err != nil {
		return 0, err
	}
	var c chunk
	err := s.db.View(func(tx *store.Tx) error { return tx.Get(bktChunks, []byte(sum), &c) })
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s", ErrChunkNotFound, sum)
	}
	if err != nil {
		return 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	return c.Size, nil
}

// OpenChunk opens chunk sum for reading and returns its size; the caller
// closes the file. The file stays readable if the chunk is dropped
// meanwhile.
func (s *Store) OpenChunk(ctx context.Context, sum string) (*os.File, int64, error) {
	if _, err := s.Stat(ctx, sum); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrChunkNotFound, sum)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("chunk %s: %w", sum, err)
	}
	return f, fi.Size(), nil
}

// Sweep drops the chunks that no manifest names and that were put longer
// than the grace period before now (their snapshot never committed), and
// returns how many it dropped.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.sweep(now)
}

func (s *Store) sweep(now time.Time) (int, error) {
	var freed []string
	err := s.db.Commit(func(tx *store.Tx) error {
		freed = freed[:0]
		unref, err := tx.Bucket(bktUnref)
		if err != nil {
			return err
		}
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		var stale [][]byte // index entries of chunks gone or referenced
		var d totals
		err = unref.ForEach(func(k, _ []byte) error {
			var c chunk
			err := store.GetIn(chunks, k, &c)
			switch {
			case errors.Is(err, store.ErrNotFound), err == nil && c.Refs > 0:
				stale = append(stale, bytes.Clone(k))
			case err != nil:
				return fmt.Errorf("chunk %s: %w", k, err)
			case now.Sub(c.Created) >= s.grace:
				freed = append(freed, string(k))
				d.Chunks--
				d.Bytes -= c.Size
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := unref.Delete(k); err != nil {
				return err
			}
		}
		for _, sum := range freed {
			if err := unref.Delete([]byte(sum)); err != nil {
				return err
			}
			if err := chunks.Delete([]byte(sum)); err != nil {
				return err
			}
		}
		return addTotals(tx, d)
	})
	if err != nil {
		return 0, fmt.Errorf("sweep chunks: %w", err)
	}
	s.removeFiles(freed)
	if len(freed) > 0 {
		s.log.Info("swept unreferenced chunks", "chunks", len(freed))
	}
	return len(freed), nil
}

// removeFiles removes the files of chunks whose records a commit
// dropped, unless a put recorded the chunk again meanwhile. A file left
// behind (an error, a crash) is removed by the next Open.
func (s *Store) removeFiles(sums []string) {
	sums = slices.Clone(sums)
	slices.Sort(sums)
	for len(sums) > 0 {
		n := 1
		for n < len(sums) && sums[n][:2] == sums[0][:2] {
			n++
		}
		s.removeGroup(sums[:n])
		sums = sums[n:]
	}
}

// removeGroup removes chunks that share their first byte, under its lock.
func (s *Store) removeGroup(sums []string) {
	mu := s.lock(sums[0])
	mu.Lock()
	defer mu.Unlock()
	err := s.db.View(func(tx *store.Tx) error {
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		for _, sum := range sums {
			if chunks.Get([]byte(sum)) != nil {
				continue
			}
			if err := removeQuiet(s.path(sum)); err != nil {
				s.log.Warn("remove dropped chunk", "chunk", sum, "err", err)
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("remove dropped chunks", "err", err)
	}
}
