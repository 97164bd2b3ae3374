package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/koala-cloud/koala/pkg/sched"
)

// reservedMiB is the memory left to the host and its daemons.
const reservedMiB = 512

// capacity fills the zero fields of want with what the host has: its
// CPUs, its memory less reservedMiB, and the free disk of dir.
func capacity(want sched.Resources, dir, meminfo string) (sched.Resources, error) {
	c := want
	if c.Cores == 0 {
		c.Cores = runtime.NumCPU()
	}
	if c.MemoryMiB == 0 {
		total, err := memTotalMiB(meminfo)
		if err != nil {
			return c, fmt.Errorf("capacity.memory_mib: %w; set it in the configuration", err)
		}
		if total <= reservedMiB {
			return c, fmt.Errorf("capacity.memory_mib: the host has %d MiB, no more than the %d MiB kept for it", total, reservedMiB)
		}
		c.MemoryMiB = total - reservedMiB
	}
	if c.DiskGiB == 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return c, fmt.Errorf("capacity.disk_gib: statfs %s: %w", dir, err)
		}
		c.DiskGiB = int(uint64(st.Bavail) * uint64(st.Bsize) >> 30)
	}
	return c, nil
}

// memTotalMiB reads MemTotal from a /proc/meminfo file.
func memTotalMiB(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kib, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemTotal %q: %w", path, f[1], err)
			}
			return int(kib >> 10), nil
		}
	}
	return 0, fmt.Errorf("%s has no MemTotal", path)
}

// ensureBridge creates the bridge name, up, unless the host has an
// interface of that name already, which it leaves as it is.
func ensureBridge(ctx context.Context, name string, log *slog.Logger) error {
	if _, err := net.InterfaceByName(name); err == nil {
		return nil
	}
	for _, args := range [][]string{
		{"link", "add", name, "type", "bridge"},
		{"link", "set", name, "up"},
	} {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("bridge %s: ip %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	log.Info("created bridge", "bridge", name)
	return nil
}
