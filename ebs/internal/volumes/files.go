package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/koala-cloud/koala/pkg/durable"
)

const tmpSuffix = ".tmp"

// Files keeps each volume as a sparse file in a directory.
type Files struct{ dir string }

// NewFiles returns the file backend over dir (created if need be).
func NewFiles(dir string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("volumes dir: %w", err)
	}
	return &Files{dir: dir}, nil
}

// Path is the file of volume id.
func (b *Files) Path(id string) string { return filepath.Join(b.dir, id+".img") }

// Make writes the sparse file under a temporary name, sizes and syncs
// it, and renames it into place.
func (b *Files) Make(id string, size int64) error {
	tmp := b.Path(id) + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("volume file: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.Path(id))
	}
	if err == nil {
		err = durable.SyncDir(b.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume file: %w", err)
	}
	return nil
}

// Remove deletes a volume's file.
func (b *Files) Remove(id string) error {
	if err := os.Remove(b.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove its file: %w", err)
	}
	return nil
}

// Clean removes temporary files and the files of volumes keep does not
// name.
func (b *Files) Clean(keep map[string]bool) error {
	for id := range keep {
		if _, err := os.Stat(b.Path(id)); err != nil {
			return fmt.Errorf("volume %s: its file: %w", id, err)
		}
	}
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".img"); ok && keep[id] {
			continue
		}
		if err := os.Remove(filepath.Join(b.dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
