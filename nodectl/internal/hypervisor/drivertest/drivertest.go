// Package drivertest is the conformance suite every hypervisor driver
// passes: the fake in its unit tests, libvirt against a real libvirtd.
package drivertest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
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
