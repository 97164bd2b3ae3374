package hypervisor

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned for a domain the driver does not have (or that
// belongs to another owner).
var ErrNotFound = errors.New("domain not found")

// ErrRunning is returned by Define for a domain that is running.
var ErrRunning = errors.New("domain is running")

// State is a domain's run state.
type State string

// Domain states.
const (
	Running State = "running"
	Shutoff State = "shutoff" // defined, not running
	Paused  State = "paused"
	Crashed State = "crashed"
)

// Disk is a block device of a domain.
type Disk struct {
	Path   string // file
	Format string // "qcow2" or "raw"
	Target string // guest device: "vda", "vdb"
}

// NetDisk is a volume hot-plugged into a running domain as a virtio
// disk: a host block device (the kernel aoe driver's /dev/etherd/eS.L)
// when Device is set, else an NBD export on a unix socket the node
// serves.
type NetDisk struct {
	Device string // a host block device
	Socket string // the unix socket of the NBD server
	Export string // the NBD export name
	Target string // guest device: "vdb" ... "vdz"
	Serial string // what the guest reads as the disk's serial
}

// NIC is a network interface on a host bridge.
type NIC struct {
	Bridge string
	MAC    string
}

// Domain is a virtual machine to define: direct kernel boot from Kernel
// and Ramdisk with Cmdline, disks, NICs, and the serial console written to
// ConsolePath. Serial is the SMBIOS system serial the guest reads (the
// instance ID). Metadata is recorded with the domain, for people reading
// `virsh dumpxml`; the driver adds the owner.
type Domain struct {
	Name        string
	Cores       int
	MemoryMiB   int
	Kernel      string
	Ramdisk     string
	Cmdline     string
	Disks       []Disk
	NICs        []NIC
	ConsolePath string
	Serial      string
	Metadata    Metadata
}

// Metadata describes the instance a domain runs.
type Metadata struct {
	Owner       string // the node; set by the driver
	InstanceID  string
	AccountID   string
	Reservation string
	ImageID     string
	Type        string
}

// Info is what a driver reports of a domain.
type Info struct {
	Name  string
	Owner string
	State State
}

// Driver runs domains. Every method takes a context; every method is
// safe to call again after an error or a crash of the caller: Define of a
// defined domain replaces it, Start of a running one and Destroy of a
// missing one succeed.
type Driver interface {
	// Define records a domain without starting it (ErrRunning if it
	// runs).
	Define(ctx context.Context, d Domain) error
	// Start boots a defined domain.
	Start(ctx context.Context, name string) error
	// Stop shuts a domain off, asking the guest first and forcing it off
	// after grace (at once for a grace of 0); the definition stays.
	Stop(ctx context.Context, name string, grace time.Duration) error
	// Reboot resets a running domain.
	Reboot(ctx context.Context, name string) error
	// Destroy forces a domain off and removes its definition.
	Destroy(ctx context.Context, name string) error
	// Inspect reports one domain (ErrNotFound if absent).
	Inspect(ctx context.Context, name string) (Info, error)
	// List reports every domain of this driver's owner, so that a
	// restarted nodectl adopts what runs.
	List(ctx context.Context) ([]Info, error)
}

// Closer is a driver holding a connection to release.
type Closer interface {
	Close() error
}

// Describer is a driver that says what it is, for logs and status: for
// libvirt, the domain type it chose ("kvm" or "qemu").
type Describer interface {
	Describe() string
}
