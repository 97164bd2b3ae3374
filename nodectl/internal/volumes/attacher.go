// Package volumes attaches EBS volumes to a node's instances: the node
// lets its own AoE MAC use the volume on ebs and reaches it, through the
// kernel's aoe driver where it is loaded (the volume is then the block
// device /dev/etherd/eS.L) or else with the user-space AoE initiator,
// served to the instance's qemu as an NBD export on a unix socket; the
// hypervisor hot-plugs either as a virtio disk. The attachments are
// recorded in a file, so that a restarted nodectl serves them again on
// the same sockets, and qemu (which reconnects) goes on.
package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/nbd"
)

// Errors callers test for.
var (
	ErrInvalid   = errors.New("invalid volume attachment")
	ErrNoNetwork = errors.New("the node has no AoE interface")
)

// Hotplugger is a hypervisor driver that hot-plugs network disks.
type Hotplugger interface {
	AttachDisk(ctx context.Context, name string, d hypervisor.NetDisk) error
	DetachDisk(ctx context.Context, name, target string) error
}

// EBS is the part of ebs's internal API a node uses; *api.Client (with
// the node's component key) is one.
type EBS interface {
	AllowVolume(ctx context.Context, id, mac string) (api.Volume, error)
	DisallowVolume(ctx context.Context, id, mac string) (api.Volume, error)
}

// Config tunes an Attacher.
type Config struct {
	// Interface is the NIC AoE frames go out on.
	Interface string
	// Dir holds the record and the NBD sockets; the hypervisor's qemu
	// must be able to reach the sockets.
	Dir string
	// DialTimeout bounds finding a volume on the network (30s when 0).
	DialTimeout time.Duration
	// Etherd is where the kernel's aoe driver keeps its devices
	// (/dev/etherd when ""): where its discover file exists, volumes
	// are attached through the kernel driver, unless UserSpace.
	Etherd    string
	UserSpace bool
}

// Attacher keeps a node's volume attachments.
type Attacher struct {
	cfg    Config
	hv     Hotplugger
	ebs    func(url string) EBS
	listen func(ifname string) (aoe.Conn, error)
	log    *slog.Logger

	mu       sync.Mutex
	attached map[string]*attachment // by volume ID
}

// attachment is a volume served to an instance.
type attachment struct {
	Instance string               `json:"instance"`
	Volume   api.VolumeAttachment `json:"volume"`
	// MAC is the node's AoE MAC ebs lets use the volume.
	MAC string `json:"mac"`
	// Device is the kernel aoe driver's block device of the volume, when
	// the kernel serves it (else the node serves it over NBD).
	Device string `json:"device,omitempty"`

	in     *aoe.Initiator
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an attacher; Restore serves what was attached before.
func New(cfg Config, hv Hotplugger, ebs func(url string) EBS, listen func(string) (aoe.Conn, error), log *slog.Logger) *Attacher {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.Etherd == "" {
		cfg.Etherd = "/dev/etherd"
	}
	if listen == nil {
		listen = func(ifname string) (aoe.Conn, error) { return aoe.Listen(ifname) }
	}
	return &Attacher{cfg: cfg, hv: hv, ebs: ebs, listen: listen, log: log, attached: map[string]*attachment{}}
}

var deviceRE = regexp.MustCompile(`^vd[b-z]$`)

func (a *Attacher) recordPath() string { return filepath.Join(a.cfg.Dir, "volumes.json") }

func (a *Attacher) socket(volumeID string) string { return filepath.Join(a.cfg.Dir, volumeID+".sock") }

// saveLocked writes the attachments atomically.
func (a *Attacher) saveLocked() error {
	var list []*attachment
	for _, at := range a.attached {
		list = append(list, at)
	}
	slices.SortFunc(list, func(x, y *attachment) int {
		if x.Volume.VolumeID < y.Volume.VolumeID {
			return -1
		}
		return 1
	})
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := a.recordPath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, a.recordPath())
	}
	return err
}

// Attach serves the volume to the instance's domain; attaching what is
// attached (the same volume to the same instance) succeeds again.
func (a *Attacher) Attach(ctx context.Context, instance string, v api.VolumeAttachment) error {
	if !deviceRE.MatchString(v.Device) || v.VolumeID == "" || v.EBS == "" {
		return fmt.Errorf("%w: volume %q at device %q", ErrInvalid, v.VolumeID, v.Device)
	}
	if a.cfg.Interface == "" {
		return ErrNoNetwork
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.attached[v.VolumeID]; ok {
		if at.Instance != instance {
			return fmt.Errorf("%w: volume %s is attached to %s", ErrInvalid, v.VolumeID, at.Instance)
		}
		return a.hv.AttachDisk(ctx, instance, a.netDisk(at))
	}
	at := &attachment{Instance: instance, Volume: v}
	if err := a.serve(ctx, at); err != nil {
		return err
	}
	if err := a.hv.AttachDisk(ctx, instance, a.netDisk(at)); err != nil {
		a.stop(at)
		return fmt.Errorf("hot-plug %s into %s: %w", v.VolumeID, instance, err)
	}
	a.attached[v.VolumeID] = at
	if err := a.saveLocked(); err != nil {
		return fmt.Errorf("record attachment: %w", err)
	}
	a.log.Info("volume attached", "volume_id", v.VolumeID, "instance_id", instance, "device", v.Device,
		"shelf", v.Shelf, "slot", v.Slot, "kernel_device", at.Device)
	return nil
}

func (a *Attacher) netDisk(at *attachment) hypervisor.NetDisk {
	d := hypervisor.NetDisk{Target: at.Volume.Device, Serial: DiskSerial(at.Volume.VolumeID)}
	if at.Device != "" {
		d.Device = at.Device
	} else {
		d.Socket, d.Export = a.socket(at.Volume.VolumeID), at.Volume.VolumeID
	}
	return d
}

// kernel reports whether the kernel's aoe driver is there to use.
func (a *Attacher) kernel() bool {
	if a.cfg.UserSpace {
		return false
	}
	_, err := os.Stat(filepath.Join(a.cfg.Etherd, "discover"))
	return err == nil
}

// serveKernel lets the node's MAC use the volume and has the kernel's
// aoe driver find it: its block device appears under Etherd.
func (a *Attacher) serveKernel(ctx context.Context, at *attachment) error {
	v := at.Volume
	conn, err := a.listen(a.cfg.Interface)
	if err != nil {
		return err
	}
	at.MAC = conn.HardwareAddr().String()
	conn.Close()
	if _, err := a.ebs(v.EBS).AllowVolume(ctx, v.VolumeID, at.MAC); err != nil {
		return fmt.Errorf("allow %s on ebs: %w", v.VolumeID, err)
	}
	dev := filepath.Join(a.cfg.Etherd, fmt.Sprintf("e%d.%d", v.Shelf, v.Slot))
	deadline := time.Now().Add(a.cfg.DialTimeout)
	for n := 0; ; n++ {
		if n%20 == 0 { // every 2s: the driver asks the network again
			if err := os.WriteFile(filepath.Join(a.cfg.Etherd, "discover"), []byte("\n"), 0); err != nil {
				return fmt.Errorf("aoe discover: %w", err)
			}
		}
		if _, err := os.Stat(dev); err == nil {
			at.Device = dev
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reach %s: the kernel's aoe driver shows no %s after %s", v.VolumeID, dev, a.cfg.DialTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DiskSerial is the serial a guest reads for a volume: its ID without
// the dash, as EC2's NVMe volumes show it, so that it fits the 20 bytes
// of a virtio disk's serial ("vol0123456789abcdef0").
func DiskSerial(volumeID string) string { return strings.Replace(volumeID, "-", "", 1) }

// serve lets the node's MAC use the volume, dials it and serves it on
// its socket, or has the kernel's aoe driver reach it.
func (a *Attacher) serve(ctx context.Context, at *attachment) error {
	if a.kernel() {
		return a.serveKernel(ctx, at)
	}
	at.Device = ""
	v := at.Volume
	conn, err := a.listen(a.cfg.Interface)
	if err != nil {
		return err
	}
	at.MAC = conn.HardwareAddr().String()
	if _, err := a.ebs(v.EBS).AllowVolume(ctx, v.VolumeID, at.MAC); err != nil {
		conn.Close()
		return fmt.Errorf("allow %s on ebs: %w", v.VolumeID, err)
	}
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	in, err := aoe.Dial(dctx, conn, v.Shelf, v.Slot)
	cancel()
	if err != nil {
		conn.Close()
		return fmt.Errorf("reach %s at e%d.%d: %w", v.VolumeID, v.Shelf, v.Slot, err)
	}
	sock := a.socket(v.VolumeID)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		in.Close()
		return err
	}
	_ = os.Chmod(sock, 0o777) // qemu runs as its own user
	srv := nbd.NewServer(a.log)
	srv.Add(nbd.Export{Name: v.VolumeID, Dev: in, Size: in.Size(), BlockSize: aoe.SectorSize})
	sctx, scancel := context.WithCancel(context.Background())
	at.in, at.ln, at.cancel, at.done = in, ln, scancel, make(chan struct{})
	go func() {
		defer close(at.done)
		_ = srv.Serve(sctx, ln)
	}()
	return nil
}

// stop ends the NBD server and the initiator of an attachment, or has
// the kernel's aoe driver drop its device.
func (a *Attacher) stop(at *attachment) {
	if at.Device != "" {
		name := filepath.Base(at.Device)
		if err := os.WriteFile(filepath.Join(a.cfg.Etherd, "flush"), []byte(name+"\n"), 0); err != nil {
			a.log.Warn("aoe flush", "device", name, "err", err)
		}
		return
	}
	if at.cancel != nil {
		at.cancel()
		<-at.done
	}
	if at.in != nil {
		_ = at.in.Sync()
		at.in.Close()
	}
	_ = os.Remove(a.socket(at.Volume.VolumeID))
}

// Detach unplugs the volume from the instance's domain (unless force
// and the guest does not let go), stops serving it and takes the node's
// MAC off it on ebs. Detaching what is not attached succeeds.
func (a *Attacher) Detach(ctx context.Context, instance string, v api.VolumeAttachment) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.attached[v.VolumeID]
	if !ok {
		return nil
	}
	if err := a.hv.DetachDisk(ctx, at.Instance, at.Volume.Device); err != nil && !v.Force {
		return fmt.Errorf("unplug %s from %s: %w", v.VolumeID, at.Instance, err)
	}
	a.stop(at)
	delete(a.attached, v.VolumeID)
	if err := a.saveLocked(); err != nil {
		return fmt.Errorf("record detachment: %w", err)
	}
	if _, err := a.ebs(at.Volume.EBS).DisallowVolume(ctx, v.VolumeID, at.MAC); err != nil {
		a.log.Warn("volume detached; ebs still lets this node use it", "volume_id", v.VolumeID, "err", err)
	}
	a.log.Info("volume detached", "volume_id", v.VolumeID, "instance_id", at.Instance)
	return nil
}

// Forget stops serving every volume of an instance that is gone and
// takes the node's MAC off them on ebs.
func (a *Attacher) Forget(ctx context.Context, instance string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	changed := false
	for id, at := range a.attached {
		if at.Instance != instance {
			continue
		}
		a.stop(at)
		delete(a.attached, id)
		changed = true
		if _, err := a.ebs(at.Volume.EBS).DisallowVolume(ctx, id, at.MAC); err != nil {
			a.log.Warn("ebs still lets this node use a volume of an ended instance", "volume_id", id, "err", err)
		}
		a.log.Info("volume of an ended instance released", "volume_id", id, "instance_id", instance)
	}
	if changed {
		if err := a.saveLocked(); err != nil {
			a.log.Error("record detachment", "err", err)
		}
	}
}

// Restore serves again the attachments recorded before a restart; one
// that cannot be served is logged and kept for a later Restore.
func (a *Attacher) Restore(ctx context.Context) error {
	data, err := os.ReadFile(a.recordPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var list []*attachment
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("volumes record: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range list {
		if _, ok := a.attached[at.Volume.VolumeID]; ok {
			continue
		}
		if err := a.serve(ctx, at); err != nil {
			a.log.Error("volume not served again after restart", "volume_id", at.Volume.VolumeID, "err", err)
			continue
		}
		a.attached[at.Volume.VolumeID] = at
		a.log.Info("volume served again", "volume_id", at.Volume.VolumeID, "instance_id", at.Instance)
	}
	return nil
}

// Close stops serving every volume the node serves (the kernel's go on
// as they are); the record stays for Restore.
func (a *Attacher) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.attached {
		if at.Device == "" {
			a.stop(at)
		}
	}
	a.attached = map[string]*attachment{}
}
