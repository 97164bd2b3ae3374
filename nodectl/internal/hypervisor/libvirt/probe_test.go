package libvirt

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testProber returns a prober whose /dev/kvm, boot id and qemu are files
// in a temporary directory; qemu is a shell script with the given body.
func testProber(t *testing.T, qemuScript string) (prober, string) {
	t.Helper()
	dir := t.TempDir()
	p := prober{
		log:        slog.New(slog.NewTextHandler(t.Output(), nil)),
		kvmDevice:  filepath.Join(dir, "kvm"),
		bootIDFile: filepath.Join(dir, "boot_id"),
		qemu:       filepath.Join(dir, "qemu"),
		timeout:    time.Second,
	}
	write(t, p.kvmDevice, "", 0o644)
	write(t, p.bootIDFile, "boot-1\n", 0o644)
	write(t, p.qemu, "#!/bin/sh\n"+qemuScript+"\n", 0o755)
	kernel := filepath.Join(dir, "vmlinuz")
	write(t, kernel, "not really a kernel", 0o644)
	return p, kernel
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

const (
	bootsToRootfs = `echo "Probing EDD (edd=off to disable)... ok"; echo "VFS: Cannot open root device"; sleep 30`
	panics        = `echo "Kernel panic - not syncing: VFS: Unable to mount root fs"; exec sleep 30`
	hangs         = `echo "Probing EDD (edd=off to disable)... ok"; sleep 30` // sleep outlives sh
	fails         = `echo "qemu-system-x86_64: failed to initialize kvm: Permission denied" >&2; exit 1`
)

func TestChoose(t *testing.T) {
	tests := []struct {
		name      string
		want      string // Config.DomainType
		qemu      string
		noKVM     bool
		noKernel  bool
		wantType  string
		wantCache bool
	}{
		{"configured kvm", TypeKVM, fails, true, true, TypeKVM, false},
		{"configured qemu", TypeQEMU, bootsToRootfs, false, false, TypeQEMU, false},
		{"no /dev/kvm", DomainTypeAuto, bootsToRootfs, true, false, TypeQEMU, false},
		{"no probe kernel", DomainTypeAuto, bootsToRootfs, false, true, TypeQEMU, false},
		{"boots to rootfs", DomainTypeAuto, bootsToRootfs, false, false, TypeKVM, true},
		{"panics for rootfs", DomainTypeAuto, panics, false, false, TypeKVM, true},
		{"hangs", DomainTypeAuto, hangs, false, false, TypeQEMU, true},
		{"qemu fails", DomainTypeAuto, fails, false, false, TypeQEMU, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, kernel := testProber(t, tt.qemu)
			if tt.noKVM {
				os.Remove(p.kvmDevice)
			}
			if tt.noKernel {
				kernel = ""
			}
			state := filepath.Join(t.TempDir(), "state")
			start := time.Now()
			got, err := p.choose(context.Background(), tt.want, kernel, state)
			if err != nil {
				t.Fatalf("choose: %v", err)
			}
			if got != tt.wantType {
				t.Errorf("choose = %s, want %s", got, tt.wantType)
			}
			if took := time.Since(start); took > p.timeout+3*time.Second {
				t.Errorf("choose took %s, beyond the probe's timeout of %s", took, p.timeout)
			}
			data, err := os.ReadFile(filepath.Join(state, cacheFile))
			if !tt.wantCache {
				if err == nil {
					t.Errorf("cache written: %s", data)
				}
				return
			}
			if err != nil {
				t.Fatalf("no cache: %v", err)
			}
			var c probeCache
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			if c.BootID != "boot-1" || c.DomainType != tt.wantType || c.ProbeKernel != kernel || c.Reason == "" {
				t.Errorf("cache = %+v", c)
			}
		})
	}
}

func TestChooseCache(t *testing.T) {
	p, kernel := testProber(t, bootsToRootfs)
	state := t.TempDir()
	ctx := context.Background()
	if got, err := p.choose(ctx, DomainTypeAuto, kernel, state); err != nil || got != TypeKVM {
		t.Fatalf("first choose = %s, %v; want kvm", got, err)
	}
	// The same boot: the cached outcome, without running qemu.
	write(t, p.qemu, "#!/bin/sh\n"+fails+"\n", 0o755)
	if got, err := p.choose(ctx, DomainTypeAuto, kernel, state); err != nil || got != TypeKVM {
		t.Fatalf("cached choose = %s, %v; want kvm", got, err)
	}
	// Another probe kernel: probed again.
	other := kernel + ".new"
	write(t, other, "another kernel", 0o644)
	if got, err := p.choose(ctx, DomainTypeAuto, other, state); err != nil || got != TypeQEMU {
		t.Fatalf("choose with another kernel = %s, %v; want qemu", got, err)
	}
	// A new boot: probed again.
	write(t, p.qemu, "#!/bin/sh\n"+bootsToRootfs+"\n", 0o755)
	write(t, p.bootIDFile, "boot-2\n", 0o644)
	if got, err := p.choose(ctx, DomainTypeAuto, other, state); err != nil || got != TypeKVM {
		t.Fatalf("choose after a reboot = %s, %v; want kvm", got, err)
	}
	// A corrupt cache is probed over.
	write(t, filepath.Join(state, cacheFile), "{", 0o644)
	write(t, p.qemu, "#!/bin/sh\n"+hangs+"\n", 0o755)
	if got, err := p.choose(ctx, DomainTypeAuto, other, state); err != nil || got != TypeQEMU {
		t.Fatalf("choose over a corrupt cache = %s, %v; want qemu", got, err)
	}
}

func TestChooseNoCache(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *prober, kernel *string)
	}{
		{"missing kernel", func(p *prober, kernel *string) { *kernel += ".missing" }},
		{"no qemu", func(p *prober, kernel *string) { p.qemu += ".missing" }},
		{"no boot id", func(p *prober, kernel *string) { p.bootIDFile += ".missing" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, kernel := testProber(t, fails)
			tt.change(&p, &kernel)
			state := t.TempDir()
			got, err := p.choose(context.Background(), DomainTypeAuto, kernel, state)
			if err != nil || got != TypeQEMU {
				t.Fatalf("choose = %s, %v; want qemu", got, err)
			}
			if _, err := os.Stat(filepath.Join(state, cacheFile)); err == nil {
				t.Errorf("an inconclusive probe was cached")
			}
		})
	}
}

func TestChooseCanceled(t *testing.T) {
	p, kernel := testProber(t, hangs)
	p.timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.choose(ctx, DomainTypeAuto, kernel, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("choose = %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("choose took %s after its context ended", took)
	}
}

func TestBootedToRootfs(t *testing.T) {
	tests := []struct {
		out  string
		want bool
	}{
		{"Probing EDD (edd=off to disable)... ok\r\n", false},
		{"[    1.2] VFS: Cannot open root device \"\" or unknown-block(0,0): error -6\n", true},
		{"[    1.3] Kernel panic - not syncing: VFS: Unable to mount root fs\n", true},
		{"", false},
	}
	for _, tt := range tests {
		if got := bootedToRootfs([]byte(tt.out)); got != tt.want {
			t.Errorf("bootedToRootfs(%q) = %v, want %v", tt.out, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Owner: "node-a"}, true},
		{"kvm", Config{Owner: "node-a", DomainType: "kvm"}, true},
		{"no owner", Config{}, false},
		{"bad type", Config{Owner: "node-a", DomainType: "xen"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate = %v", err)
			}
		})
	}
}

func TestLastLine(t *testing.T) {
	out := "SeaBIOS (version 1.16.2)\r\nBooting from ROM...\r\nProbing EDD (edd=off to disable)... ok\r\n\x1bc\x1b[?7l\x1b[2J"
	if got, want := lastLine([]byte(out)), "Probing EDD (edd=off to disable)... ok"; got != want {
		t.Errorf("lastLine = %q, want %q", got, want)
	}
}
