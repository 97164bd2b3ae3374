package disks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Maker makes an instance's disks.
type Maker interface {
	// Overlay makes path a copy-on-write disk over the raw image backing.
	Overlay(ctx context.Context, backing, path string) error
	// Blank makes path an empty disk of sizeGiB.
	Blank(ctx context.Context, path string, sizeGiB int) error
	// Format is the disk format the maker writes ("qcow2", "raw").
	Format() string
}

// QemuImg makes qcow2 disks with qemu-img.
type QemuImg struct {
	Binary string // "" means qemu-img on PATH
}

// Format is qcow2.
func (QemuImg) Format() string { return "qcow2" }

func (q QemuImg) run(ctx context.Context, path string, args ...string) error {
	bin := q.Binary
	if bin == "" {
		bin = "qemu-img"
	}
	tmp := tmpName(path)
	defer os.Remove(tmp)
	out, err := exec.CommandContext(ctx, bin, append(append([]string{"create", "-q", "-f", "qcow2"}, args...), tmp)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return commit(tmp, path)
}

// Overlay makes a qcow2 overlay on backing.
func (q QemuImg) Overlay(ctx context.Context, backing, path string) error {
	return q.run(ctx, path, "-b", backing, "-F", "raw")
}

// Blank makes an empty qcow2 disk.
func (q QemuImg) Blank(ctx context.Context, path string, sizeGiB int) error {
	bin := q.Binary
	if bin == "" {
		bin = "qemu-img"
	}
	tmp := tmpName(path)
	defer os.Remove(tmp)
	out, err := exec.CommandContext(ctx, bin, "create", "-q", "-f", "qcow2", tmp, strconv.Itoa(sizeGiB)+"G").CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return commit(tmp, path)
}

// Sparse makes raw sparse files: an overlay is an empty file the size of
// its backing image. It serves the fake hypervisor, which reads no disk.
type Sparse struct{}

// Format is raw.
func (Sparse) Format() string { return "raw" }

// Overlay makes an empty file as large as backing.
func (Sparse) Overlay(ctx context.Context, backing, path string) error {
	st, err := os.Stat(backing)
	if err != nil {
		return fmt.Errorf("overlay %s: %w", path, err)
	}
	return sparse(path, st.Size())
}

// Blank makes an empty file of sizeGiB.
func (Sparse) Blank(ctx context.Context, path string, sizeGiB int) error {
	return sparse(path, int64(sizeGiB)<<30)
}

func sparse(path string, size int64) error {
	tmp := tmpName(path)
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("disk %s: %w", path, err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("disk %s: %w", path, err)
	}
	return commit(tmp, path)
}

func tmpName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
}

// commit syncs tmp and renames it to path.
func commit(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("disk %s: %w", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("disk %s: %w", path, err)
	}
	return nil
}
