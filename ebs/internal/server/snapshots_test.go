package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/ebs/internal/snapshots"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// memWalrus is walrus's chunk store in memory.
type memWalrus struct {
	mu        sync.Mutex
	chunks    map[string][]byte
	manifests map[string]api.SnapshotManifest
	puts      int
}

func newMemWalrus() *memWalrus {
	return &memWalrus{chunks: map[string][]byte{}, manifests: map[string]api.SnapshotManifest{}}
}

func (m *memWalrus) HasChunk(_ context.Context, sum string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.chunks[sum]
	return ok, nil
}

func (m *memWalrus) PutChunk(_ context.Context, sum string, data []byte) error {
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("bad digest")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.chunks[sum] = bytes.Clone(data)
	m.puts++
	return nil
}

func (m *memWalrus) PutSnapshotManifest(_ context.Context, man api.SnapshotManifest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range man.Chunks {
		if _, ok := m.chunks[c.SHA256]; !ok {
			return fmt.Errorf("chunk %s missing", c.SHA256)
		}
	}
	m.manifests[man.ID] = man
	return nil
}

func (m *memWalrus) SnapshotManifest(_ context.Context, id string) (api.SnapshotManifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	man, ok := m.manifests[id]
	if !ok {
		return man, &api.CallError{Status: 404, Code: "InvalidSnapshot.NotFound"}
	}
	return man, nil
}

func (m *memWalrus) Chunk(_ context.Context, sum string, buf []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.chunks[sum]
	if !ok {
		return 0, &api.CallError{Status: 404}
	}
	return copy(buf, data), nil
}

func (e *env) waitSnapshot(id string) api.SnapshotJob {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := e.client.Snapshot(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if j.State != api.SnapshotPending || time.Now().After(deadline) {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSnapshotsAndVolumesFromThem(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, err := e.client.CreateVolume(ctx, "vol-0000000a", api.VolumeRequest{SizeGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.client.AllowVolume(ctx, v.ID, nodeMAC.String())
	in, err := e.dial(nodeMAC, v.Shelf, v.Slot, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 3*api.SnapshotChunkSize)
	rand.Read(first)
	if _, err := in.WriteAt(first, 10*api.SnapshotChunkSize); err != nil {
		t.Fatal(err)
	}
	in.Flush(ctx)

	j, err := e.client.CreateSnapshot(ctx, "snap-0000000a", api.SnapshotRequest{VolumeID: v.ID})
	if err != nil || j.State != api.SnapshotPending {
		t.Fatalf("create snapshot: %+v %v", j, err)
	}
	// The volume stays writable; what is written now is not in the snapshot.
	later := bytes.Repeat([]byte{7}, api.SnapshotChunkSize)
	if _, err := in.WriteAt(later, 11*api.SnapshotChunkSize); err != nil {
		t.Fatal(err)
	}
	if j = e.waitSnapshot("snap-0000000a"); j.State != api.SnapshotCompleted || j.Progress != 100 || j.ChunksStored != 3 {
		t.Fatalf("first snapshot: %+v", j)
	}

	// The second snapshot stores only the chunk that changed.
	if _, err := e.client.CreateSnapshot(ctx, "snap-0000000b", api.SnapshotRequest{VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	if j = e.waitSnapshot("snap-0000000b"); j.State != api.SnapshotCompleted || j.ChunksStored != 1 {
		t.Fatalf("second snapshot: %+v", j)
	}

	// A volume from the first snapshot reads its content at once.
	w, err := e.client.CreateVolume(ctx, "vol-0000000b", api.VolumeRequest{SizeGiB: 2, SnapshotID: "snap-0000000a"})
	if err != nil || w.SnapshotID != "snap-0000000a" {
		t.Fatalf("volume from snapshot: %+v %v", w, err)
	}
	if _, err := e.client.CreateSnapshot(ctx, "snap-0000000a", api.SnapshotRequest{VolumeID: w.ID}); code(err) != "IdempotentParameterMismatch" {
		t.Errorf("same snapshot ID, other volume: %v", err)
	}
	e.client.AllowVolume(ctx, w.ID, nodeMAC.String())
	in2, err := e.dial(nodeMAC, w.Shelf, w.Slot, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(first))
	if _, err := in2.ReadAt(got, 10*api.SnapshotChunkSize); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("volume from snapshot reads other data (%v)", err)
	}
	if in2.Size() != 2<<30 {
		t.Errorf("volume from snapshot has %d bytes", in2.Size())
	}
	deadline := time.Now().Add(30 * time.Second)
	for w, _ = e.client.GetVolume(ctx, w.ID); !w.Filled && time.Now().Before(deadline); w, _ = e.client.GetVolume(ctx, w.ID) {
		time.Sleep(20 * time.Millisecond)
	}
	if !w.Filled {
		t.Fatal("the volume from the snapshot never filled")
	}

	for _, bad := range []struct {
		req  api.VolumeRequest
		code string
	}{
		{api.VolumeRequest{SizeGiB: 1, SnapshotID: "snap-000000ff"}, "InvalidSnapshot.NotFound"},
		{api.VolumeRequest{SizeGiB: 0, SnapshotID: "snap-0000000a"}, "InvalidParameterValue"},
	} {
		if _, err := e.client.CreateVolume(ctx, "vol-0000000c", bad.req); code(err) != bad.code {
			t.Errorf("%+v: %v, want %s", bad.req, err, bad.code)
		}
	}
}

func TestSnapshotCutShortByARestartFails(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v, _ := e.client.CreateVolume(ctx, "vol-0000000a", api.VolumeRequest{SizeGiB: 1})
	e.client.AllowVolume(ctx, v.ID, nodeMAC.String())
	in, _ := e.dial(nodeMAC, v.Shelf, v.Slot, 5*time.Second)
	data := make([]byte, api.SnapshotChunkSize)
	rand.Read(data)
	in.WriteAt(data, 0)
	in.Flush(ctx)

	// A job recorded pending and never finished, as after kill -9.
	e.srv.Close()
	e.start()
	if _, err := e.client.CreateSnapshot(ctx, "snap-0000000a", api.SnapshotRequest{VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	e.waitSnapshot("snap-0000000a")
	pending := api.SnapshotJob{ID: "snap-0000000b", VolumeID: v.ID, SizeGiB: 1, State: api.SnapshotPending, Progress: 40}
	if err := e.srv.db.Commit(func(tx *store.Tx) error { return tx.Put(snapshots.Bucket, []byte(pending.ID), pending) }); err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
	e.start()
	j, err := e.client.Snapshot(ctx, "snap-0000000b")
	if err != nil || j.State != api.SnapshotError || j.Error == "" {
		t.Fatalf("interrupted snapshot after restart: %+v %v", j, err)
	}
	if j, _ := e.client.Snapshot(ctx, "snap-0000000a"); j.State != api.SnapshotCompleted {
		t.Fatalf("finished snapshot after restart: %+v", j)
	}
}
