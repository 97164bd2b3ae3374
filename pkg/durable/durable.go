// Package durable holds the file-system steps that make a write survive
// a crash or power cut.
package durable

import (
	"fmt"
	"os"
)

// SyncDir makes the entries of directory dir durable: files created,
// renamed or linked into it. An fsync of a file does not persist its
// name on every filesystem (ext4 without a journal, for one).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
