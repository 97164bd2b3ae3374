package snapshots

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/api"
)

// Chunks is where a snapshot's manifest and chunks are read from.
type Chunks interface {
	SnapshotManifest(ctx context.Context, id string) (api.SnapshotManifest, error)
	Chunk(ctx context.Context, sum string, buf []byte) (int, error)
}

// Reader reads a snapshot's chunks for a volume created from it: it is
// the blockdev.Source of such a volume. Every chunk is checked against
// its SHA-256 before it is used; a failed read is retried for a while,
// so that a walrus restart does not fail the guest's I/O.
type Reader struct {
	from  Chunks
	id    string
	retry time.Duration

	mu     sync.Mutex
	m      api.SnapshotManifest
	chunks map[int64]string // by index; nil until the manifest is read
}

// NewReader returns the reader of snapshot id; its manifest is read on
// first use.
func NewReader(from Chunks, id string) *Reader {
	return &Reader{from: from, id: id, retry: 30 * time.Second}
}

// Load reads the snapshot's manifest, once, and returns it.
func (r *Reader) Load(ctx context.Context) (api.SnapshotManifest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.chunks != nil {
		return r.m, nil
	}
	m, err := r.from.SnapshotManifest(ctx, r.id)
	if err != nil {
		return m, fmt.Errorf("snapshot %s: %w", r.id, err)
	}
	if m.ChunkSize != api.SnapshotChunkSize {
		return m, fmt.Errorf("snapshot %s: chunks of %d bytes, want %d", r.id, m.ChunkSize, api.SnapshotChunkSize)
	}
	r.m, r.chunks = m, make(map[int64]string, len(m.Chunks))
	for _, c := range m.Chunks {
		r.chunks[c.Index] = c.SHA256
	}
	return m, nil
}

// ReadChunk fills buf with chunk index: zeros when the snapshot has no
// data there.
func (r *Reader) ReadChunk(ctx context.Context, index int64, buf []byte) error {
	ctx, cancel := context.WithTimeout(ctx, r.retry)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := r.readChunk(ctx, index, buf)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (r *Reader) readChunk(ctx context.Context, index int64, buf []byte) error {
	if _, err := r.Load(ctx); err != nil {
		return err
	}
	sum, ok := r.chunks[index] // set once by Load, read-only after
	if !ok {
		clear(buf)
		return nil
	}
	n, err := r.from.Chunk(ctx, sum, buf)
	if err != nil {
		return fmt.Errorf("snapshot %s chunk %d: %w", r.id, index, err)
	}
	got := sha256.Sum256(buf[:n])
	if n != len(buf) || hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("snapshot %s chunk %d: %d bytes that do not hash to %s", r.id, index, n, sum)
	}
	return nil
}
