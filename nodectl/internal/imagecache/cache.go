package imagecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/durable"
)

// ErrDigest is returned when a download does not match its digest.
var ErrDigest = errors.New("image digest mismatch")

// Fetcher streams a decrypted image from walrus.
type Fetcher interface {
	Image(ctx context.Context, location, digest string) (io.ReadCloser, int64, error)
}

// Config tunes a cache.
type Config struct {
	Dir      string
	MaxBytes int64 // 0: unbounded
	// InUse reports whether an instance uses the image with this digest;
	// such images are never evicted.
	InUse func(sha256 string) bool
}

// Cache is a node's image cache.
type Cache struct {
	cfg   Config
	fetch Fetcher
	log   *slog.Logger

	mu       sync.Mutex
	used     map[string]time.Time // digest -> last use
	size     map[string]int64
	inflight map[string]*fill
}

type fill struct {
	done chan struct{}
	path string
	err  error
}

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Open opens (creating) the cache in cfg.Dir, dropping leftovers of
// downloads a crash interrupted.
func Open(cfg Config, fetch Fetcher, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	if cfg.InUse == nil {
		cfg.InUse = func(string) bool { return false }
	}
	c := &Cache{cfg: cfg, fetch: fetch, log: log, used: map[string]time.Time{}, size: map[string]int64{}, inflight: map[string]*fill{}}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		switch {
		case err != nil:
			continue
		case strings.HasSuffix(name, ".img") && digestRE.MatchString(strings.TrimSuffix(name, ".img")):
			d := strings.TrimSuffix(name, ".img")
			c.used[d], c.size[d] = info.ModTime(), info.Size()
		default:
			_ = os.RemoveAll(filepath.Join(cfg.Dir, name))
		}
	}
	return c, nil
}

// Path is where the image with a digest is kept.
func (c *Cache) Path(sha string) string { return filepath.Join(c.cfg.Dir, sha+".img") }

// Get returns the path of ref's image, fetching it first if the cache
// does not hold it. ref.SHA256 must be set.
func (c *Cache) Get(ctx context.Context, ref api.ImageRef) (string, error) {
	if !digestRE.MatchString(ref.SHA256) {
		return "", fmt.Errorf("image %s: no sha256 to check it by", ref.ID)
	}
	sha := ref.SHA256
	c.mu.Lock()
	if _, ok := c.size[sha]; ok {
		c.used[sha] = time.Now()
		c.mu.Unlock()
		now := time.Now()
		_ = os.Chtimes(c.Path(sha), now, now)
		return c.Path(sha), nil
	}
	f := c.inflight[sha]
	if f == nil {
		f = &fill{done: make(chan struct{})}
		c.inflight[sha] = f
		go c.fill(f, ref)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.path, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// fill downloads one image for every waiter. It runs on its own context
// so that one caller giving up does not fail the others.
func (c *Cache) fill(f *fill, ref api.ImageRef) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	start := time.Now()
	size, err := c.download(ctx, ref)
	c.mu.Lock()
	delete(c.inflight, ref.SHA256)
	if err == nil {
		c.used[ref.SHA256], c.size[ref.SHA256] = time.Now(), size
		f.path = c.Path(ref.SHA256)
	}
	f.err = err
	c.mu.Unlock()
	if err != nil {
		close(f.done)
		c.log.Warn("image fetch failed", "image_id", ref.ID, "err", err)
		return
	}
	c.log.Info("image cached", "image_id", ref.ID, "bytes", size, "ms", time.Since(start).Milliseconds())
	// Make room before the waiters go on: the new image is the most
	// recently used, so it stays.
	c.evict()
	close(f.done)
}

func (c *Cache) download(ctx context.Context, ref api.ImageRef) (int64, error) {
	body, _, err := c.fetch.Image(ctx, ref.Location, ref.Digest)
	if err != nil {
		return 0, fmt.Errorf("fetch image %s: %w", ref.ID, err)
	}
	defer body.Close()
	tmp, err := os.CreateTemp(c.cfg.Dir, "fetch-*")
	if err != nil {
		return 0, fmt.Errorf("fetch image %s: %w", ref.ID, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		return 0, fmt.Errorf("fetch image %s: %w", ref.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return 0, fmt.Errorf("fetch image %s: got sha256 %s, want %s: %w", ref.ID, got, ref.SHA256, ErrDigest)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("fetch image %s: %w", ref.ID, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), c.Path(ref.SHA256)); err != nil {
		return 0, fmt.Errorf("fetch image %s: %w", ref.ID, err)
	}
	return n, durable.SyncDir(c.cfg.Dir)
}

// evict removes least recently used images, never one in use, until the
// cache fits its bound.
func (c *Cache) evict() {
	if c.cfg.MaxBytes <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	digests := make([]string, 0, len(c.size))
	for d, n := range c.size {
		total += n
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool { return c.used[digests[i]].Before(c.used[digests[j]]) })
	for _, d := range digests {
		if total <= c.cfg.MaxBytes {
			return
		}
		if c.cfg.InUse(d) {
			continue
		}
		if err := os.Remove(c.Path(d)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("image cache eviction", "sha256", d, "err", err)
			continue
		}
		total -= c.size[d]
		delete(c.size, d)
		delete(c.used, d)
		c.log.Info("image evicted", "sha256", d)
	}
}

// Bytes is what the cache holds.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	for _, n := range c.size {
		total += n
	}
	return total
}
