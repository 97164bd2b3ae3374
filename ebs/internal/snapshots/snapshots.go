// Package snapshots makes ebs's snapshots: it freezes a volume's device
// (the volume stays usable), reads the frozen view chunk by chunk, stores
// in walrus the chunks walrus does not hold yet (chunks are named by
// their SHA-256, so a second snapshot of a volume stores only what
// changed, and chunks of zeros are not stored at all), and commits the
// snapshot's manifest last. A job's record is written before it starts;
// one still pending when ebs opens was cut short by a crash and is
// marked failed, never completed from a view that no longer exists.
package snapshots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/koala-cloud/koala/ebs/internal/blockdev"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/store"
)

// Bucket holds the jobs' records.
const Bucket = "snapshots"

const cowDir = "cow"

// Errors callers test for.
var (
	ErrNotFound = errors.New("no such snapshot")
	ErrInvalid  = errors.New("invalid snapshot request")
	ErrMismatch = errors.New("snapshot exists with other parameters")
	// ErrBusy is a snapshot asked of a volume while one of it runs.
	ErrBusy = errors.New("a snapshot of the volume is in progress")
)

var idRE = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)

// Walrus is the chunk store snapshots go to.
type Walrus interface {
	HasChunk(ctx context.Context, sum string) (bool, error)
	PutChunk(ctx context.Context, sum string, data []byte) error
	PutSnapshotManifest(ctx context.Context, m api.SnapshotManifest) error
}

// Maker runs ebs's snapshot jobs.
type Maker struct {
	db     *store.DB
	dir    string
	walrus Walrus
	log    *slog.Logger

	ctx    context.Context // ends the jobs in flight on Close
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[string]*api.SnapshotJob // progress of the jobs in flight
	wg      sync.WaitGroup
}

// Open returns the maker over db, keeping copy-on-write files under
// dataDir, and fails the jobs a crash interrupted.
func Open(db *store.DB, dataDir string, walrus Walrus, log *slog.Logger) (*Maker, error) {
	m := &Maker{db: db, dir: filepath.Join(dataDir, cowDir), walrus: walrus, log: log, running: map[string]*api.SnapshotJob{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := os.RemoveAll(m.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, err
	}
	all, err := m.List()
	if err != nil {
		return nil, err
	}
	for _, j := range all {
		if j.State != api.SnapshotPending {
			continue
		}
		j.State, j.Error = api.SnapshotError, "ebs stopped while the snapshot was being made"
		if err := m.put(j); err != nil {
			return nil, err
		}
		log.Warn("snapshot interrupted: marked failed", "snapshot_id", j.ID, "volume_id", j.VolumeID)
	}
	return m, nil
}

func (m *Maker) put(j api.SnapshotJob) error {
	return m.db.Commit(func(tx *store.Tx) error { return tx.Put(Bucket, []byte(j.ID), j) })
}

// List returns every job as recorded.
func (m *Maker) List() ([]api.SnapshotJob, error) {
	var out []api.SnapshotJob
	err := m.db.View(func(tx *store.Tx) error {
		b, err := tx.Bucket(Bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(_, raw []byte) error {
			var j api.SnapshotJob
			if err := store.Decode(raw, &j); err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

// Get reports a job, with its progress when it runs.
func (m *Maker) Get(id string) (api.SnapshotJob, error) {
	m.mu.Lock()
	if j, ok := m.running[id]; ok {
		defer m.mu.Unlock()
		return *j, nil
	}
	m.mu.Unlock()
	var j api.SnapshotJob
	err := m.db.View(func(tx *store.Tx) error { return tx.Get(Bucket, []byte(id), &j) })
	if errors.Is(err, store.ErrNotFound) {
		return j, fmt.Errorf("%w: The snapshot '%s' does not exist.", ErrNotFound, id)
	}
	return j, err
}

// Delete forgets a finished job (its snapshot stays in walrus).
func (m *Maker) Delete(id string) error {
	j, err := m.Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if j.State == api.SnapshotPending {
		return fmt.Errorf("%w: %s is still being made", ErrBusy, id)
	}
	return m.db.Commit(func(tx *store.Tx) error { return tx.Delete(Bucket, []byte(id)) })
}

// Start freezes dev, volume volID of sizeGiB, and snapshots it as id in
// the background. A repeat of a started job returns it.
func (m *Maker) Start(id, volID string, sizeGiB int, dev *blockdev.Dev) (api.SnapshotJob, error) {
	if !idRE.MatchString(id) {
		return api.SnapshotJob{}, fmt.Errorf("%w: snapshot ID %q", ErrInvalid, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, err := m.getLocked(id); err == nil {
		if j.VolumeID != volID {
			return api.SnapshotJob{}, fmt.Errorf("%w: %s is of %s", ErrMismatch, id, j.VolumeID)
		}
		return j, nil
	}
	for _, j := range m.running {
		if j.VolumeID == volID {
			return api.SnapshotJob{}, fmt.Errorf("%w: %s of %s", ErrBusy, j.ID, volID)
		}
	}
	fr, err := dev.Freeze(filepath.Join(m.dir, id))
	if errors.Is(err, blockdev.ErrFrozen) {
		return api.SnapshotJob{}, fmt.Errorf("%w: %s", ErrBusy, volID)
	}
	if err != nil {
		return api.SnapshotJob{}, err
	}
	j := api.SnapshotJob{ID: id, VolumeID: volID, SizeGiB: sizeGiB, State: api.SnapshotPending, Started: time.Now().UTC()}
	if err := m.put(j); err != nil {
		fr.Close()
		return api.SnapshotJob{}, err
	}
	run := j
	m.running[id] = &run
	m.wg.Go(func() { m.run(m.ctx, id, fr, dev.Chunks(), dev.ChunkSize()) })
	m.log.Info("snapshot started", "snapshot_id", id, "volume_id", volID)
	return j, nil
}

func (m *Maker) getLocked(id string) (api.SnapshotJob, error) {
	if j, ok := m.running[id]; ok {
		return *j, nil
	}
	var j api.SnapshotJob
	err := m.db.View(func(tx *store.Tx) error { return tx.Get(Bucket, []byte(id), &j) })
	return j, err
}

// Running reports whether a snapshot of volume volID is being made.
func (m *Maker) Running(volID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.running {
		if j.VolumeID == volID {
			return true
		}
	}
	return false
}

// Close stops the jobs in flight (they end failed) and waits for them.
func (m *Maker) Close() {
	m.cancel()
	m.wg.Wait()
}

// run makes the snapshot of a frozen view and records how it ended.
func (m *Maker) run(ctx context.Context, id string, fr *blockdev.Frozen, chunks, chunkSize int64) {
	m.mu.Lock()
	j := *m.running[id]
	m.mu.Unlock()
	manifest, err := m.copy(ctx, fr, &j, chunks, chunkSize)
	if err == nil {
		err = m.walrus.PutSnapshotManifest(ctx, manifest)
	}
	if cerr := fr.Close(); cerr != nil {
		m.log.Warn("snapshot: remove copy-on-write file", "snapshot_id", j.ID, "err", cerr)
	}
	if err != nil {
		j.State, j.Error = api.SnapshotError, err.Error()
		m.log.Error("snapshot failed", "snapshot_id", j.ID, "volume_id", j.VolumeID, "err", err)
	} else {
		j.State, j.Progress = api.SnapshotCompleted, 100
		m.log.Info("snapshot completed", "snapshot_id", j.ID, "volume_id", j.VolumeID, "chunks", len(manifest.Chunks),
			"chunks_stored", j.ChunksStored, "bytes_stored", j.BytesStored)
	}
	if err := m.put(j); err != nil {
		m.log.Error("snapshot: record its end", "snapshot_id", j.ID, "err", err)
	}
	m.mu.Lock()
	delete(m.running, j.ID)
	m.mu.Unlock()
}

// workers is how many chunks a snapshot reads, hashes and stores at
// once: walrus syncs each new chunk, and the syncs overlap.
const workers = 4

// copy stores every chunk of the view walrus lacks and returns the
// manifest; j's progress follows.
func (m *Maker) copy(ctx context.Context, fr *blockdev.Frozen, j *api.SnapshotJob, chunks, chunkSize int64) (api.SnapshotManifest, error) {
	out := api.SnapshotManifest{ID: j.ID, VolumeID: j.VolumeID, SizeGiB: j.SizeGiB, ChunkSize: chunkSize, Chunks: []api.SnapshotChunk{}}
	sums := make([]string, chunks) // "" for a chunk of zeros
	zero := make([]byte, chunkSize)
	bufs := sync.Pool{New: func() any { return make([]byte, chunkSize) }}
	var done int64
	err := blockdev.EachChunk(ctx, chunks, workers, func(ctx context.Context, i int64) error {
		buf := bufs.Get().([]byte)
		defer bufs.Put(buf)
		n, err := fr.ReadChunk(ctx, i, buf)
		if err != nil {
			return fmt.Errorf("read chunk %d: %w", i, err)
		}
		stored := false
		if !bytes.Equal(buf[:n], zero[:n]) {
			sum := sha256.Sum256(buf[:n])
			sums[i] = hex.EncodeToString(sum[:])
			if stored, err = m.store(ctx, sums[i], buf[:n]); err != nil {
				return fmt.Errorf("chunk %d: %w", i, err)
			}
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if stored {
			j.ChunksStored++
			j.BytesStored += int64(n)
		}
		done++
		j.Progress = int(done * 99 / chunks)
		*m.running[j.ID] = *j
		return nil
	})
	if err != nil {
		return out, err
	}
	for i, h := range sums {
		if h != "" {
			out.Chunks = append(out.Chunks, api.SnapshotChunk{Index: int64(i), SHA256: h})
		}
	}
	return out, nil
}

// store puts a chunk in walrus unless it holds it; it reports whether it
// did.
func (m *Maker) store(ctx context.Context, sum string, data []byte) (bool, error) {
	has, err := m.walrus.HasChunk(ctx, sum)
	if err != nil || has {
		return false, err
	}
	return true, m.walrus.PutChunk(ctx, sum, data)
}
