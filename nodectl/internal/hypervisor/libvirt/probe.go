package libvirt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// cacheFile is the name of the probe's cache in Config.StateDir.
const cacheFile = "domain-type.json"

// prober chooses the domain type. Its fields name what it looks at, so
// that tests can point them elsewhere.
type prober struct {
	log        *slog.Logger
	kvmDevice  string        // /dev/kvm
	bootIDFile string        // /proc/sys/kernel/random/boot_id
	qemu       string        // the emulator the probe runs
	timeout    time.Duration // for the guest kernel to reach its root file system
}

func newProber(log *slog.Logger) prober {
	return prober{
		log:        log,
		kvmDevice:  "/dev/kvm",
		bootIDFile: "/proc/sys/kernel/random/boot_id",
		qemu:       "qemu-system-x86_64",
		timeout:    10 * time.Second,
	}
}

// probeCache is what StateDir/domain-type.json holds: the outcome of a
// boot probe, valid for the host boot and probe kernel it ran with.
type probeCache struct {
	BootID      string    `json:"boot_id"`
	ProbeKernel string    `json:"probe_kernel"`
	DomainType  string    `json:"domain_type"`
	Reason      string    `json:"reason"`
	ProbedAt    time.Time `json:"probed_at"`
}

// choose returns the domain type for want ("auto", "kvm" or "qemu") and
// logs it with the reason. An error comes only from ctx.
func (p prober) choose(ctx context.Context, want, kernel, stateDir string) (string, error) {
	typ, reason, err := p.decide(ctx, want, kernel, stateDir)
	if err != nil {
		return "", err
	}
	p.log.Info("libvirt domain type chosen", "domain_type", typ, "requested", want, "reason", reason)
	return typ, nil
}

func (p prober) decide(ctx context.Context, want, kernel, stateDir string) (typ, reason string, err error) {
	if want == TypeKVM || want == TypeQEMU {
		return want, "configured", nil
	}
	if _, err := os.Stat(p.kvmDevice); err != nil {
		return TypeQEMU, fmt.Sprintf("%s is unusable: %v", p.kvmDevice, err), nil
	}
	if kernel == "" {
		return TypeQEMU, "no probe kernel configured to check that a guest boots under kvm", nil
	}
	bootID, err := os.ReadFile(p.bootIDFile)
	if err != nil {
		p.log.Warn("cannot read the boot id; the probe result will not be cached", "path", p.bootIDFile, "err", err)
	}
	id := strings.TrimSpace(string(bootID))
	path := ""
	if stateDir != "" && id != "" {
		path = filepath.Join(stateDir, cacheFile)
		if c, ok := p.readCache(path); ok && c.BootID == id && c.ProbeKernel == kernel {
			return c.DomainType, fmt.Sprintf("cached in %s from %s: %s", path, c.ProbedAt.Format(time.RFC3339), c.Reason), nil
		}
	}
	p.log.Info("probing whether a guest kernel boots under kvm", "kernel", kernel, "timeout", p.timeout)
	typ, reason, ok, err := p.bootProbe(ctx, kernel)
	if err != nil {
		return "", "", err
	}
	if ok && path != "" {
		c := probeCache{BootID: id, ProbeKernel: kernel, DomainType: typ, Reason: reason, ProbedAt: time.Now().UTC()}
		if err := writeCache(path, c); err != nil {
			p.log.Warn("cannot cache the domain type probe", "path", path, "err", err)
		}
	}
	return typ, reason, nil
}

// bootProbe boots kernel without a ramdisk under qemu -accel kvm and
// watches its serial console: a kernel that gets as far as mounting its
// root file system ("VFS:" or the panic for the missing root) runs fine
// under kvm. ok reports a conclusive outcome, worth caching; err is set
// only when ctx ends.
func (p prober) bootProbe(ctx context.Context, kernel string) (typ, reason string, ok bool, err error) {
	if _, err := os.Stat(kernel); err != nil {
		return TypeQEMU, fmt.Sprintf("probe kernel unusable: %v", err), false, nil
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(pctx, p.qemu,
		"-accel", "kvm", "-kernel", kernel, "-append", "console=ttyS0 panic=-1",
		"-nographic", "-no-reboot", "-m", "128", "-serial", "stdio", "-display", "none", "-nodefaults")
	// qemu runs in a process group of its own, killed as a whole at the
	// end, so that nothing keeps the output pipe open; and it dies with
	// us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	r, w, err := os.Pipe()
	if err != nil {
		return TypeQEMU, fmt.Sprintf("probe: %v", err), false, nil
	}
	defer r.Close()
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return TypeQEMU, fmt.Sprintf("cannot run the probe: %v", err), false, nil
	}

	var out []byte
	reached := false
	buf := make([]byte, 4096)
	for !reached {
		n, rerr := r.Read(buf)
		// Look at the new bytes and a little before them, for a marker
		// split across reads.
		from := max(0, len(out)-16)
		out = append(out, buf[:n]...)
		reached = bootedToRootfs(out[from:])
		if rerr != nil {
			break
		}
	}
	cancel()
	_ = cmd.Wait()
	took := time.Since(start).Round(10 * time.Millisecond)

	switch {
	case reached:
		return TypeKVM, fmt.Sprintf("a guest kernel reached its root file system under kvm in %s", took), true, nil
	case ctx.Err() != nil:
		return "", "", false, fmt.Errorf("domain type probe: %w", ctx.Err())
	case errors.Is(pctx.Err(), context.DeadlineExceeded):
		return TypeQEMU, fmt.Sprintf("a guest kernel under kvm did not reach its root file system within %s; last output %q",
			p.timeout, lastLine(out)), true, nil
	default:
		return TypeQEMU, fmt.Sprintf("qemu -accel kvm stopped after %s before the guest kernel reached its root file system; last output %q",
			took, lastLine(out)), true, nil
	}
}

// bootedToRootfs reports whether console output shows a kernel that got
// as far as mounting its root file system.
func bootedToRootfs(out []byte) bool {
	return bytes.Contains(out, []byte("VFS:")) || bytes.Contains(out, []byte("Kernel panic"))
}

// escapes matches terminal control sequences, as SeaBIOS writes them.
var escapes = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_c])`)

// lastLine is the last non-blank line of out, without terminal escapes,
// shortened.
func lastLine(out []byte) string {
	text := escapes.ReplaceAllString(string(out), "")
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return -1
			}
			return r
		}, lines[i]))
		if l == "" {
			continue
		}
		if len(l) > 200 {
			l = l[:200]
		}
		return l
	}
	return ""
}

func (p prober) readCache(path string) (probeCache, bool) {
	var c probeCache
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("cannot read the domain type cache", "path", path, "err", err)
		}
		return c, false
	}
	if err := json.Unmarshal(data, &c); err != nil {
		p.log.Warn("ignoring a corrupt domain type cache", "path", path, "err", err)
		return c, false
	}
	return c, c.DomainType == TypeKVM || c.DomainType == TypeQEMU
}

// writeCache replaces path atomically.
func writeCache(path string, c probeCache) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), cacheFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
