package volumes

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/pkg/aoe"
	"github.com/koala-cloud/koala/pkg/aoe/aoetest"
	"github.com/koala-cloud/koala/pkg/api"
)

var (
	ebsMAC  = net.HardwareAddr{0x02, 0xeb, 0, 0, 0, 1}
	nodeMAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
)

// fakeHV records hot-plugs.
type fakeHV struct {
	mu    sync.Mutex
	disks map[string]hypervisor.NetDisk // by target
}

func (h *fakeHV) AttachDisk(_ context.Context, _ string, d hypervisor.NetDisk) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disks[d.Target] = d
	return nil
}

func (h *fakeHV) DetachDisk(_ context.Context, _, target string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.disks, target)
	return nil
}

// fakeEBS applies allow lists to a target.
type fakeEBS struct {
	tg    *aoe.Target
	mu    sync.Mutex
	allow []string
}

func (e *fakeEBS) set(mac string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.allow = slices.DeleteFunc(e.allow, func(m string) bool { return m == mac })
	if on {
		e.allow = append(e.allow, mac)
	}
	var macs []net.HardwareAddr
	for _, m := range e.allow {
		hw, _ := net.ParseMAC(m)
		macs = append(macs, hw)
	}
	e.tg.SetAllow(1, 0, macs)
}

func (e *fakeEBS) AllowVolume(_ context.Context, id, mac string) (api.Volume, error) {
	e.set(mac, true)
	return api.Volume{ID: id}, nil
}

func (e *fakeEBS) DisallowVolume(_ context.Context, id, mac string) (api.Volume, error) {
	e.set(mac, false)
	return api.Volume{ID: id}, nil
}

func TestAttachServeRestoreDetach(t *testing.T) {
	qemuIO, err := exec.LookPath("qemu-io")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("qemu-io not installed")
	}
	seg := &aoetest.Segment{}
	dev, err := os.Create(filepath.Join(t.TempDir(), "vol"))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	dev.Truncate(8 << 20)
	tport := seg.NewPort(ebsMAC, 1500)
	tg := aoe.NewTarget(tport, 2, nil)
	tg.Add(aoe.Export{Shelf: 1, Slot: 0, Sectors: 8 << 11, Dev: dev, Serial: "vol-0000000a"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tg.Serve(ctx)
	ebs := &fakeEBS{tg: tg}
	hv := &fakeHV{disks: map[string]hypervisor.NetDisk{}}
	dir := t.TempDir()
	newAttacher := func() *Attacher {
		return New(Config{Interface: "aoe0", Dir: dir, UserSpace: true}, hv, func(string) EBS { return ebs },
			func(string) (aoe.Conn, error) { return seg.NewPort(nodeMAC, 1500), nil }, slog.New(slog.DiscardHandler))
	}
	a := newAttacher()
	v := api.VolumeAttachment{VolumeID: "vol-0000000a", Device: "vdc", EBS: "http://ebs", Shelf: 1, Slot: 0}
	if err := a.Attach(ctx, "i-00000001", v); err != nil {
		t.Fatal(err)
	}
	if err := a.Attach(ctx, "i-00000001", v); err != nil {
		t.Fatalf("attach again: %v", err)
	}
	if err := a.Attach(ctx, "i-00000002", v); err == nil {
		t.Error("the volume was attached to a second instance")
	}
	d, ok := hv.disks["vdc"]
	if !ok || d.Export != v.VolumeID || d.Serial != "vol0000000a" {
		t.Fatalf("hot-plugged %+v", hv.disks)
	}
	url := "nbd+unix:///" + v.VolumeID + "?socket=" + d.Socket
	if out, err := exec.Command(qemuIO, "-f", "raw", "-c", "write -P 0x5a 1M 64k", "-c", "flush", url).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io write: %v\n%s", err, out)
	}
	got := make([]byte, 64<<10)
	dev.ReadAt(got, 1<<20)
	if !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 64<<10)) {
		t.Fatal("qemu's write did not reach the volume through NBD and AoE")
	}

	// A restarted nodectl serves the recorded attachment again.
	a.Close()
	b := newAttacher()
	if err := b.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(qemuIO, "-f", "raw", "-c", "read -P 0x5a 1M 64k", url).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io read after restore: %v\n%s", err, out)
	}
	if err := b.Detach(ctx, "i-00000001", v); err != nil {
		t.Fatal(err)
	}
	if _, ok := hv.disks["vdc"]; ok || len(ebs.allow) != 0 {
		t.Errorf("after detach: disks %v, ebs allows %v", hv.disks, ebs.allow)
	}
	if err := b.Detach(ctx, "i-00000001", v); err != nil {
		t.Errorf("detach again: %v", err)
	}
	c := newAttacher()
	c.Restore(ctx)
	if len(c.attached) != 0 {
		t.Errorf("a detached volume was restored: %v", c.attached)
	}
	for _, bad := range []api.VolumeAttachment{{VolumeID: "vol-1", Device: "sdf", EBS: "x"}, {VolumeID: "vol-1", Device: "vdb"}} {
		if err := b.Attach(ctx, "i-00000001", bad); err == nil {
			t.Errorf("%+v attached", bad)
		}
	}
}

// TestAttachThroughTheKernelDriver stands a directory in for the kernel
// aoe driver's /dev/etherd: a write to discover makes the volume's
// device appear, as the driver does once ebs answers the node's MAC.
func TestAttachThroughTheKernelDriver(t *testing.T) {
	seg := &aoetest.Segment{}
	etherd := t.TempDir()
	discover := filepath.Join(etherd, "discover")
	if err := os.WriteFile(discover, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ebs := &recordingEBS{}
	hv := &fakeHV{disks: map[string]hypervisor.NetDisk{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the driver: a discover with the MAC allowed finds e3.7
		for ctx.Err() == nil {
			if data, _ := os.ReadFile(discover); len(data) > 0 && len(ebs.allowed()) > 0 {
				os.WriteFile(filepath.Join(etherd, "e3.7"), nil, 0o600)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	dir := t.TempDir()
	newAttacher := func() *Attacher {
		return New(Config{Interface: "aoe0", Dir: dir, Etherd: etherd}, hv, func(string) EBS { return ebs },
			func(string) (aoe.Conn, error) { return seg.NewPort(nodeMAC, 1500), nil }, slog.New(slog.DiscardHandler))
	}
	a := newAttacher()
	v := api.VolumeAttachment{VolumeID: "vol-0000000b", Device: "vdd", EBS: "http://ebs", Shelf: 3, Slot: 7}
	if err := a.Attach(ctx, "i-00000001", v); err != nil {
		t.Fatal(err)
	}
	d := hv.disks["vdd"]
	if d.Device != filepath.Join(etherd, "e3.7") || d.Socket != "" || d.Serial != "vol0000000b" {
		t.Fatalf("hot-plugged %+v", d)
	}
	if got := ebs.allowed(); len(got) != 1 || got[0] != nodeMAC.String() {
		t.Fatalf("ebs lets %v use it", got)
	}
	// nodectl restarts: the guest's kernel device is left alone, and the
	// record is served again.
	a.Close()
	b := newAttacher()
	if err := b.Restore(ctx); err != nil || b.attached[v.VolumeID] == nil || b.attached[v.VolumeID].Device == "" {
		t.Fatalf("restore: %v %+v", err, b.attached)
	}
	if err := b.Detach(ctx, "i-00000001", v); err != nil {
		t.Fatal(err)
	}
	if flushed, _ := os.ReadFile(filepath.Join(etherd, "flush")); string(flushed) != "e3.7\n" {
		t.Errorf("flush got %q", flushed)
	}
	if _, ok := hv.disks["vdd"]; ok || len(ebs.allowed()) != 0 {
		t.Errorf("after detach: disks %v, ebs allows %v", hv.disks, ebs.allowed())
	}
}

// recordingEBS keeps the MACs allowed to use a volume.
type recordingEBS struct {
	mu    sync.Mutex
	allow []string
}

func (e *recordingEBS) allowed() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.allow)
}

func (e *recordingEBS) AllowVolume(_ context.Context, id, mac string) (api.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.allow, mac) {
		e.allow = append(e.allow, mac)
	}
	return api.Volume{ID: id}, nil
}

func (e *recordingEBS) DisallowVolume(_ context.Context, id, mac string) (api.Volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.allow = slices.DeleteFunc(e.allow, func(m string) bool { return m == mac })
	return api.Volume{ID: id}, nil
}
