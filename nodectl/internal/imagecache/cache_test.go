package imagecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/koala-cloud/koala/pkg/api"
)

type fetcher struct {
	images map[string][]byte // location -> bytes
	calls  atomic.Int32
	gate   chan struct{} // when set, fetches wait for it
}

func (f *fetcher) Image(ctx context.Context, location, digest string) (io.ReadCloser, int64, error) {
	f.calls.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	data, ok := f.images[location]
	if !ok {
		return nil, 0, &api.CallError{Status: 404, Code: "NoSuchKey"}
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func ref(loc string, data []byte) api.ImageRef {
	sum := sha256.Sum256(data)
	return api.ImageRef{ID: "ami-" + loc, Location: loc, Digest: "d", SHA256: hex.EncodeToString(sum[:])}
}

func open(t *testing.T, f Fetcher, cfg Config) *Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := Open(cfg, f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConcurrentGetsShareOneDownload(t *testing.T) {
	img := bytes.Repeat([]byte("x"), 1<<20)
	f := &fetcher{images: map[string][]byte{"b/a.manifest.xml": img}, gate: make(chan struct{})}
	c := open(t, f, Config{})
	r := ref("b/a.manifest.xml", img)
	var wg sync.WaitGroup
	paths := make([]string, 8)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.Get(context.Background(), r)
			if err != nil {
				t.Error(err)
			}
			paths[i] = p
		}()
	}
	close(f.gate)
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	got, err := os.ReadFile(paths[0])
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("cached image differs (%v)", err)
	}
	if _, err := c.Get(context.Background(), r); err != nil || f.calls.Load() != 1 {
		t.Errorf("a cached image was fetched again (%v)", err)
	}
}

func TestDigestMismatchKeepsNothing(t *testing.T) {
	f := &fetcher{images: map[string][]byte{"b/a": []byte("tampered")}}
	dir := t.TempDir()
	c := open(t, f, Config{Dir: dir})
	r := ref("b/a", []byte("original"))
	if _, err := c.Get(context.Background(), r); !errors.Is(err, ErrDigest) {
		t.Fatalf("Get = %v, want ErrDigest", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("cache holds %d files after a bad download", len(entries))
	}
}

func TestEvictionSparesImagesInUse(t *testing.T) {
	a, b, d := bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 100), bytes.Repeat([]byte("d"), 100)
	f := &fetcher{images: map[string][]byte{"a": a, "b": b, "d": d}}
	ra, rb, rd := ref("a", a), ref("b", b), ref("d", d)
	c := open(t, f, Config{MaxBytes: 250, InUse: func(sha string) bool { return sha == ra.SHA256 }})
	ctx := context.Background()
	for _, r := range []api.ImageRef{ra, rb, rd} {
		if _, err := c.Get(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// a is oldest but in use: b goes.
	if _, err := os.Stat(c.Path(ra.SHA256)); err != nil {
		t.Errorf("the image in use was evicted")
	}
	if _, err := os.Stat(c.Path(rb.SHA256)); !os.IsNotExist(err) {
		t.Errorf("the least recently used image stayed")
	}
	if c.Bytes() != 200 {
		t.Errorf("cache holds %d bytes, want 200", c.Bytes())
	}
}

func TestReopenKeepsImagesAndDropsPartials(t *testing.T) {
	img := []byte("kernel")
	f := &fetcher{images: map[string][]byte{"k": img}}
	dir := t.TempDir()
	c := open(t, f, Config{Dir: dir})
	r := ref("k", img)
	if _, err := c.Get(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/fetch-123", []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := open(t, f, Config{Dir: dir})
	if _, err := c2.Get(context.Background(), r); err != nil || f.calls.Load() != 1 {
		t.Errorf("reopened cache fetched again (%v)", err)
	}
	if _, err := os.Stat(dir + "/fetch-123"); !os.IsNotExist(err) {
		t.Error("a partial download survived reopening")
	}
}
