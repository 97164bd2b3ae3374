package objstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/koala-cloud/koala/pkg/durable"
)

// files manages the data files under a store's directory: tmp/<id> while
// uncommitted, data/<xx>/<id> after. See the package comment.
type files struct {
	root string
	log  *slog.Logger

	// gate orders readers against releases: a reader holds it shared while
	// it looks up an object and pins its files; a release takes it
	// exclusively once, after its commit, so that every reader that could
	// have seen the old record has pinned it by then.
	gate sync.RWMutex

	// unsynced is set when tmp/ gained an entry since its last fsync.
	unsynced atomic.Bool

	mu     sync.Mutex
	pins   map[string]int
	doomed map[string]bool // released while pinned
	freed  []string        // unlinked; their gc entries may go
}

func newFiles(root string, log *slog.Logger) (*files, error) {
	f := &files{root: root, log: log, pins: map[string]int{}, doomed: map[string]bool{}}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("create tmp dir: %w", err)
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(root, "data", fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	return f, nil
}

// newID returns a random file id: 32 hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (f *files) tmpPath(id string) string  { return filepath.Join(f.root, "tmp", id) }
func (f *files) dataPath(id string) string { return filepath.Join(f.root, "data", id[:2], id) }

// create makes a new uncommitted file.
func (f *files) create() (string, *os.File, error) {
	id := newID()
	fh, err := os.OpenFile(f.tmpPath(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("create data file: %w", err)
	}
	f.unsynced.Store(true)
	return id, fh, nil
}

// link makes a new uncommitted file that shares the data of file src.
func (f *files) link(src string) (string, error) {
	id := newID()
	for range 3 {
		err := os.Link(f.dataPath(src), f.tmpPath(id))
		if !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return "", fmt.Errorf("link data file: %w", err)
			}
			f.unsynced.Store(true)
			return id, nil
		}
		if err = os.Link(f.tmpPath(src), f.tmpPath(id)); err == nil {
			f.unsynced.Store(true)
			return id, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("link data file: %w", err)
		}
	}
	return "", fmt.Errorf("link data file %s: %w", src, fs.ErrNotExist)
}

// syncTmp makes the entries of tmp/ durable (new files and hard links),
// if it gained any since the last call: a commit of records that name no
// new file (small objects, deletes) costs no fsync of the directory.
func (f *files) syncTmp() error {
	if !f.unsynced.Swap(false) {
		return nil
	}
	if err := durable.SyncDir(filepath.Join(f.root, "tmp")); err != nil {
		f.unsynced.Store(true)
		return err
	}
	return nil
}

// discard removes an uncommitted file.
func (f *files) discard(id string) {
	if err := os.Remove(f.tmpPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.log.Warn("remove uncommitted file", "file_id", id, "err", err)
	}
}

// discardAll removes uncommitted files.
func (f *files) discardAll(ids []string) {
	for _, id := range ids {
		f.discard(id)
	}
}

// open opens a committed file for reading, wherever it is in its move from
// tmp to data.
func (f *files) open(id string) (*os.File, error) {
	for range 3 {
		fh, err := os.Open(f.dataPath(id))
		if !errors.Is(err, fs.ErrNotExist) {
			return fh, err
		}
		fh, err = os.Open(f.tmpPath(id))
		if !errors.Is(err, fs.ErrNotExist) {
			return fh, err
		}
	}
	return nil, fmt.Errorf("open data file %s: %w", id, fs.ErrNotExist)
}

// publish moves committed files from tmp to data.
func (f *files) publish(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if err := os.Rename(f.tmpPath(id), f.dataPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Recovery finishes the move at the next start.
			f.log.Warn("publish data file", "file_id", id, "err", err)
		}
	}
}

// pin keeps ids' files from being unlinked until unpin.
func (f *files) pin(ids []string) {
	f.mu.Lock()
	for _, id := range ids {
		f.pins[id]++
	}
	f.mu.Unlock()
}

func (f *files) unpin(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.pins[id]--
		if f.pins[id] > 0 {
			continue
		}
		delete(f.pins, id)
		if f.doomed[id] {
			delete(f.doomed, id)
			f.unlinkLocked(id)
		}
	}
}

// release unlinks files a commit stopped referencing (and queued in gc),
// or dooms them until their last reader unpins.
func (f *files) release(ids []string) {
	if len(ids) == 0 {
		return
	}
	f.gate.Lock()
	//lint:ignore SA2001 an empty critical section is the point: wait out readers that may have seen the old record.
	f.gate.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.pins[id] > 0 {
			f.doomed[id] = true
			continue
		}
		f.unlinkLocked(id)
	}
}

func (f *files) unlinkLocked(id string) {
	for _, p := range []string{f.dataPath(id), f.tmpPath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			f.log.Warn("unlink data file", "file_id", id, "err", err)
			return
		}
	}
	f.freed = append(f.freed, id)
}

// takeFreed returns the ids unlinked since the last call.
func (f *files) takeFreed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := f.freed
	f.freed = nil
	return ids
}
