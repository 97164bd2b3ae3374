package volumes

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// lvPrefix marks the logical volumes ebs owns in its volume group.
const lvPrefix = "koala-"

// Runner runs an lvm(8) command ("lvcreate", "lvs", ...) and returns
// its standard output.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// LVM keeps each volume as a thin logical volume in a thin pool, so
// that volumes are sparse and a new one reads zeros: the pool must zero
// the blocks it hands out (lvm's default, -Z y), or a volume would show
// what an earlier one held. Its logical volumes are named koala-<id>;
// others in the group are left alone.
type LVM struct {
	VG, Pool string
	// Dev is the directory of the group's device links (/dev when "").
	Dev string
	Run Runner
	// Timeout bounds one command (2m when 0).
	Timeout time.Duration
}

// RunLVM is the Runner of the host's lvm(8).
func RunLVM(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "lvm", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("lvm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Check verifies that the thin pool exists and zeroes new blocks.
func (b *LVM) Check() error {
	out, err := b.run("lvs", "--noheadings", "-o", "lv_attr,zero", b.VG+"/"+b.Pool)
	if err != nil {
		return fmt.Errorf("thin pool %s/%s: %w", b.VG, b.Pool, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 1 || !strings.HasPrefix(f[0], "t") {
		return fmt.Errorf("%s/%s is not a thin pool (attributes %q)", b.VG, b.Pool, strings.TrimSpace(string(out)))
	}
	if len(f) < 2 || f[1] != "zero" {
		return fmt.Errorf("thin pool %s/%s does not zero new blocks: a volume could show what another held (lvchange -Z y %s/%s)",
			b.VG, b.Pool, b.VG, b.Pool)
	}
	return nil
}

func (b *LVM) run(args ...string) ([]byte, error) {
	t := b.Timeout
	if t == 0 {
		t = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	return b.Run(ctx, args...)
}

func (b *LVM) lv(id string) string { return lvPrefix + id }

// Path is the device of volume id.
func (b *LVM) Path(id string) string {
	dev := b.Dev
	if dev == "" {
		dev = "/dev"
	}
	return filepath.Join(dev, b.VG, b.lv(id))
}

// Make creates a thin logical volume of size bytes, replacing one a
// crash left.
func (b *LVM) Make(id string, size int64) error {
	if err := b.Remove(id); err != nil {
		return err
	}
	_, err := b.run("lvcreate", "--yes", "--type", "thin", "--thinpool", b.Pool, "--virtualsize", fmt.Sprintf("%db", size),
		"--name", b.lv(id), b.VG)
	return err
}

// Remove deletes a volume's logical volume.
func (b *LVM) Remove(id string) error {
	have, err := b.list()
	if err != nil || !have[id] {
		return err
	}
	_, err = b.run("lvremove", "--yes", b.VG+"/"+b.lv(id))
	return err
}

// list returns the volumes whose logical volumes the group holds.
func (b *LVM) list() (map[string]bool, error) {
	out, err := b.run("lvs", "--noheadings", "-o", "lv_name", b.VG)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, name := range strings.Fields(string(out)) {
		if id, ok := strings.CutPrefix(name, lvPrefix); ok {
			have[id] = true
		}
	}
	return have, nil
}

// Clean removes the logical volumes of volumes keep does not name.
func (b *LVM) Clean(keep map[string]bool) error {
	have, err := b.list()
	if err != nil {
		return err
	}
	var errs []error
	for id := range keep {
		if !have[id] {
			errs = append(errs, fmt.Errorf("volume %s: no logical volume %s/%s", id, b.VG, b.lv(id)))
		}
	}
	for id := range have {
		if !keep[id] {
			if _, err := b.run("lvremove", "--yes", b.VG+"/"+b.lv(id)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
