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
// it still arrives, so that the final fsync waits only for the tail: disk
// and network overlap instead of running one after the other. It does
// not wait for the writes it starts; the kernel's dirty-page limits pace
// a writer that outruns the disk. (Waiting for each previous chunk, to
// bound dirty data per file, measured slower here: it keeps the disk's
// queue shallow.)
type writeback struct {
	f       *os.File
	started int64 // bytes handed to writeback so far
}

// wrote is told that the file now holds n bytes.
func (w *writeback) wrote(n int64) error {
	if n-w.started < writebackChunk {
		return nil
	}
	if err := unix.SyncFileRange(int(w.f.Fd()), w.started, n-w.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return fmt.Errorf("start writeback: %w", err)
	}
	w.started = n
	return nil
}
