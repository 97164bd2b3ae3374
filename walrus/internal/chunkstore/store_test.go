package chunkstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

var ctx = context.Background()

func sumOf(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// data returns a distinct chunk body for n.
func data(n int) []byte { return []byte(fmt.Sprintf("chunk %d", n)) }

// openTest opens a store in dir and checks its consistency when the test
// ends.
func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		check(t, s)
		s.Close()
	})
	return s
}

// check verifies the store's invariants: every record has its file and
// every file its record, refs count the manifests naming a chunk, the
// unreferenced index holds the chunks with refs 0, the totals add up and
// tmp/ is empty.
func check(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *store.Tx) error {
		refs := map[string]int{}
		var want totals
		manifests, _ := tx.Bucket(bktManifests)
		err := manifests.ForEach(func(k, v []byte) error {
			var m api.SnapshotManifest
			if err := store.Decode(v, &m); err != nil {
				return err
			}
			want.Manifests++
			seen := map[string]bool{}
			for _, c := range m.Chunks {
				if !seen[c.SHA256] {
					seen[c.SHA256] = true
					refs[c.SHA256]++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		chunks, _ := tx.Bucket(bktChunks)
		unref, _ := tx.Bucket(bktUnref)
		err = chunks.ForEach(func(k, v []byte) error {
			var c chunk
			if err := store.Decode(v, &c); err != nil {
				return err
			}
			sum := string(k)
			want.Chunks++
			want.Bytes += c.Size
			if c.Refs != refs[sum] {
				t.Errorf("chunk %s: refs %d, named by %d manifests", sum[:8], c.Refs, refs[sum])
			}
			delete(refs, sum)
			if (c.Refs == 0) != (unref.Get(k) != nil) {
				t.Errorf("chunk %s: refs %d, in the unreferenced index: %v", sum[:8], c.Refs, unref.Get(k) != nil)
			}
			body, err := os.ReadFile(s.path(sum))
			if err != nil {
				t.Errorf("chunk %s: %v", sum[:8], err)
			} else if int64(len(body)) != c.Size || sumOf(body) != sum {
				t.Errorf("chunk %s: file of %d bytes hashing to %s, record says %d", sum[:8], len(body), sumOf(body)[:8], c.Size)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for sum := range refs {
			t.Errorf("chunk %s: named by a manifest, not stored", sum[:8])
		}
		err = unref.ForEach(func(k, _ []byte) error {
			if chunks.Get(k) == nil {
				t.Errorf("unreferenced index names %s, not stored", k[:8])
			}
			return nil
		})
		if err != nil {
			return err
		}
		got, err := getTotals(tx)
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("totals %+v, want %+v", got, want)
		}
		files, _ := filepath.Glob(filepath.Join(s.dir, chunkDir, "*", "*"))
		for _, f := range files {
			if chunks.Get([]byte(filepath.Base(f))) == nil {
				t.Errorf("file %s has no record", f)
			}
		}
		tmp, _ := os.ReadDir(filepath.Join(s.dir, tmpDir))
		for _, e := range tmp {
			t.Errorf("left in tmp: %s", e.Name())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func put(t *testing.T, s *Store, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		if _, err := s.PutChunk(ctx, sumOf(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

// manifest names bodies as chunks 0, 1, ... of a 1 GiB volume.
func manifest(id string, bodies ...[]byte) api.SnapshotManifest {
	m := api.SnapshotManifest{ID: id, VolumeID: "vol-0123456789abcdef0", SizeGiB: 1, ChunkSize: api.SnapshotChunkSize,
		Chunks: []api.SnapshotChunk{}}
	for i, b := range bodies {
		m.Chunks = append(m.Chunks, api.SnapshotChunk{Index: int64(i), SHA256: sumOf(b)})
	}
	return m
}

func stats(t *testing.T, s *Store) api.ChunkStats {
	t.Helper()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPutChunk(t *testing.T) {
	s := openTest(t, t.TempDir())
	full := bytes.Repeat([]byte{7}, api.SnapshotChunkSize)
	put(t, s, data(0))
	tests := []struct {
		name   string
		sum    string
		body   io.Reader
		stored bool
		err    error
	}{
		{"new", sumOf(data(1)), bytes.NewReader(data(1)), true, nil},
		{"full size", sumOf(full), bytes.NewReader(full), true, nil},
		{"empty", sumOf(nil), bytes.NewReader(nil), true, nil},
		{"again", sumOf(data(0)), iotest.ErrReader(errors.New("not read")), false, nil},
		{"bad digest", sumOf(data(2)), bytes.NewReader(data(3)), false, ErrBadDigest},
		{"too large", sumOf(append(full, 1)), bytes.NewReader(append(full, 1)), false, ErrTooLarge},
		{"upper case", strings.ToUpper(sumOf(data(4))), bytes.NewReader(data(4)), false, ErrInvalid},
		{"short", sumOf(data(4))[:63], bytes.NewReader(data(4)), false, ErrInvalid},
		{"path", "../" + sumOf(data(4))[3:], bytes.NewReader(data(4)), false, ErrInvalid},
		{"body fails", sumOf(data(5)), io.MultiReader(bytes.NewReader(data(5)), iotest.ErrReader(io.ErrUnexpectedEOF)), false, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := s.PutChunk(ctx, tt.sum, tt.body)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) || stored != tt.stored {
				t.Fatalf("PutChunk: %v, %v; want %v, %v", stored, err, tt.stored, tt.err)
			}
			_, err = s.Stat(ctx, tt.sum)
			if tt.err != nil && !errors.Is(err, ErrChunkNotFound) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("a refused chunk is there: %v", err)
			}
		})
	}
	if got, want := stats(t, s), (api.ChunkStats{Chunks: 4, Bytes: int64(len(data(0)) + len(data(1)) + len(full))}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestReadChunk(t *testing.T) {
	s := openTest(t, t.TempDir())
	put(t, s, data(0))
	f, size, err := s.OpenChunk(ctx, sumOf(data(0)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if size != int64(len(data(0))) || !bytes.Equal(got, data(0)) {
		t.Fatalf("read %d %q", size, got)
	}
	if n, err := s.Stat(ctx, sumOf(data(0))); err != nil || n != size {
		t.Fatalf("stat: %d %v", n, err)
	}
	if _, _, err := s.OpenChunk(ctx, sumOf(data(1))); !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("open unknown: %v", err)
	}
	if _, err := s.Stat(ctx, sumOf(data(1))); !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("stat unknown: %v", err)
	}
}

func TestManifestValidation(t *testing.T) {
	s := openTest(t, t.TempDir())
	put(t, s, data(0), data(1))
	good := manifest("snap-0123456789abcdef0", data(0), data(1))
	tests := []struct {
		name string
		edit func(m *api.SnapshotManifest)
	}{
		{"short id", func(m *api.SnapshotManifest) { m.ID = "snap-0123456" }},
		{"long id", func(m *api.SnapshotManifest) { m.ID = "snap-0123456789abcdef01" }},
		{"upper id", func(m *api.SnapshotManifest) { m.ID = "snap-0123456789ABCDEF" }},
		{"volume id", func(m *api.SnapshotManifest) { m.ID = "vol-0123456789abcdef" }},
		{"chunk size", func(m *api.SnapshotManifest) { m.ChunkSize = 4096 }},
		{"no size", func(m *api.SnapshotManifest) { m.SizeGiB = 0 }},
		{"too big", func(m *api.SnapshotManifest) { m.SizeGiB = MaxSizeGiB + 1 }},
		{"descending", func(m *api.SnapshotManifest) { m.Chunks[0].Index, m.Chunks[1].Index = 5, 4 }},
		{"repeated index", func(m *api.SnapshotManifest) { m.Chunks[1].Index = 0 }},
		{"negative index", func(m *api.SnapshotManifest) { m.Chunks[0].Index = -1 }},
		{"beyond the volume", func(m *api.SnapshotManifest) { m.Chunks[1].Index = 1024 }},
		{"bad name", func(m *api.SnapshotManifest) { m.Chunks[1].SHA256 = "nope" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			m.Chunks = append([]api.SnapshotChunk(nil), good.Chunks...)
			tt.edit(&m)
			if err := s.PutManifest(ctx, m); !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutManifest: %v", err)
			}
		})
	}
	last := good
	last.Chunks = []api.SnapshotChunk{{Index: 1023, SHA256: sumOf(data(0))}}
	if err := s.PutManifest(ctx, last); err != nil {
		t.Fatalf("last chunk of the volume: %v", err)
	}
	for _, id := range []string{"snap-1", "../x"} {
		if _, err := s.Manifest(ctx, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("get %q: %v", id, err)
		}
		if err := s.DeleteManifest(ctx, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("delete %q: %v", id, err)
		}
	}
}

func TestManifests(t *testing.T) {
	s := openTest(t, t.TempDir())
	a, b, c, d := data(0), data(1), data(2), data(3)
	put(t, s, a, b, c, d)

	// One: a, b, a (a counts once). Two: b, c.
	one := manifest("snap-00000001", a, b, a)
	two := manifest("snap-00000002", b, c)
	for _, m := range []api.SnapshotManifest{one, two, one} {
		if err := s.PutManifest(ctx, m); err != nil {
			t.Fatalf("put %s: %v", m.ID, err)
		}
	}
	got, err := s.Manifest(ctx, one.ID)
	if err != nil || !reflect.DeepEqual(got, one) {
		t.Fatalf("get: %v %+v", err, got)
	}
	other := manifest(one.ID, a)
	if err := s.PutManifest(ctx, other); !errors.Is(err, ErrMismatch) {
		t.Fatalf("another manifest under the same id: %v", err)
	}
	missing := manifest("snap-00000003", a, data(9), data(8))
	err = s.PutManifest(ctx, missing)
	if !errors.Is(err, ErrMissingChunk) || !strings.Contains(err.Error(), sumOf(data(9))) {
		t.Fatalf("missing chunk: %v", err)
	}
	if _, err := s.Manifest(ctx, missing.ID); !errors.Is(err, ErrManifestNotFound) {
		t.Fatalf("a refused manifest is there: %v", err)
	}
	size := int64(len(a))
	if got, want := stats(t, s), (api.ChunkStats{Chunks: 4, Bytes: 4 * size, Manifests: 2}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	check(t, s)

	// Deleting one frees a (only it names a), not b (two names it).
	if err := s.DeleteManifest(ctx, one.ID); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]bool{string(a): false, string(b): true, string(c): true, string(d): true} {
		_, err := s.Stat(ctx, sumOf([]byte(body)))
		if have := err == nil; have != want {
			t.Errorf("chunk %q stored: %v, want %v", body, have, want)
		}
	}
	if _, err := os.Stat(s.path(sumOf(a))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of a freed chunk: %v", err)
	}
	if _, err := s.Manifest(ctx, one.ID); !errors.Is(err, ErrManifestNotFound) {
		t.Fatalf("deleted manifest: %v", err)
	}
	if err := s.DeleteManifest(ctx, one.ID); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	check(t, s)
	// d, never named, stays until swept.
	if err := s.DeleteManifest(ctx, two.ID); err != nil {
		t.Fatal(err)
	}
	if got, want := stats(t, s), (api.ChunkStats{Chunks: 1, Bytes: size}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	// A freed chunk can be stored and named again.
	put(t, s, a)
	if err := s.PutManifest(ctx, one); !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("b was freed: %v", err)
	}
	put(t, s, b)
	if err := s.PutManifest(ctx, one); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	start := time.Now()
	s.now = func() time.Time { return start }
	a, b, c := data(0), data(1), data(2)
	put(t, s, a, b, c)
	if err := s.PutManifest(ctx, manifest("snap-00000001", a)); err != nil {
		t.Fatal(err)
	}
	// b is put again later: its grace starts again.
	s.now = func() time.Time { return start.Add(30 * time.Minute) }
	if stored, err := s.PutChunk(ctx, sumOf(b), bytes.NewReader(b)); err != nil || stored {
		t.Fatalf("put again: %v %v", stored, err)
	}
	tests := []struct {
		at   time.Duration
		n    int
		left []string
	}{
		{59 * time.Minute, 0, []string{sumOf(a), sumOf(b), sumOf(c)}},
		{60 * time.Minute, 1, []string{sumOf(a), sumOf(b)}},
		{90 * time.Minute, 1, []string{sumOf(a)}},
		{48 * time.Hour, 0, []string{sumOf(a)}},
	}
	for _, tt := range tests {
		t.Run(tt.at.String(), func(t *testing.T) {
			n, err := s.Sweep(ctx, start.Add(tt.at))
			if err != nil || n != tt.n {
				t.Fatalf("sweep: %d %v, want %d", n, err, tt.n)
			}
			if st := stats(t, s); st.Chunks != len(tt.left) {
				t.Fatalf("%d chunks left, want %d", st.Chunks, len(tt.left))
			}
			for _, sum := range tt.left {
				if _, err := s.Stat(ctx, sum); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestOpenSweeps(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	put(t, s, data(0))
	s.now = time.Now
	put(t, s, data(1))
	s.Close()
	s = openTest(t, dir)
	if _, err := s.Stat(ctx, sumOf(data(0))); !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("an expired chunk survived Open: %v", err)
	}
	if _, err := s.Stat(ctx, sumOf(data(1))); err != nil {
		t.Fatalf("a young chunk was swept: %v", err)
	}
}

func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := data(0), data(1)
	put(t, s, a, b)
	m := manifest("snap-00000001", a, b)
	if err := s.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// What a kill -9 leaves: a temp file mid-write; a chunk renamed into
	// place whose record never committed; a freed chunk whose file was
	// not removed yet; and something that is no chunk.
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, tmpDir, "0123456789abcdef.12345"), []byte("half a chunk"))
	renamed := data(2)
	write(filepath.Join(dir, chunkDir, sumOf(renamed)[:2], sumOf(renamed)), renamed)
	junk := filepath.Join(dir, chunkDir, "00", "junk")
	write(junk, nil)

	s = openTest(t, dir)
	if _, err := s.Stat(ctx, sumOf(renamed)); !errors.Is(err, ErrChunkNotFound) {
		t.Fatalf("unrecorded chunk: %v", err)
	}
	for _, p := range []string{junk, filepath.Join(dir, chunkDir, sumOf(renamed)[:2], sumOf(renamed))} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", p, err)
		}
	}
	got, err := s.Manifest(ctx, m.ID)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("manifest after recovery: %v %+v", err, got)
	}
	if st := stats(t, s); st != (api.ChunkStats{Chunks: 2, Bytes: int64(len(a) + len(b)), Manifests: 1}) {
		t.Fatalf("stats after recovery: %+v", st)
	}
}

func TestOpenReportsLostChunk(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, data(0), data(1))
	lost := s.path(sumOf(data(1)))
	s.Close()
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, slog.New(slog.DiscardHandler), Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), sumOf(data(1))) {
		t.Fatalf("Open with a lost chunk file: %v", err)
	}
}

// TestConcurrent races puts of the same chunks against manifests that
// name them and deletes that free them; the invariants hold after.
func TestConcurrent(t *testing.T) {
	s := openTest(t, t.TempDir())
	bodies := [][]byte{data(0), data(1), data(2)}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("snap-%08x", w)
			for range 30 {
				for _, b := range bodies {
					if _, err := s.PutChunk(ctx, sumOf(b), bytes.NewReader(b)); err != nil {
						t.Error(err)
						return
					}
				}
				err := s.PutManifest(ctx, manifest(id, bodies...))
				if err != nil && !errors.Is(err, ErrMissingChunk) { // freed by another's delete meanwhile
					t.Error(err)
					return
				}
				if err := s.DeleteManifest(ctx, id); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
