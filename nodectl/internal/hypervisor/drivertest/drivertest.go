// Package drivertest is the conformance suite every hypervisor driver
// passes: the fake in its unit tests, libvirt against a real libvirtd.
package drivertest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/pkg/nbd"
)

// Harness is what the suite needs from a driver's test.
type Harness struct {
	// New returns a driver for an owner. Two owners share one hypervisor.
	New func(t *testing.T, owner string) hypervisor.Driver
	// Domain returns a bootable domain called name whose console goes to
	// a fresh file.
	Domain func(t *testing.T, name string) hypervisor.Domain
	// BootLine is a line the guest writes to its console once up; empty
	// skips the console check.
	BootLine string
	// SocketDir is a directory the hypervisor can reach unix sockets in,
	// for the hot-plug test.
	SocketDir string
	// RealGuest is a guest that reads a hot-plugged disk (its kernel
	// probes it).
	RealGuest bool
}

// diskAttacher is a driver that hot-plugs network disks.
type diskAttacher interface {
	AttachDisk(ctx context.Context, name string, d hypervisor.NetDisk) error
	DetachDisk(ctx context.Context, name, target string) error
	DiskTargets(ctx context.Context, name string) ([]string, error)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	a, b := h.New(t, "node-a"), h.New(t, "node-b")
	name := "i-" + randomHex(t)
	d := h.Domain(t, name)
	t.Cleanup(func() { _ = a.Destroy(context.Background(), name) })

	mustState := func(t *testing.T, want hypervisor.State) {
		t.Helper()
		info, err := a.Inspect(ctx, name)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if info.State != want || info.Owner != "node-a" || info.Name != name {
			t.Fatalf("Inspect = %+v, want %s owned by node-a", info, want)
		}
	}

	t.Run("define", func(t *testing.T) {
		if err := a.Define(ctx, d); err != nil {
			t.Fatalf("Define: %v", err)
		}
		if err := a.Define(ctx, d); err != nil {
			t.Fatalf("Define again: %v", err)
		}
		mustState(t, hypervisor.Shutoff)
	})
	t.Run("owners are apart", func(t *testing.T) {
		if _, err := b.Inspect(ctx, name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("another owner's Inspect = %v, want ErrNotFound", err)
		}
		list, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list {
			if info.Name == name {
				t.Errorf("another owner lists %s", name)
			}
		}
		if err := b.Destroy(ctx, name); err != nil {
			t.Errorf("another owner's Destroy = %v, want a no-op", err)
		}
		mustState(t, hypervisor.Shutoff)
	})
	t.Run("start", func(t *testing.T) {
		if err := a.Start(ctx, name); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := a.Start(ctx, name); err != nil {
			t.Fatalf("Start again: %v", err)
		}
		mustState(t, hypervisor.Running)
		if err := a.Define(ctx, d); !errors.Is(err, hypervisor.ErrRunning) {
			t.Errorf("Define while running = %v, want ErrRunning", err)
		}
		list, err := a.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, info := range list {
			found = found || (info.Name == name && info.State == hypervisor.Running)
		}
		if !found {
			t.Errorf("List = %+v, want %s running", list, name)
		}
	})
	if h.BootLine != "" {
		t.Run("console", func(t *testing.T) {
			waitConsole(t, d.ConsolePath, h.BootLine)
		})
	}
	if da, ok := a.(diskAttacher); ok {
		t.Run("hot-plug a network disk", func(t *testing.T) {
			hotPlug(t, h, da, name)
		})
	}
	t.Run("reboot", func(t *testing.T) {
		if err := a.Reboot(ctx, name); err != nil {
			t.Fatalf("Reboot: %v", err)
		}
		mustState(t, hypervisor.Running)
	})
	t.Run("stop and start", func(t *testing.T) {
		if err := a.Stop(ctx, name, 0); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		mustState(t, hypervisor.Shutoff)
		if err := a.Stop(ctx, name, 0); err != nil {
			t.Fatalf("Stop again: %v", err)
		}
		if err := a.Start(ctx, name); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		mustState(t, hypervisor.Running)
	})
	t.Run("destroy", func(t *testing.T) {
		if err := a.Destroy(ctx, name); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if _, err := a.Inspect(ctx, name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Inspect after Destroy = %v, want ErrNotFound", err)
		}
		if err := a.Destroy(ctx, name); err != nil {
			t.Errorf("Destroy again = %v, want nil", err)
		}
		if err := a.Start(ctx, name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Start after Destroy = %v, want ErrNotFound", err)
		}
	})
}

// readCounter is a file that counts reads.
type readCounter struct {
	*os.File
	reads atomic.Int64
}

func (r *readCounter) ReadAt(p []byte, off int64) (int, error) {
	r.reads.Add(1)
	return r.File.ReadAt(p, off)
}

// hotPlug serves a 16 MiB export over NBD, attaches it to the running
// domain as vdb (twice: the second is a no-op), sees the guest read it
// when the guest is real, and detaches it (twice).
func hotPlug(t *testing.T, h Harness, da diskAttacher, name string) {
	ctx := context.Background()
	dir := h.SocketDir
	if dir == "" {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "disk-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.Truncate(16 << 20)
	dev := &readCounter{File: f}
	srv := nbd.NewServer(nil)
	srv.Add(nbd.Export{Name: "vol-test", Dev: dev, Size: 16 << 20, BlockSize: 512})
	sock := filepath.Join(dir, "nbd-"+randomHex(t)+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o777)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	defer func() { cancel(); <-done }()

	disk := hypervisor.NetDisk{Socket: sock, Export: "vol-test", Target: "vdb", Serial: "vol-test"}
	for i := range 2 {
		if err := da.AttachDisk(ctx, name, disk); err != nil {
			t.Fatalf("AttachDisk %d: %v", i, err)
		}
	}
	targets, err := da.DiskTargets(ctx, name)
	if err != nil || !slices.Contains(targets, "vdb") {
		t.Fatalf("DiskTargets after attach = %v, %v", targets, err)
	}
	if h.RealGuest {
		deadline := time.Now().Add(30 * time.Second)
		for dev.reads.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if dev.reads.Load() == 0 {
			t.Error("the guest never read the hot-plugged disk")
		}
	}
	for i := range 2 {
		if err := da.DetachDisk(ctx, name, "vdb"); err != nil {
			t.Fatalf("DetachDisk %d: %v", i, err)
		}
	}
	if targets, err := da.DiskTargets(ctx, name); err != nil || slices.Contains(targets, "vdb") {
		t.Errorf("DiskTargets after detach = %v, %v", targets, err)
	}
}

// waitConsole waits, within the test's deadline, for line in the console
// file.
func waitConsole(t *testing.T, path, line string) {
	t.Helper()
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), line) {
			return
		}
		if dl, ok := t.Deadline(); ok && time.Until(dl) < 5*time.Second {
			t.Fatalf("console %s never showed %q; it holds:\n%s", path, line, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 9)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(b); err != nil {
		t.Fatal(err)
	}
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 0, 17)
	for _, c := range b {
		out = append(out, hexdigits[c>>4], hexdigits[c&15])
	}
	return string(out[:17])
}
