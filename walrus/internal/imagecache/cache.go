package imagecache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

const bktEntries = "entries"

var schema = store.Schema{Version: 1, Buckets: []string{bktEntries}}

// Entry is a cached image.
type Entry struct {
	Key    string    `json:"-"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	Used   time.Time `json:"used"`
}

// Key returns the cache key of the bundle at location whose manifest has
// the given digest.
func Key(location, manifestDigest string) string {
	h := sha256.Sum256([]byte(location + "\x00" + manifestDigest))
	return hex.EncodeToString(h[:])
}

// Cache is an on-disk cache of decrypted images.
type Cache struct {
	dir   string
	limit int64
	db    *store.DB
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	inflight map[string]*fill
	pins     map[string]int
}

type fill struct {
	done  chan struct{}
	entry Entry
	err   error
}

// Open opens the cache in dir, holding at most limit bytes of images
// (besides those being read). Leftovers of interrupted fills are removed,
// and index entries whose files are gone are dropped.
func Open(dir string, limit int64, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("image cache dir: %w", err)
	}
	db, err := store.Open(filepath.Join(dir, "index.db"), schema, store.Options{})
	if err != nil {
		return nil, err
	}
	c := &Cache{dir: dir, limit: limit, db: db, log: log, now: time.Now, inflight: map[string]*fill{}, pins: map[string]int{}}
	if err := c.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the index.
func (c *Cache) Close() error { return c.db.Close() }

func (c *Cache) path(key string) string { return filepath.Join(c.dir, key+".img") }

func (c *Cache) recover() error {
	if err := os.RemoveAll(filepath.Join(c.dir, "tmp")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "tmp"), 0o700); err != nil {
		return err
	}
	known := map[string]bool{}
	err := c.db.Update(func(tx *store.Tx) error {
		b, _ := tx.Bucket(bktEntries)
		var gone [][]byte
		err := b.ForEach(func(k, _ []byte) error {
			if _, err := os.Stat(c.path(string(k))); err != nil {
				gone = append(gone, k)
			} else {
				known[string(k)] = true
			}
			return nil
		})
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	files, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if key, ok := strings.CutSuffix(f.Name(), ".img"); ok && !known[key] {
			_ = os.Remove(filepath.Join(c.dir, f.Name()))
		}
	}
	return nil
}

// Handle is an open cached image; Close lets the cache evict it again.
type Handle struct {
	*os.File
	Entry
	once    sync.Once
	release func()
}

// Close closes the file and unpins the entry.
func (h *Handle) Close() error {
	err := h.File.Close()
	h.once.Do(h.release)
	return err
}

// Filler writes an image's plain bytes to w; an error means the image
// cannot be had (nothing is cached).
type Filler func(ctx context.Context, w io.Writer) error

// Get opens the cached image of key, filling it with filler first on a
// miss. Callers asking for the same key at the same time share one fill.
func (c *Cache) Get(ctx context.Context, key string, filler Filler) (*Handle, error) {
	for {
		c.mu.Lock()
		if f, ok := c.inflight[key]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil {
				return nil, f.err
			}
			continue
		}
		var e Entry
		err := c.db.View(func(tx *store.Tx) error { return tx.Get(bktEntries, []byte(key), &e) })
		if err == nil {
			fh, err := os.Open(c.path(key))
			if err == nil {
				c.pins[key]++
				c.mu.Unlock()
				e.Key = key
				c.touch(key)
				return &Handle{File: fh, Entry: e, release: func() { c.unpin(key) }}, nil
			}
			c.log.Warn("cached image file missing", "key", key, "err", err)
		} else if !errors.Is(err, store.ErrNotFound) {
			c.mu.Unlock()
			return nil, err
		}
		f := &fill{done: make(chan struct{})}
		c.inflight[key] = f
		c.mu.Unlock()
		f.entry, f.err = c.fill(ctx, key, filler)
		var h *Handle
		c.mu.Lock()
		delete(c.inflight, key)
		if f.err == nil {
			// Pin the new image before anything is evicted, so that the
			// eviction its arrival causes cannot take it.
			var fh *os.File
			if fh, f.err = os.Open(c.path(key)); f.err == nil {
				c.pins[key]++
				h = &Handle{File: fh, Entry: f.entry, release: func() { c.unpin(key) }}
			}
		}
		c.mu.Unlock()
		close(f.done)
		if f.err != nil {
			return nil, f.err
		}
		c.evict()
		return h, nil
	}
}

// fill writes the image into a temporary file, fsyncs it, moves it into
// place and records it.
func (c *Cache) fill(ctx context.Context, key string, filler Filler) (Entry, error) {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(c.dir, "tmp", key+"."+hex.EncodeToString(suffix[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Entry{}, err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	cw := &counter{w: io.MultiWriter(f, h)}
	err = filler(ctx, cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Entry{}, err
	}
	if err := os.Rename(tmp, c.path(key)); err != nil {
		return Entry{}, err
	}
	e := Entry{Key: key, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), Used: c.now().UTC()}
	if err := c.db.Commit(func(tx *store.Tx) error { return tx.Put(bktEntries, []byte(key), e) }); err != nil {
		return Entry{}, err
	}
	c.log.Info("image cached", "key", key, "size", e.Size)
	return e, nil
}

func (c *Cache) touch(key string) {
	err := c.db.Commit(func(tx *store.Tx) error {
		var e Entry
		if err := tx.Get(bktEntries, []byte(key), &e); err != nil {
			return err
		}
		e.Used = c.now().UTC()
		return tx.Put(bktEntries, []byte(key), e)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Warn("touch cached image", "key", key, "err", err)
	}
}

func (c *Cache) unpin(key string) {
	c.mu.Lock()
	c.pins[key]--
	if c.pins[key] <= 0 {
		delete(c.pins, key)
	}
	c.mu.Unlock()
	c.evict()
}

// evict removes the least recently used entries that no one reads until
// the cache fits its limit.
func (c *Cache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []Entry
	var total int64
	err := c.db.View(func(tx *store.Tx) error {
		b, _ := tx.Bucket(bktEntries)
		return b.ForEach(func(k, v []byte) error {
			var e Entry
			if err := store.Decode(v, &e); err != nil {
				return err
			}
			e.Key = string(k)
			all = append(all, e)
			total += e.Size
			return nil
		})
	})
	if err != nil || total <= c.limit {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Used.Before(all[j].Used) })
	for _, e := range all {
		if total <= c.limit {
			return
		}
		if c.pins[e.Key] > 0 {
			continue
		}
		err := c.db.Commit(func(tx *store.Tx) error { return tx.Delete(bktEntries, []byte(e.Key)) })
		if err != nil {
			c.log.Warn("evict cached image", "key", e.Key, "err", err)
			return
		}
		if err := os.Remove(c.path(e.Key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("remove evicted image", "key", e.Key, "err", err)
		}
		total -= e.Size
		c.log.Info("image evicted", "key", e.Key, "size", e.Size)
	}
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
