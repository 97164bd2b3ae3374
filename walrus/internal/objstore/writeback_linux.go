package objstore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much data a write may leave dirty before the
// kernel is asked to start writing it out.
const writebackChunk = 8 << 20

// writeback starts writing a large file's pages to disk while the rest of
// it still arrives, so that the final fsync waits only for the tail, and
// keeps at most two chunks of it dirty: disk and network then overlap
// instead of running one after the other.
type writeback struct {
	f       *os.File
	started int64 // bytes handed to writeback so far
	prev    int64 // start of the chunk before the last one handed over
}

// wrote is told that the file now holds n bytes.
func (w *writeback) wrote(n int64) error {
	if n-w.started < writebackChunk {
		return nil
	}
	fd := int(w.f.Fd())
	if err := unix.SyncFileRange(fd, w.started, n-w.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return fmt.Errorf("start writeback: %w", err)
	}
	if w.started > 0 {
		// Wait for the previous chunk, so dirty data stays bounded.
		err := unix.SyncFileRange(fd, w.prev, w.started-w.prev,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err != nil {
			return fmt.Errorf("wait for writeback: %w", err)
		}
	}
	w.prev, w.started = w.started, n
	return nil
}
