package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koala-cloud/koala/pkg/sigv4"
)

// Snapshots are kept in walrus as content-addressed chunks (PathChunks)
// and one manifest per snapshot (PathSnapshotManifests) naming the
// chunks that are not all zeros; ebs makes them (PathSnapshots) and
// reads them back into new volumes.
const (
	// PathChunks (walrus): PUT {sha256} stores a chunk (its body, which
	// must hash to the name; a repeat is a no-op), GET {sha256} returns
	// it, HEAD {sha256} tells whether it is stored; GET on the collection
	// returns ChunkStats.
	PathChunks = "/internal/v1/chunks/"
	// PathSnapshotManifests (walrus): PUT {snap-id} commits a
	// SnapshotManifest whose chunks are all stored (a repeat of the same
	// manifest is a no-op), GET {snap-id} returns it, DELETE {snap-id}
	// drops it and every chunk no other manifest names.
	PathSnapshotManifests = "/internal/v1/snapshot-manifests/"
	// PathSnapshots (ebs): PUT {snap-id} starts a snapshot of a volume
	// (SnapshotRequest) and returns at once; GET {snap-id} reports its
	// SnapshotJob; DELETE {snap-id} forgets the job.
	PathSnapshots = "/internal/v1/snapshots/"
	// SnapshotChunkSize is the size of a snapshot chunk.
	SnapshotChunkSize = 1 << 20
)

// Snapshot states, as EC2 names them.
const (
	SnapshotPending   = "pending"
	SnapshotCompleted = "completed"
	SnapshotError     = "error"
)

// SnapshotManifest is a snapshot's content: the volume's size and, in
// ascending index order, every chunk that is not all zeros.
type SnapshotManifest struct {
	ID        string          `json:"id"`
	VolumeID  string          `json:"volume_id"`
	SizeGiB   int             `json:"size_gib"`
	ChunkSize int64           `json:"chunk_size"`
	Chunks    []SnapshotChunk `json:"chunks"`
}

// SnapshotChunk is chunk Index of a volume, by the SHA-256 (hex) of its
// bytes.
type SnapshotChunk struct {
	Index  int64  `json:"i"`
	SHA256 string `json:"h"`
}

// ChunkStats is what walrus's chunk store holds.
type ChunkStats struct {
	Chunks    int   `json:"chunks"`
	Bytes     int64 `json:"bytes"`
	Manifests int   `json:"manifests"`
}

// SnapshotRequest asks ebs for a snapshot of a volume.
type SnapshotRequest struct {
	VolumeID string `json:"volume_id"`
}

// SnapshotJob is a snapshot as ebs makes it.
type SnapshotJob struct {
	ID       string `json:"id"`
	VolumeID string `json:"volume_id"`
	SizeGiB  int    `json:"size_gib"`
	// State is SnapshotPending, SnapshotCompleted or SnapshotError;
	// Progress is a percentage; Error says why a snapshot failed.
	State    string    `json:"state"`
	Progress int       `json:"progress"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	// ChunksStored and BytesStored count what this snapshot added to
	// walrus (chunks other snapshots already hold are not stored again).
	ChunksStored int   `json:"chunks_stored"`
	BytesStored  int64 `json:"bytes_stored"`
}

// PutChunk stores a chunk in walrus under the SHA-256 of data.
func (c *Client) PutChunk(ctx context.Context, sum string, data []byte) error {
	res, err := c.raw(ctx, http.MethodPut, PathChunks+url.PathEscape(sum), data, sum)
	if err != nil {
		return err
	}
	return res.Body.Close()
}

// HasChunk tells whether walrus holds a chunk.
func (c *Client) HasChunk(ctx context.Context, sum string) (bool, error) {
	res, err := c.raw(ctx, http.MethodHead, PathChunks+url.PathEscape(sum), nil, "")
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, res.Body.Close()
}

// Chunk reads a chunk from walrus into buf (which must hold it) and
// returns its length.
func (c *Client) Chunk(ctx context.Context, sum string, buf []byte) (int, error) {
	res, err := c.raw(ctx, http.MethodGet, PathChunks+url.PathEscape(sum), nil, "")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	n, err := io.ReadFull(res.Body, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	} else if err == nil {
		if m, _ := res.Body.Read(make([]byte, 1)); m > 0 {
			err = fmt.Errorf("chunk %s: longer than %d bytes", sum, len(buf))
		}
	}
	return n, err
}

// ChunkStats reports what walrus's chunk store holds.
func (c *Client) ChunkStats(ctx context.Context) (ChunkStats, error) {
	var out ChunkStats
	err := c.get(ctx, PathChunks, &out)
	return out, err
}

// PutSnapshotManifest commits a snapshot's manifest in walrus.
func (c *Client) PutSnapshotManifest(ctx context.Context, m SnapshotManifest) error {
	return c.do(ctx, http.MethodPut, PathSnapshotManifests+url.PathEscape(m.ID), m, &struct{}{})
}

// SnapshotManifest reads a snapshot's manifest from walrus.
func (c *Client) SnapshotManifest(ctx context.Context, id string) (SnapshotManifest, error) {
	var out SnapshotManifest
	err := c.get(ctx, PathSnapshotManifests+url.PathEscape(id), &out)
	return out, err
}

// DeleteSnapshotManifest drops a snapshot from walrus (a snapshot it
// does not hold is not an error).
func (c *Client) DeleteSnapshotManifest(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathSnapshotManifests+url.PathEscape(id), nil, &struct{}{})
}

// CreateSnapshot asks ebs to snapshot a volume; the job runs on after
// the call returns.
func (c *Client) CreateSnapshot(ctx context.Context, id string, in SnapshotRequest) (SnapshotJob, error) {
	var out SnapshotJob
	err := c.do(ctx, http.MethodPut, PathSnapshots+url.PathEscape(id), in, &out)
	return out, err
}

// Snapshot reports a snapshot job of ebs.
func (c *Client) Snapshot(ctx context.Context, id string) (SnapshotJob, error) {
	var out SnapshotJob
	err := c.get(ctx, PathSnapshots+url.PathEscape(id), &out)
	return out, err
}

// ForgetSnapshot has ebs drop the record of a finished job (the
// snapshot itself is walrus's).
func (c *Client) ForgetSnapshot(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, PathSnapshots+url.PathEscape(id), nil, &struct{}{})
}

// raw makes one signed call with a binary body (whose SHA-256 is
// payloadHash when the caller knows it) and returns the answer when it is
// 200 (the caller closes its body), else a *CallError.
func (c *Client) raw(ctx context.Context, method, path string, body []byte, payloadHash string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if err := sigv4.Sign(req, c.AccessKeyID, c.Secret, c.region(), InternalService, payloadHash, time.Now()); err != nil {
		return nil, err
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("internal call %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		var e Error
		_ = json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&e)
		return nil, &CallError{Status: res.StatusCode, Code: e.Code, Message: e.Message}
	}
	return res, nil
}
