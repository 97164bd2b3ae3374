package chunkstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/durable"
	"github.com/koala-cloud/koala/pkg/store"
)

// Errors callers test for.
var (
	// ErrInvalid reports a malformed chunk name, snapshot ID or manifest.
	ErrInvalid = errors.New("invalid parameter")
	// ErrBadDigest reports a chunk body that does not hash to its name.
	ErrBadDigest = errors.New("chunk body does not hash to its name")
	// ErrTooLarge reports a chunk body longer than api.SnapshotChunkSize.
	ErrTooLarge = errors.New("chunk too large")
	// ErrChunkNotFound reports a chunk the store does not hold.
	ErrChunkNotFound = errors.New("no such chunk")
	// ErrManifestNotFound reports a snapshot the store holds no manifest
	// of.
	ErrManifestNotFound = errors.New("no such snapshot manifest")
	// ErrMissingChunk reports a manifest naming a chunk that is not
	// stored.
	ErrMissingChunk = errors.New("chunk not stored")
	// ErrMismatch reports a manifest put under the ID of a different one.
	ErrMismatch = errors.New("a different manifest holds this snapshot id")
	// ErrCorrupt reports records whose chunk files are gone: no crash
	// leaves that, so Open refuses to serve the store.
	ErrCorrupt = errors.New("chunk store is inconsistent")
)

// DefaultGrace is how long a chunk that no manifest names is kept when
// Options.Grace is 0.
const DefaultGrace = time.Hour

// Options tunes a Store; the zero value is the default.
type Options struct {
	// Grace is how long a chunk that no manifest names is kept, for the
	// manifest of the snapshot it was uploaded for to commit. 0 means
	// DefaultGrace.
	Grace time.Duration
}

const (
	dbName   = "chunkstore.db"
	tmpDir   = "tmp"
	chunkDir = "chunks"
)

// Store is a chunk store in one directory. It is safe for concurrent
// use.
type Store struct {
	dir   string
	db    *store.DB
	log   *slog.Logger
	grace time.Duration
	now   func() time.Time

	// locks order, per first byte of a chunk's name, a put that renames
	// a chunk into place against the removal of a released copy.
	locks [256]sync.Mutex
}

// Open opens the store in dir, creating it if needed, repairs what a
// crash left (see the package comment) and sweeps expired unreferenced
// chunks.
func Open(dir string, log *slog.Logger, opts Options) (*Store, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if err := makeDirs(dir); err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(dir, dbName), schema, store.Options{})
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, db: db, log: log, grace: opts.Grace, now: time.Now}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if _, err := s.sweep(s.now()); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Calls in flight must have returned.
func (s *Store) Close() error { return s.db.Close() }

// makeDirs creates tmp/ and the 256 directories of chunks/, and makes
// their entries durable.
func makeDirs(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o700); err != nil {
		return fmt.Errorf("create chunk store: %w", err)
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, chunkDir, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return fmt.Errorf("create chunk store: %w", err)
		}
	}
	for _, d := range []string{filepath.Join(dir, chunkDir), dir, filepath.Dir(dir)} {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// validSum reports whether s is a chunk name: 64 lowercase hex digits.
func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkSum(sum string) error {
	if !validSum(sum) {
		return fmt.Errorf("%w: chunk name %q is not a lowercase hex sha-256", ErrInvalid, sum)
	}
	return nil
}

// path is where chunk sum's file lives.
func (s *Store) path(sum string) string {
	return filepath.Join(s.dir, chunkDir, sum[:2], sum)
}

// lock returns the lock of sum's first byte.
func (s *Store) lock(sum string) *sync.Mutex {
	i, _ := strconv.ParseUint(sum[:2], 16, 8)
	return &s.locks[i]
}

// removeQuiet removes a file that may already be gone.
func removeQuiet(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// recover removes the files a crash left without a record, checks that
// every record has its file and recomputes the totals.
func (s *Store) recover() error {
	entries, err := os.ReadDir(filepath.Join(s.dir, tmpDir))
	if err != nil {
		return fmt.Errorf("recover chunk store: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.dir, tmpDir, e.Name())); err != nil {
			return fmt.Errorf("remove interrupted write: %w", err)
		}
		removed++
	}
	var orphans []string
	matched := 0
	err = s.db.View(func(tx *store.Tx) error {
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		for i := range 256 {
			prefix := fmt.Sprintf("%02x", i)
			dir := filepath.Join(s.dir, chunkDir, prefix)
			files, err := os.ReadDir(dir)
			if err != nil {
				return fmt.Errorf("recover chunk store: %w", err)
			}
			for _, f := range files {
				name := f.Name()
				if f.Type().IsRegular() && validSum(name) && name[:2] == prefix && chunks.Get([]byte(name)) != nil {
					matched++
					continue
				}
				orphans = append(orphans, filepath.Join(dir, name))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range orphans {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove unrecorded chunk: %w", err)
		}
	}
	removed += len(orphans)
	if removed > 0 {
		s.log.Info("chunk store recovered interrupted writes", "removed", removed)
	}
	sums, err := s.recount(matched)
	if err != nil {
		return err
	}
	if len(sums) > 0 {
		return fmt.Errorf("%w: %d recorded chunks have no file, such as %s", ErrCorrupt, len(sums), sums[0])
	}
	return nil
}

// recount recomputes the totals and, when fewer files than records were
// found, returns the chunks whose files are missing.
func (s *Store) recount(files int) ([]string, error) {
	var t totals
	var missing []string
	err := s.db.Commit(func(tx *store.Tx) error {
		t, missing = totals{}, nil
		chunks, err := tx.Bucket(bktChunks)
		if err != nil {
			return err
		}
		err = chunks.ForEach(func(k, v []byte) error {
			var c chunk
			if err := store.Decode(v, &c); err != nil {
				return fmt.Errorf("chunk %s: %w", k, err)
			}
			t.Chunks++
			t.Bytes += c.Size
			return nil
		})
		if err != nil {
			return err
		}
		if t.Chunks != files {
			err = chunks.ForEach(func(k, _ []byte) error {
				sum := string(k)
				if !validSum(sum) {
					missing = append(missing, sum)
					return nil
				}
				if _, err := os.Stat(s.path(sum)); errors.Is(err, fs.ErrNotExist) {
					missing = append(missing, sum)
				} else if err != nil {
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		manifests, err := tx.Bucket(bktManifests)
		if err != nil {
			return err
		}
		err = manifests.ForEach(func(_, _ []byte) error {
			t.Manifests++
			return nil
		})
		if err != nil {
			return err
		}
		return putTotals(tx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("recount chunk store: %w", err)
	}
	return missing, nil
}
