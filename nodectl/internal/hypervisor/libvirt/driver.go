package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
)

// DomainTypeAuto asks New to choose the domain type by probing the host.
const DomainTypeAuto = "auto"

// stopPoll is how often Stop looks whether a guest has powered off.
const stopPoll = 200 * time.Millisecond

// Config configures a Driver.
type Config struct {
	// URI is the libvirt connection URI; default qemu:///system.
	URI string
	// Owner is the node the driver acts for; required. The driver sees
	// only domains whose metadata names this owner.
	Owner string
	// DomainType is "auto" (the default), "kvm" or "qemu". Auto uses kvm
	// only if /dev/kvm exists and ProbeKernel boots under it.
	DomainType string
	// ProbeKernel is a kernel image the auto probe boots under kvm;
	// without one auto chooses qemu.
	ProbeKernel string
	// StateDir, when set, holds the probe's result (domain-type.json) for
	// the rest of the host's boot.
	StateDir string
}

// Validate reports a configuration New cannot use.
func (c Config) Validate() error {
	if c.Owner == "" {
		return errors.New("owner is required")
	}
	switch c.DomainType {
	case "", DomainTypeAuto, TypeKVM, TypeQEMU:
	default:
		return fmt.Errorf("domain type %q is none of auto, kvm and qemu", c.DomainType)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.URI == "" {
		c.URI = "qemu:///system"
	}
	if c.DomainType == "" {
		c.DomainType = DomainTypeAuto
	}
	return c
}

// Driver runs the domains of one owner on a libvirt daemon. It is safe
// for concurrent use; it holds one connection and opens a new one when
// that one dies.
type Driver struct {
	uri        string
	owner      string
	domainType string
	log        *slog.Logger

	mu     sync.Mutex
	conn   *libvirt.Connect // nil when closed or dead
	closed bool
}

var (
	_ hypervisor.Driver    = (*Driver)(nil)
	_ hypervisor.Closer    = (*Driver)(nil)
	_ hypervisor.Describer = (*Driver)(nil)
)

// errClosed is returned by the methods of a closed Driver.
var errClosed = errors.New("libvirt driver is closed")

// New connects to libvirt and chooses the domain type (see
// Config.DomainType). A nil log discards.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("libvirt driver: %w", err)
	}
	cfg = cfg.withDefaults()
	log = log.With("uri", cfg.URI, "owner", cfg.Owner)
	d := &Driver{uri: cfg.URI, owner: cfg.Owner, log: log}
	_, release, err := d.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("libvirt driver: %w", err)
	}
	release()
	typ, err := newProber(log).choose(ctx, cfg.DomainType, cfg.ProbeKernel, cfg.StateDir)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("libvirt driver: %w", err)
	}
	d.domainType = typ
	return d, nil
}

// Describe returns the domain type in use, "kvm" or "qemu".
func (d *Driver) Describe() string { return d.domainType }

// Close releases the connection; the driver cannot be used after.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.conn == nil {
		return nil
	}
	_, err := d.conn.Close()
	d.conn = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", d.uri, err)
	}
	return nil
}

// connect returns a live connection and a func that releases it. Every
// caller holds its own reference (virConnectRef), so that replacing a
// dead connection does not free it under another goroutine.
func (d *Driver) connect(ctx context.Context) (*libvirt.Connect, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, errClosed
	}
	if d.conn != nil {
		if alive, err := d.conn.IsAlive(); err != nil || !alive {
			d.log.Warn("libvirt connection lost; reconnecting", "err", err)
			d.conn.Close()
			d.conn = nil
		}
	}
	if d.conn == nil {
		c, err := libvirt.NewConnect(d.uri)
		if err != nil {
			return nil, nil, fmt.Errorf("connect %s: %w", d.uri, err)
		}
		d.conn = c
	}
	c := d.conn
	if err := c.Ref(); err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", d.uri, err)
	}
	// Every Close is made under d.mu, so that the last, which frees the
	// connection, comes after every use.
	release := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		c.Close()
	}
	return c, release, nil
}

// do runs f on a live connection. If f fails because the connection
// died, it runs f once more on a new one; every operation of the driver
// may be repeated.
func (d *Driver) do(ctx context.Context, f func(c *libvirt.Connect) error) error {
	for attempt := 0; ; attempt++ {
		c, release, err := d.connect(ctx)
		if err != nil {
			return err
		}
		err = f(c)
		alive := true
		if err != nil && attempt == 0 {
			alive, _ = c.IsAlive()
		}
		release()
		if alive || ctx.Err() != nil {
			return err
		}
		d.log.Warn("libvirt connection died during a call; retrying", "err", err)
	}
}

// lookup returns the owner's domain called name, to be freed, or an
// error wrapping ErrNotFound.
func (d *Driver) lookup(c *libvirt.Connect, op, name string) (*libvirt.Domain, error) {
	dom, err := c.LookupDomainByName(name)
	if err != nil {
		return nil, opError(op, name, err)
	}
	owner, err := ownerOf(dom)
	if err == nil && owner != d.owner {
		err = hypervisor.ErrNotFound
	}
	if err != nil {
		dom.Free()
		return nil, opError(op, name, err)
	}
	return dom, nil
}

// ownerOf reads the owner from a domain's metadata: "" if it has none of
// ours.
func ownerOf(dom *libvirt.Domain) (string, error) {
	md, err := dom.GetMetadata(libvirt.DOMAIN_METADATA_ELEMENT, Namespace, libvirt.DOMAIN_AFFECT_CURRENT)
	if errors.Is(err, libvirt.ERR_NO_DOMAIN_METADATA) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return parseOwner(md)
}

// opError wraps err with the operation and domain name, mapping
// libvirt's missing domain to hypervisor.ErrNotFound.
func opError(op, name string, err error) error {
	if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
		return fmt.Errorf("%s %s: %w: %w", op, name, hypervisor.ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// Define records d, owned by the driver's owner, replacing a stopped
// definition of the same name. It fails with ErrRunning if the domain
// runs and refuses a name that another owner (or no Koala node) holds.
func (d *Driver) Define(ctx context.Context, def hypervisor.Domain) error {
	def.Metadata.Owner = d.owner
	xml, err := DomainXML(def, d.domainType)
	if err != nil {
		return fmt.Errorf("define %s: %w", def.Name, err)
	}
	return d.do(ctx, func(c *libvirt.Connect) error {
		if old, err := c.LookupDomainByName(def.Name); err == nil {
			defer old.Free()
			owner, err := ownerOf(old)
			if err != nil {
				return opError("define", def.Name, err)
			}
			if owner != d.owner {
				if owner == "" {
					return fmt.Errorf("define %s: the name belongs to a domain koala does not manage", def.Name)
				}
				return fmt.Errorf("define %s: the name belongs to %s", def.Name, owner)
			}
			active, err := old.IsActive()
			if err != nil {
				return opError("define", def.Name, err)
			}
			if active {
				return fmt.Errorf("define %s: %w", def.Name, hypervisor.ErrRunning)
			}
		} else if !errors.Is(err, libvirt.ERR_NO_DOMAIN) {
			return opError("define", def.Name, err)
		}
		// Validated against libvirt's schema, so that a mistake in the
		// XML fails here rather than being dropped in silence.
		dom, err := c.DomainDefineXMLFlags(xml, libvirt.DOMAIN_DEFINE_VALIDATE)
		if err != nil {
			return opError("define", def.Name, err)
		}
		dom.Free()
		d.log.Debug("domain defined", "domain", def.Name)
		return nil
	})
}

// Start boots a defined domain; a running one is left alone.
func (d *Driver) Start(ctx context.Context, name string) error {
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "start", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		active, err := dom.IsActive()
		if err != nil {
			return opError("start", name, err)
		}
		if active {
			return d.unpause(ctx, dom, name)
		}
		if err := dom.Create(); err != nil {
			if errors.Is(err, libvirt.ERR_OPERATION_INVALID) {
				// Started in between by someone else.
				if active, aerr := dom.IsActive(); aerr == nil && active {
					return nil
				}
			}
			return opError("start", name, err)
		}
		d.log.Debug("domain started", "domain", name)
		return nil
	})
}

// unpause resumes a domain left paused: nodectl never pauses one, but a
// start its client did not see through (nodectl killed in the middle)
// can leave qemu paused. A start still in progress gets a moment to end.
func (d *Driver) unpause(ctx context.Context, dom *libvirt.Domain, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, _, err := dom.GetState()
		if err != nil {
			return opError("start", name, err)
		}
		if state != libvirt.DOMAIN_PAUSED {
			return nil
		}
		err = dom.Resume()
		if err == nil {
			d.log.Info("resumed a paused domain", "domain", name)
			return nil
		}
		if time.Now().After(deadline) {
			return opError("start (resume)", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop presses the guest's ACPI power button, waits up to grace for it
// to power off, and then forces it off. The definition stays.
func (d *Driver) Stop(ctx context.Context, name string, grace time.Duration) error {
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "stop", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		if grace > 0 {
			off, err := d.shutdown(ctx, dom, name, grace)
			if err != nil || off {
				return err
			}
			d.log.Info("guest did not power off in time; forcing it off", "domain", name, "grace", grace)
		}
		return d.forceOff(dom, "stop", name)
	})
}

// shutdown asks the guest to power off and waits up to grace; off
// reports that it did.
func (d *Driver) shutdown(ctx context.Context, dom *libvirt.Domain, name string, grace time.Duration) (off bool, err error) {
	if off, err := isOff(dom); err != nil {
		return false, opError("stop", name, err)
	} else if off {
		return true, nil
	}
	if err := dom.ShutdownFlags(libvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN); err != nil {
		if off, serr := isOff(dom); serr == nil && off {
			return true, nil
		}
		// A guest that cannot be asked is forced off.
		d.log.Warn("acpi shutdown failed", "domain", name, "err", err)
		return false, nil
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for {
		if off, err := isOff(dom); err != nil {
			return false, opError("stop", name, err)
		} else if off {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("stop %s: %w", name, ctx.Err())
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// isOff reports whether dom is shut off.
func isOff(dom *libvirt.Domain) (bool, error) {
	state, _, err := dom.GetState()
	if err != nil {
		return false, err
	}
	return state == libvirt.DOMAIN_SHUTOFF, nil
}

// forceOff destroys a running domain; one that is off is no error.
func (d *Driver) forceOff(dom *libvirt.Domain, op, name string) error {
	if off, err := isOff(dom); err != nil {
		return opError(op, name, err)
	} else if off {
		return nil
	}
	if err := dom.Destroy(); err != nil {
		if off, serr := isOff(dom); serr == nil && off {
			return nil
		}
		return opError(op, name, err)
	}
	d.log.Debug("domain forced off", "domain", name)
	return nil
}

// Reboot resets a running domain, as a reset button would.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "reboot", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		active, err := dom.IsActive()
		if err != nil {
			return opError("reboot", name, err)
		}
		if !active {
			return fmt.Errorf("reboot %s: not running", name)
		}
		if err := dom.Reset(0); err != nil {
			return opError("reboot", name, err)
		}
		d.log.Debug("domain reset", "domain", name)
		return nil
	})
}

// Destroy forces a domain off and removes its definition, with any
// managed save image, snapshot and checkpoint metadata and NVRAM. A
// missing domain, or another owner's, is left alone without error.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "destroy", name)
		if errors.Is(err, hypervisor.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer dom.Free()
		if err := d.forceOff(dom, "destroy", name); err != nil {
			return missingOK(err)
		}
		persistent, err := dom.IsPersistent()
		if err != nil {
			return missingOK(opError("destroy", name, err))
		}
		if persistent {
			const flags = libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE |
				libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
				libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
				libvirt.DOMAIN_UNDEFINE_NVRAM
			if err := dom.UndefineFlags(flags); err != nil {
				return missingOK(opError("destroy", name, err))
			}
		}
		d.log.Debug("domain destroyed", "domain", name)
		return nil
	})
}

// missingOK drops an error that says the domain is gone.
func missingOK(err error) error {
	if errors.Is(err, hypervisor.ErrNotFound) {
		return nil
	}
	return err
}

// Inspect reports a domain of the owner.
func (d *Driver) Inspect(ctx context.Context, name string) (hypervisor.Info, error) {
	var info hypervisor.Info
	err := d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "inspect", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		state, _, err := dom.GetState()
		if err != nil {
			return opError("inspect", name, err)
		}
		info = hypervisor.Info{Name: name, Owner: d.owner, State: stateOf(state)}
		return nil
	})
	return info, err
}

// Ifaces reports the host devices libvirt made for a running domain's
// NICs (vnet0, ...), read from its live XML; a domain that is off has
// none.
func (d *Driver) Ifaces(ctx context.Context, name string) ([]string, error) {
	var out []string
	err := d.do(ctx, func(c *libvirt.Connect) error {
		out = nil
		dom, err := d.lookup(c, "ifaces", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		active, err := dom.IsActive()
		if err != nil {
			return opError("ifaces", name, err)
		}
		if !active {
			return nil
		}
		desc, err := dom.GetXMLDesc(0)
		if err != nil {
			return opError("ifaces", name, err)
		}
		if out, err = parseIfaces(desc); err != nil {
			return fmt.Errorf("ifaces %s: %w", name, err)
		}
		return nil
	})
	return out, err
}

// diskDetachWait is how long DetachDisk waits for the guest to let go.
const diskDetachWait = 30 * time.Second

// liveDisks returns the guest devices of a running domain's disks.
func liveDiskTargets(dom *libvirt.Domain, op, name string) ([]string, error) {
	desc, err := dom.GetXMLDesc(0)
	if err != nil {
		return nil, opError(op, name, err)
	}
	return parseDiskTargets(desc)
}

// AttachDisk hot-plugs disk into the running domain; a disk already at
// its target is left as it is.
func (d *Driver) AttachDisk(ctx context.Context, name string, disk hypervisor.NetDisk) error {
	x, err := NetDiskXML(disk)
	if err != nil {
		return err
	}
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "attach disk", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		have, err := liveDiskTargets(dom, "attach disk", name)
		if err != nil {
			return err
		}
		if slices.Contains(have, disk.Target) {
			return nil
		}
		if err := dom.AttachDeviceFlags(x, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
			return opError("attach disk", name, err)
		}
		return nil
	})
}

// DetachDisk unplugs the disk at target and waits until the guest has
// let go of it; a target without a disk succeeds.
func (d *Driver) DetachDisk(ctx context.Context, name, target string) error {
	return d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "detach disk", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		desc, err := dom.GetXMLDesc(0)
		if err != nil {
			return opError("detach disk", name, err)
		}
		x, ok, err := diskElement(desc, target)
		if err != nil || !ok {
			return err
		}
		if err := dom.DetachDeviceFlags(x, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
			return opError("detach disk", name, err)
		}
		deadline := time.Now().Add(diskDetachWait)
		for {
			have, err := liveDiskTargets(dom, "detach disk", name)
			if err != nil || !slices.Contains(have, target) {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("detach disk %s from %s: the guest has not released it after %s", target, name, diskDetachWait)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// DiskTargets reports the guest devices of a domain's disks.
func (d *Driver) DiskTargets(ctx context.Context, name string) ([]string, error) {
	var out []string
	err := d.do(ctx, func(c *libvirt.Connect) error {
		dom, err := d.lookup(c, "disks", name)
		if err != nil {
			return err
		}
		defer dom.Free()
		out, err = liveDiskTargets(dom, "disks", name)
		return err
	})
	return out, err
}

// List reports the owner's domains, by name.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Info, error) {
	var out []hypervisor.Info
	err := d.do(ctx, func(c *libvirt.Connect) error {
		out = nil
		doms, err := c.ListAllDomains(0)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		defer func() {
			for i := range doms {
				doms[i].Free()
			}
		}()
		for i := range doms {
			dom := &doms[i]
			info, ok, err := d.describe(dom)
			if errors.Is(err, libvirt.ERR_NO_DOMAIN) {
				continue // gone since the listing
			}
			if err != nil {
				return fmt.Errorf("list: %w", err)
			}
			if ok {
				out = append(out, info)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// describe reports dom if it is the owner's. A domain whose metadata
// cannot be read as ours is skipped with a warning, so that one domain
// cannot hide the others.
func (d *Driver) describe(dom *libvirt.Domain) (hypervisor.Info, bool, error) {
	name, err := dom.GetName()
	if err != nil {
		return hypervisor.Info{}, false, err
	}
	owner, err := ownerOf(dom)
	var lerr libvirt.Error
	if err != nil && !errors.As(err, &lerr) {
		d.log.Warn("skipping a domain with unreadable koala metadata", "domain", name, "err", err)
		return hypervisor.Info{}, false, nil
	}
	if err != nil || owner != d.owner {
		return hypervisor.Info{}, false, err
	}
	state, _, err := dom.GetState()
	if err != nil {
		return hypervisor.Info{}, false, fmt.Errorf("%s: %w", name, err)
	}
	return hypervisor.Info{Name: name, Owner: d.owner, State: stateOf(state)}, true, nil
}

// stateOf maps a libvirt domain state to ours. A domain that is shutting
// down, or starting (no state yet), still runs.
func stateOf(s libvirt.DomainState) hypervisor.State {
	switch s {
	case libvirt.DOMAIN_SHUTOFF:
		return hypervisor.Shutoff
	case libvirt.DOMAIN_PAUSED, libvirt.DOMAIN_PMSUSPENDED:
		return hypervisor.Paused
	case libvirt.DOMAIN_CRASHED:
		return hypervisor.Crashed
	default: // running, blocked, shutdown, nostate
		return hypervisor.Running
	}
}
