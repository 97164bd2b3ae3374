package disks

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSparse(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var m Maker = Sparse{}
	if err := m.Overlay(ctx, base, filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	if err := m.Blank(ctx, filepath.Join(dir, "eph"), 2); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"root": 4096, "eph": 2 << 30} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() != want {
			t.Errorf("%s: size %v (%v), want %d", name, st.Size(), err, want)
		}
	}
}

func TestQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-img is missing under CI")
		}
		t.Skip("qemu-img is not installed")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := QemuImg{}
	root, eph := filepath.Join(dir, "root.qcow2"), filepath.Join(dir, "eph.qcow2")
	if err := m.Overlay(ctx, base, root); err != nil {
		t.Fatal(err)
	}
	if err := m.Blank(ctx, eph, 1); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "info", "-U", root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backing file: "+base) || !strings.Contains(string(out), "virtual size: 1 MiB") {
		t.Errorf("overlay info (%v):\n%s", err, out)
	}
	out, err = exec.Command("qemu-img", "info", "-U", eph).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "virtual size: 1 GiB") {
		t.Errorf("blank info (%v):\n%s", err, out)
	}
	if err := m.Overlay(ctx, filepath.Join(dir, "missing"), filepath.Join(dir, "bad.qcow2")); err == nil {
		t.Error("an overlay on a missing image succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.qcow2")); !os.IsNotExist(err) {
		t.Error("a failed overlay left a file")
	}
}
