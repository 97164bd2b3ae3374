package imagecache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/pkg/store"
)

func open(t *testing.T, dir string, limit int64) *Cache {
	t.Helper()
	c, err := Open(dir, limit, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func content(s string) Filler {
	return func(ctx context.Context, w io.Writer) error {
		_, err := io.Copy(w, strings.NewReader(s))
		return err
	}
}

func read(t *testing.T, h *Handle) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := io.Copy(&b, h); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestOneFillForConcurrentCallers(t *testing.T) {
	c := open(t, t.TempDir(), 1<<20)
	defer c.Close()
	var fills atomic.Int32
	release := make(chan struct{})
	slow := func(ctx context.Context, w io.Writer) error {
		fills.Add(1)
		<-release
		_, err := w.Write([]byte("image bytes"))
		return err
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := c.Get(context.Background(), "k", slow)
			if err != nil {
				t.Error(err)
				return
			}
			defer h.Close()
			if got := read(t, h); got != "image bytes" {
				t.Errorf("got %q", got)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the callers pile up on the fill
	close(release)
	wg.Wait()
	if n := fills.Load(); n != 1 {
		t.Fatalf("%d fills", n)
	}
}

func TestFailedFillCachesNothingAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 1<<20)
	bad := errors.New("bad bundle")
	if _, err := c.Get(context.Background(), "k", func(ctx context.Context, w io.Writer) error {
		w.Write([]byte("half"))
		return bad
	}); !errors.Is(err, bad) {
		t.Fatalf("got %v", err)
	}
	h, err := c.Get(context.Background(), "k", content("whole"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.SHA256) != 64 || h.Size != 5 {
		t.Fatalf("entry %+v", h.Entry)
	}
	h.Close()
	c.Close()
	// A leftover of a fill cut short by a crash.
	os.WriteFile(dir+"/tmp/k.0000", []byte("torn"), 0o600)
	c = open(t, dir, 1<<20)
	defer c.Close()
	h, err = c.Get(context.Background(), "k", func(context.Context, io.Writer) error {
		t.Fatal("cached image filled again after a restart")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := read(t, h); got != "whole" {
		t.Fatalf("got %q", got)
	}
	if left, _ := os.ReadDir(dir + "/tmp"); len(left) != 0 {
		t.Fatalf("tmp leftovers: %v", left)
	}
}

func TestEvictionSparesImagesBeingRead(t *testing.T) {
	c := open(t, t.TempDir(), 10)
	defer c.Close()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { now = now.Add(time.Second); return now }
	ctx := context.Background()
	held, err := c.Get(ctx, "a", content("aaaaaa"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b", "c"} {
		h, err := c.Get(ctx, k, content("bbbbbb"))
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	// a is the oldest, but open: it stays and reads whole, while the
	// others make room.
	if got := read(t, held); got != "aaaaaa" {
		t.Fatalf("held image: %q", got)
	}
	if _, err := os.Stat(c.path("a")); err != nil {
		t.Fatalf("held image evicted: %v", err)
	}
	held.Close()
	if total := c.total(t); total > 10 {
		t.Fatalf("%d bytes cached over a limit of 10", total)
	}
}

func (c *Cache) total(t *testing.T) int64 {
	t.Helper()
	var n int64
	c.db.View(func(tx *store.Tx) error {
		b, _ := tx.Bucket(bktEntries)
		return b.ForEach(func(_, v []byte) error {
			var e Entry
			store.Decode(v, &e)
			n += e.Size
			return nil
		})
	})
	return n
}
