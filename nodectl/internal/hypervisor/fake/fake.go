package fake

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
)

// Op names an operation, for Script.
type Op string

// The operations a script can delay or fail.
const (
	OpDefine  Op = "define"
	OpStart   Op = "start"
	OpStop    Op = "stop"
	OpReboot  Op = "reboot"
	OpDestroy Op = "destroy"
)

// Hypervisor holds the domains of every owner, like one libvirtd that
// several nodes share. Driver returns a driver for one owner.
type Hypervisor struct {
	// Script, when set, runs before each operation: a non-nil error fails
	// it; it may also sleep, to delay it.
	Script func(ctx context.Context, op Op, name string) error

	mu      sync.Mutex
	domains map[string]*domain
	taps    int // devices made, for the next device's name
}

type domain struct {
	def   hypervisor.Domain
	state hypervisor.State
	boots int
	taps  []string             // the NICs' host devices while running
	disks []hypervisor.NetDisk // hot-plugged, while running
}

// New returns an empty hypervisor.
func New() *Hypervisor { return &Hypervisor{domains: map[string]*domain{}} }

// Driver returns the driver of one owner.
func (h *Hypervisor) Driver(owner string) *Driver { return &Driver{h: h, owner: owner} }

// Boots reports how many times a domain has started.
func (h *Hypervisor) Boots(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.domains[name]; d != nil {
		return d.boots
	}
	return 0
}

// Crash makes a running domain stop as if its guest powered off.
func (h *Hypervisor) Crash(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.domains[name]; d != nil {
		d.state, d.taps, d.disks = hypervisor.Shutoff, nil, nil
	}
}

// Pause pauses a running domain, as a start cut short can leave one.
func (h *Hypervisor) Pause(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.domains[name]; d != nil && d.state == hypervisor.Running {
		d.state = hypervisor.Paused
	}
}

// Driver is one owner's view of a Hypervisor.
type Driver struct {
	h     *Hypervisor
	owner string
}

var _ hypervisor.Driver = (*Driver)(nil)

// Describe names the driver.
func (d *Driver) Describe() string { return "fake" }

func (d *Driver) script(ctx context.Context, op Op, name string) error {
	if d.h.Script == nil {
		return nil
	}
	if err := d.h.Script(ctx, op, name); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return ctx.Err()
}

// mine returns the owner's domain called name, under h.mu.
func (d *Driver) mine(name string) (*domain, error) {
	dom := d.h.domains[name]
	if dom == nil || dom.def.Metadata.Owner != d.owner {
		return nil, fmt.Errorf("%s: %w", name, hypervisor.ErrNotFound)
	}
	return dom, nil
}

// Define records a domain.
func (d *Driver) Define(ctx context.Context, def hypervisor.Domain) error {
	if err := d.script(ctx, OpDefine, def.Name); err != nil {
		return err
	}
	def.Metadata.Owner = d.owner
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if dom := d.h.domains[def.Name]; dom != nil {
		if dom.def.Metadata.Owner != d.owner {
			return fmt.Errorf("define %s: the name belongs to %s", def.Name, dom.def.Metadata.Owner)
		}
		if dom.state == hypervisor.Running {
			return fmt.Errorf("define %s: %w", def.Name, hypervisor.ErrRunning)
		}
		dom.def = def
		return nil
	}
	d.h.domains[def.Name] = &domain{def: def, state: hypervisor.Shutoff}
	return nil
}

// Start boots a domain and writes the demo image's line to its console.
func (d *Driver) Start(ctx context.Context, name string) error {
	if err := d.script(ctx, OpStart, name); err != nil {
		return err
	}
	d.h.mu.Lock()
	dom, err := d.mine(name)
	if err != nil || dom.state == hypervisor.Running {
		d.h.mu.Unlock()
		return err
	}
	if dom.state == hypervisor.Paused { // resumed, as libvirt's driver does
		dom.state = hypervisor.Running
		d.h.mu.Unlock()
		return nil
	}
	dom.state = hypervisor.Running
	dom.boots++
	dom.taps = nil
	for range dom.def.NICs {
		dom.taps = append(dom.taps, fmt.Sprintf("vnet%d", d.h.taps))
		d.h.taps++
	}
	def := dom.def
	d.h.mu.Unlock()
	if def.ConsolePath == "" {
		return nil
	}
	f, err := os.OpenFile(def.ConsolePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: console: %w", name, err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "koala-demo: instance %s is up ip=none\n", def.Serial)
	return err
}

// Stop shuts a domain off.
func (d *Driver) Stop(ctx context.Context, name string, grace time.Duration) error {
	if err := d.script(ctx, OpStop, name); err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return err
	}
	dom.state = hypervisor.Shutoff
	dom.taps, dom.disks = nil, nil // hot-plugged disks are live-only, as in libvirt
	return nil
}

// Reboot counts a boot of a running domain.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	if err := d.script(ctx, OpReboot, name); err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return err
	}
	if dom.state != hypervisor.Running {
		return fmt.Errorf("reboot %s: not running", name)
	}
	dom.boots++
	return nil
}

// Destroy removes a domain; a missing one is no error.
func (d *Driver) Destroy(ctx context.Context, name string) error {
	if err := d.script(ctx, OpDestroy, name); err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if _, err := d.mine(name); err == nil {
		delete(d.h.domains, name)
	}
	return nil
}

// Inspect reports a domain.
func (d *Driver) Inspect(ctx context.Context, name string) (hypervisor.Info, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return hypervisor.Info{}, err
	}
	return hypervisor.Info{Name: name, Owner: d.owner, State: dom.state}, nil
}

// List reports the owner's domains, by name.
func (d *Driver) List(ctx context.Context) ([]hypervisor.Info, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	var out []hypervisor.Info
	for name, dom := range d.h.domains {
		if dom.def.Metadata.Owner == d.owner {
			out = append(out, hypervisor.Info{Name: name, Owner: d.owner, State: dom.state})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Ifaces reports the host devices of a running domain's NICs: like
// libvirt, each start gives every NIC a new device, vnet0, vnet1, ... in
// the order of starts on the hypervisor. A domain that is off has none.
func (d *Driver) Ifaces(ctx context.Context, name string) ([]string, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(dom.taps), nil
}

// AttachDisk records a hot-plugged disk on a running domain; a disk at
// the same target stays as it is.
func (d *Driver) AttachDisk(ctx context.Context, name string, disk hypervisor.NetDisk) error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return err
	}
	if dom.state != hypervisor.Running {
		return fmt.Errorf("attach disk to %s: domain is not running", name)
	}
	for _, have := range dom.disks {
		if have.Target == disk.Target {
			return nil
		}
	}
	dom.disks = append(dom.disks, disk)
	return nil
}

// DetachDisk forgets the disk at target.
func (d *Driver) DetachDisk(ctx context.Context, name, target string) error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return err
	}
	dom.disks = slices.DeleteFunc(dom.disks, func(disk hypervisor.NetDisk) bool { return disk.Target == target })
	return nil
}

// DiskTargets reports the targets of a domain's hot-plugged disks.
func (d *Driver) DiskTargets(ctx context.Context, name string) ([]string, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	dom, err := d.mine(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, disk := range dom.disks {
		out = append(out, disk.Target)
	}
	return out, nil
}
