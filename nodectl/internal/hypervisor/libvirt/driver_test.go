package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/drivertest"
)

// The conformance test needs libvirtd at qemu:///system and the demo
// image set (scripts/mkimage.sh). Without them it skips, but under
// CI=true it fails: CI must run it.

// unavailable skips the test, or fails it under CI=true.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: not skipping)", args...)
	}
	t.Skipf(format, args...)
}

// fixture is a directory that qemu, running as libvirt-qemu, can reach,
// with a copy of the demo image set.
type fixture struct {
	t       *testing.T // the test the drivers live for
	dir     string
	kernel  string
	initrd  string
	rootImg string // raw, the base of each domain's qcow2 overlay
	state   string // Config.StateDir
	log     *slog.Logger

	mu      sync.Mutex
	drivers map[string]*Driver
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	demo := demoImages(t)
	// Not t.TempDir: its parents may be private, and qemu runs as
	// libvirt-qemu (dynamic_ownership relabels the files, not their
	// directories).
	dir, err := os.MkdirTemp("/var/tmp", "koala-libvirt-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t:       t,
		dir:     dir,
		kernel:  filepath.Join(dir, "vmlinuz"),
		initrd:  filepath.Join(dir, "initrd.img"),
		rootImg: filepath.Join(dir, "root.img"),
		state:   filepath.Join(dir, "state"),
		log:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		drivers: map[string]*Driver{},
	}
	for _, name := range []string{"vmlinuz", "initrd.img", "root.img"} {
		copyFile(t, filepath.Join(demo, name), filepath.Join(dir, name))
	}
	return f
}

// demoImages returns the directory of the demo image set, building it
// under CI=true if it is missing.
func demoImages(t *testing.T) string {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(repo, "var", "images", "demo")
	complete := func() bool {
		for _, name := range []string{"vmlinuz", "initrd.img", "root.img"} {
			if fi, err := os.Stat(filepath.Join(demo, name)); err != nil || fi.Size() == 0 {
				return false
			}
		}
		return true
	}
	if complete() {
		return demo
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("no demo images in %s (run scripts/mkimage.sh)", demo)
	}
	cmd := exec.Command(filepath.Join(repo, "scripts", "mkimage.sh"))
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/mkimage.sh: %v\n%s", err, out)
	}
	if !complete() {
		t.Fatalf("scripts/mkimage.sh left no image set in %s", demo)
	}
	return demo
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// driver returns the fixture's driver for owner, made on first use with
// the auto domain type: one probe, cached in the fixture's StateDir for
// the others.
func (f *fixture) driver(t *testing.T, owner string) *Driver {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.drivers[owner]; d != nil {
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := New(ctx, Config{Owner: owner, ProbeKernel: f.kernel, StateDir: f.state}, f.log.With("test_owner", owner))
	if err != nil {
		unavailable(t, "libvirt: %v", err)
	}
	f.t.Cleanup(func() {
		if err := d.Close(); err != nil {
			f.t.Errorf("Close: %v", err)
		}
	})
	f.drivers[owner] = d
	return d
}

// domain returns a bootable domain called name: the demo kernel and
// ramdisk, a fresh qcow2 overlay of the demo root image, and its console
// in a fresh file. The domain is undefined when the test ends.
func (f *fixture) domain(t *testing.T, name string) hypervisor.Domain {
	t.Helper()
	// A backstop for a driver that fails to destroy it.
	f.t.Cleanup(func() { undefine(f.t, name) })
	overlay := filepath.Join(f.dir, name+".qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", f.rootImg, overlay).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	return hypervisor.Domain{
		Name:        name,
		Cores:       1,
		MemoryMiB:   256,
		Kernel:      f.kernel,
		Ramdisk:     f.initrd,
		Cmdline:     "console=ttyS0 root=/dev/vda",
		Disks:       []hypervisor.Disk{{Path: overlay, Format: "qcow2", Target: "vda"}},
		ConsolePath: filepath.Join(f.dir, name+".console.log"),
		Serial:      name,
		Metadata: hypervisor.Metadata{
			InstanceID: name,
			AccountID:  "000000000000",
			ImageID:    "emi-demo",
			Type:       "t1.test",
		},
	}
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("boots guests under libvirt; not in -short")
	}
	f := newFixture(t)
	a := f.driver(t, "node-a")
	if typ := a.Describe(); typ != TypeKVM && typ != TypeQEMU {
		t.Fatalf("Describe = %q, want kvm or qemu", typ)
	}
	t.Logf("domain type: %s", a.Describe())

	var domains []hypervisor.Domain
	drivertest.Run(t, drivertest.Harness{
		New: func(t *testing.T, owner string) hypervisor.Driver { return f.driver(t, owner) },
		Domain: func(t *testing.T, name string) hypervisor.Domain {
			d := f.domain(t, name)
			domains = append(domains, d)
			return d
		},
		BootLine:  "koala-demo: instance",
		SocketDir: f.dir,
		RealGuest: true,
	})
	if t.Failed() {
		return
	}
	// The guest read its instance ID from the SMBIOS serial.
	for _, d := range domains {
		data, err := os.ReadFile(d.ConsolePath)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("koala-demo: instance %s is up", d.Serial); !strings.Contains(string(data), want) {
			t.Errorf("console of %s lacks %q", d.Name, want)
		}
	}

	// One more domain, for what the suite does not cover.
	ctx := context.Background()
	b := f.driver(t, "node-b")
	d := f.domain(t, "i-"+randomName(t))
	if err := a.Define(ctx, d); err != nil {
		t.Fatalf("Define: %v", err)
	}
	up := "koala-demo: instance " + d.Serial + " is up"

	t.Run("define refuses another owner's name", func(t *testing.T) {
		err := b.Define(ctx, d)
		if err == nil || errors.Is(err, hypervisor.ErrRunning) || !strings.Contains(err.Error(), "node-a") {
			t.Errorf("node-b's Define of node-a's domain = %v, want a refusal naming node-a", err)
		}
		if info, err := a.Inspect(ctx, d.Name); err != nil || info.Owner != "node-a" {
			t.Errorf("after node-b's Define, Inspect = %+v, %v", info, err)
		}
	})

	t.Run("reboot restarts the guest", func(t *testing.T) {
		if err := a.Start(ctx, d.Name); err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitFor(t, d.ConsolePath, up, 1, 2*time.Minute)
		if err := a.Reboot(ctx, d.Name); err != nil {
			t.Fatalf("Reboot: %v", err)
		}
		waitFor(t, d.ConsolePath, up, 2, 2*time.Minute)
	})

	// Where the kernel's aoe driver is loaded, a volume is its block
	// device /dev/etherd/eS.L; a loop device stands in for one here.
	t.Run("hot-plugs a host block device", func(t *testing.T) {
		img := filepath.Join(f.dir, "blockdev.img")
		if err := os.WriteFile(img, make([]byte, 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
		if err != nil {
			unavailable(t, "losetup: %v: %s", err, out)
		}
		loop := strings.TrimSpace(string(out))
		defer exec.Command("losetup", "-d", loop).Run()
		disk := hypervisor.NetDisk{Device: loop, Target: "vdc", Serial: "vol0123456789abcdef0"}
		if err := a.AttachDisk(ctx, d.Name, disk); err != nil {
			t.Fatalf("AttachDisk: %v", err)
		}
		if targets, err := a.DiskTargets(ctx, d.Name); err != nil || !slices.Contains(targets, "vdc") {
			t.Fatalf("DiskTargets after attach = %v, %v", targets, err)
		}
		if err := a.DetachDisk(ctx, d.Name, "vdc"); err != nil {
			t.Fatalf("DetachDisk: %v", err)
		}
		if targets, err := a.DiskTargets(ctx, d.Name); err != nil || slices.Contains(targets, "vdc") {
			t.Errorf("DiskTargets after detach = %v, %v", targets, err)
		}
	})

	// A start cut short (nodectl killed in it) can leave qemu paused:
	// Start resumes it.
	t.Run("start resumes a paused domain", func(t *testing.T) {
		if out, err := exec.Command("virsh", "-c", "qemu:///system", "suspend", d.Name).CombinedOutput(); err != nil {
			t.Fatalf("virsh suspend: %v: %s", err, out)
		}
		if info, err := a.Inspect(ctx, d.Name); err != nil || info.State != hypervisor.Paused {
			t.Fatalf("after suspend: %+v %v", info, err)
		}
		if err := a.Start(ctx, d.Name); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if info, err := a.Inspect(ctx, d.Name); err != nil || info.State != hypervisor.Running {
			t.Fatalf("after Start: %+v %v", info, err)
		}
	})

	t.Run("stop asks the guest first", func(t *testing.T) {
		start := time.Now()
		if err := a.Stop(ctx, d.Name, time.Minute); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		t.Logf("guest powered off %s after the power button", time.Since(start).Round(time.Millisecond))
		if info, err := a.Inspect(ctx, d.Name); err != nil || info.State != hypervisor.Shutoff {
			t.Fatalf("Inspect after Stop = %+v, %v; want shutoff", info, err)
		}
		// The demo guest's acpid ran its power-button script.
		data, _ := os.ReadFile(d.ConsolePath)
		if !strings.Contains(string(data), "koala-init: poweroff") {
			t.Errorf("the guest did not power itself off; console:\n%s", data)
		}
	})

	t.Run("a domain without our metadata is not ours", func(t *testing.T) {
		c, err := libvirt.NewConnect("qemu:///system")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		dom, err := c.LookupDomainByName(d.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer dom.Free()
		if err := dom.SetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, "", "", Namespace, libvirt.DOMAIN_AFFECT_CONFIG); err != nil {
			t.Fatalf("remove metadata: %v", err)
		}
		if _, err := a.Inspect(ctx, d.Name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Inspect = %v, want ErrNotFound", err)
		}
		if err := a.Define(ctx, d); err == nil || !strings.Contains(err.Error(), "does not manage") {
			t.Errorf("Define over it = %v, want a refusal", err)
		}
		if err := a.Destroy(ctx, d.Name); err != nil {
			t.Errorf("Destroy = %v, want a no-op", err)
		}
		if _, err := c.LookupDomainByName(d.Name); err != nil {
			t.Errorf("Destroy removed a domain that is not ours: %v", err)
		}
		list, err := a.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list {
			if info.Name == d.Name {
				t.Errorf("List has %s", d.Name)
			}
		}
	})

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := a.List(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("List with a canceled context = %v", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		ctx := context.Background()
		d, err := New(ctx, Config{Owner: "node-c", DomainType: TypeQEMU}, f.log)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.List(ctx); !errors.Is(err, errClosed) {
			t.Errorf("List after Close = %v", err)
		}
	})
}

// waitFor waits up to timeout for n occurrences of text in the file at
// path.
func waitFor(t *testing.T, path, text string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), text) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q %d times within %s; it holds:\n%s", path, text, n, timeout, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// undefine removes a test domain whoever owns it, bypassing the driver.
func undefine(t *testing.T, name string) {
	c, err := libvirt.NewConnect("qemu:///system")
	if err != nil {
		t.Errorf("cleanup %s: %v", name, err)
		return
	}
	defer c.Close()
	dom, err := c.LookupDomainByName(name)
	if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
		return
	}
	if err != nil {
		t.Errorf("cleanup %s: %v", name, err)
		return
	}
	defer dom.Free()
	if active, _ := dom.IsActive(); active {
		_ = dom.Destroy()
	}
	if err := dom.UndefineFlags(libvirt.DOMAIN_UNDEFINE_NVRAM | libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE); err != nil {
		t.Errorf("cleanup %s: %v", name, err)
	}
}

func randomName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}
