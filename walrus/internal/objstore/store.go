package objstore

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
	bolt "go.etcd.io/bbolt"
)

// Options tune a Store.
type Options struct {
	// NoSync skips fsync of metadata commits: for benchmarks that say so,
	// never for a real store.
	NoSync bool
	// GCInterval is how often the gc bucket drops entries of unlinked files.
	GCInterval time.Duration
}

// Store is an open object store.
type Store struct {
	db    *store.DB
	files *files
	log   *slog.Logger
	now   func() time.Time

	// lanes holds a token for each body being written as segments.
	lanes   chan struct{}
	segSize int64

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open opens the store in dir, creating it if needed, and recovers from an
// interrupted run: it finishes or undoes every data file write that a
// crash cut short.
func Open(dir string, log *slog.Logger, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	f, err := newFiles(dir, log)
	if err != nil {
		return nil, err
	}
	// A commit must never name a file whose directory entry a power cut
	// could still lose: on a filesystem without a journal, fsync of a new
	// file does not persist its entry. One fsync of tmp/ per group covers
	// every file the group's records point to.
	db, err := store.Open(filepath.Join(dir, "walrus.db"), schema, store.Options{NoSync: opts.NoSync, BeforeCommit: f.syncTmp})
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, files: f, log: log, now: time.Now,
		lanes: make(chan struct{}, parallelPuts), segSize: segmentSize, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.recover(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 2 * time.Second
	}
	go s.gcLoop(opts.GCInterval)
	return s, nil
}

// Close stops background work and closes the database.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.db.Close()
}

// recover unlinks what the gc bucket lists and settles every file left in
// tmp/: live ones are moved into data/, the rest removed.
func (s *Store) recover() error {
	err := s.db.Update(func(tx *store.Tx) error {
		gc, _ := tx.Bucket(bktGC)
		var ids [][]byte
		err := gc.ForEach(func(k, _ []byte) error {
			id := string(k)
			if validID(id) {
				for _, p := range []string{s.files.dataPath(id), s.files.tmpPath(id)} {
					if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("unlink released file: %w", err)
					}
				}
			}
			ids = append(ids, k)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range ids {
			if err := gc.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover released files: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(s.files.root, "tmp"))
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	var moved, removed int
	err = s.db.View(func(tx *store.Tx) error {
		live, _ := tx.Bucket(bktFiles)
		for _, e := range entries {
			id := e.Name()
			if validID(id) && live.Get([]byte(id)) != nil {
				if err := os.Rename(s.files.tmpPath(id), s.files.dataPath(id)); err != nil {
					return fmt.Errorf("recover committed file: %w", err)
				}
				moved++
				continue
			}
			if err := os.Remove(filepath.Join(s.files.root, "tmp", id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove interrupted write: %w", err)
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if moved+removed > 0 {
		s.log.Info("recovered interrupted writes", "published", moved, "removed", removed)
	}
	return nil
}

// gcLoop drops the gc entries of files already unlinked.
func (s *Store) gcLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.flushFreed()
			return
		case <-t.C:
			s.flushFreed()
		}
	}
}

func (s *Store) flushFreed() {
	ids := s.files.takeFreed()
	if len(ids) == 0 {
		return
	}
	err := s.db.Commit(func(tx *store.Tx) error {
		gc, _ := tx.Bucket(bktGC)
		for _, id := range ids {
			if err := gc.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("drop gc entries", "err", err)
	}
}

// commit runs fn in a shared transaction; fn returns the file ids it made
// live and the ids it released. After the commit, live files are published
// and released ones unlinked.
func (s *Store) commit(fn func(tx *store.Tx) (live, released []string, err error)) error {
	var live, released []string
	err := s.db.Commit(func(tx *store.Tx) error {
		var err error
		live, released, err = fn(tx)
		if err != nil {
			return err
		}
		files, _ := tx.Bucket(bktFiles)
		gc, _ := tx.Bucket(bktGC)
		for _, id := range live {
			if err := files.Put([]byte(id), nil); err != nil {
				return err
			}
		}
		for _, id := range released {
			if err := files.Delete([]byte(id)); err != nil {
				return err
			}
			if err := gc.Put([]byte(id), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.files.publish(live)
	s.files.release(released)
	return nil
}

// nested returns bucket name's nested bucket under the top-level bucket
// top, or ErrNoSuchBucket.
func nested(tx *store.Tx, top, name string) (*bolt.Bucket, error) {
	t, err := tx.Bucket(top)
	if err != nil {
		return nil, err
	}
	b := t.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNoSuchBucket)
	}
	return b, nil
}
