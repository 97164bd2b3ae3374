package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/disks"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor/fake"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/sched"
)

// images serves every image from one small file, or fails.
type images struct {
	path  string
	fail  atomic.Bool
	block chan struct{} // when set, Get waits for it or ctx
}

func (im *images) Get(ctx context.Context, ref api.ImageRef) (string, error) {
	if im.block != nil {
		select {
		case <-im.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if im.fail.Load() {
		return "", errors.New("walrus said no")
	}
	return im.path, nil
}

type rig struct {
	t   *testing.T
	dir string
	hv  *fake.Hypervisor
	im  *images
	m   *Manager
}

func newRig(t *testing.T) *rig {
	t.Helper()
	base := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(base, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: t.TempDir(), hv: fake.New(), im: &images{path: base}}
	r.m = r.start()
	return r
}

func (r *rig) start() *Manager {
	r.t.Helper()
	m, err := New(Config{Name: "node-1", Dir: r.dir, Bridge: "br0", Capacity: sched.Resources{Cores: 4, MemoryMiB: 4096, DiskGiB: 100},
		Poll: 10 * time.Millisecond}, r.hv.Driver("node-1"), r.im, disks.Sparse{}, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(m.Close)
	return m
}

var seq atomic.Int32

func spec() api.InstanceSpec {
	id := fmt.Sprintf("i-%017x", seq.Add(1))
	img := &api.ImageRef{ID: "aki-1", SHA256: strings.Repeat("a", 64)}
	return api.InstanceSpec{ID: id, Type: api.VMType{Name: "m1.small", Resources: sched.Resources{Cores: 1, MemoryMiB: 128, DiskGiB: 1}},
		Kernel: img, Image: api.ImageRef{ID: "ami-1", SHA256: strings.Repeat("b", 64)}, MAC: "d0:0d:0a:00:00:05", PrivateIP: "10.0.0.5"}
}

func (r *rig) status(id string) api.InstanceStatus {
	for _, st := range r.m.Status().Instances {
		if st.ID == id {
			return st
		}
	}
	return api.InstanceStatus{}
}

// wait polls until id reaches state, within the test's deadline.
func (r *rig) wait(id, state string) api.InstanceStatus {
	r.t.Helper()
	for {
		st := r.status(id)
		if st.State == state {
			return st
		}
		if dl, ok := r.t.Deadline(); ok && time.Until(dl) < time.Second {
			r.t.Fatalf("%s is %s, never %s", id, st.State, state)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *rig) launch(s api.InstanceSpec) {
	r.t.Helper()
	st, err := r.m.Launch(context.Background(), s)
	if err != nil || st.State != api.Pending {
		r.t.Fatalf("Launch = %+v, %v", st, err)
	}
}

func (r *rig) domain(id string) (hypervisor.Info, error) {
	return r.hv.Driver("node-1").Inspect(context.Background(), id)
}

func TestLaunchAndTerminate(t *testing.T) {
	r := newRig(t)
	s := spec()
	r.launch(s)
	st := r.wait(s.ID, api.Running)
	if st.Node != "node-1" || st.PrivateIP != "10.0.0.5" || st.Type != "m1.small" {
		t.Errorf("status = %+v", st)
	}
	if again, err := r.m.Launch(context.Background(), s); err != nil || again.State != api.Running {
		t.Errorf("a repeated launch = %+v, %v", again, err)
	}
	if r.hv.Boots(s.ID) != 1 {
		t.Errorf("booted %d times", r.hv.Boots(s.ID))
	}
	out, err := r.m.Console(context.Background(), s.ID)
	if err != nil || !strings.Contains(string(out.Output), "koala-demo: instance "+s.ID+" is up") {
		t.Errorf("console = %q, %v", out.Output, err)
	}
	if !r.m.InUse(strings.Repeat("b", 64)) {
		t.Error("the running instance's image is not pinned")
	}
	for _, f := range []string{"root.raw", "ephemeral.raw"} {
		if _, err := os.Stat(filepath.Join(r.dir, s.ID, f)); err != nil {
			t.Errorf("disk %s: %v", f, err)
		}
	}
	if _, err := r.m.Act(context.Background(), s.ID, api.VerbTerminate, api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	st = r.wait(s.ID, api.Terminated)
	if st.Reason == nil || st.Reason.Code != "Client.UserInitiatedShutdown" {
		t.Errorf("reason = %+v", st.Reason)
	}
	if _, err := r.domain(s.ID); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("the domain outlived its instance: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, s.ID, "root.raw")); !os.IsNotExist(err) {
		t.Error("the root disk outlived its instance")
	}
	if r.m.InUse(strings.Repeat("b", 64)) {
		t.Error("a terminated instance pins its image")
	}
	if st, err := r.m.Act(context.Background(), "i-0000000000000dead", api.VerbTerminate, api.ActionRequest{}); err != nil || st.State != api.Terminated {
		t.Errorf("terminating an unknown instance = %+v, %v", st, err)
	}
}

func TestFailuresEndInTerminatedWithAReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(r *rig)
		want   string
	}{
		{"image fetch", func(r *rig) { r.im.fail.Store(true) }, "could not fetch image aki-1"},
		{"domain start", func(r *rig) {
			r.hv.Script = func(ctx context.Context, op fake.Op, name string) error {
				if op == fake.OpStart {
					return errors.New("qemu: no memory")
				}
				return nil
			}
		}, "qemu: no memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			tc.break_(r)
			s := spec()
			r.launch(s)
			st := r.wait(s.ID, api.Terminated)
			if st.Reason == nil || st.Reason.Code != "Server.InternalError" || !strings.Contains(st.Reason.Message, tc.want) {
				t.Errorf("reason = %+v, want one saying %q", st.Reason, tc.want)
			}
			if _, err := r.domain(s.ID); !errors.Is(err, hypervisor.ErrNotFound) {
				t.Errorf("a failed launch left a domain: %v", err)
			}
		})
	}
}

func TestTerminateDuringLaunch(t *testing.T) {
	r := newRig(t)
	r.im.block = make(chan struct{}) // the image download never ends
	s := spec()
	r.launch(s)
	if _, err := r.m.Act(context.Background(), s.ID, api.VerbTerminate, api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	r.wait(s.ID, api.Terminated)
	if r.hv.Boots(s.ID) != 0 {
		t.Error("a terminated launch booted")
	}
}

func TestStopStartModifyReboot(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	s := spec()
	r.launch(s)
	r.wait(s.ID, api.Running)
	big := api.VMType{Name: "m1.large", Resources: sched.Resources{Cores: 2, MemoryMiB: 512, DiskGiB: 1}}
	if _, err := r.m.Act(ctx, s.ID, api.VerbModify, api.ActionRequest{Type: &big}); !errors.Is(err, ErrState) {
		t.Errorf("modify while running = %v, want ErrState", err)
	}
	if _, err := r.m.Act(ctx, s.ID, api.VerbReboot, api.ActionRequest{}); err != nil || r.hv.Boots(s.ID) != 2 {
		t.Errorf("reboot: %v, %d boots", err, r.hv.Boots(s.ID))
	}
	if _, err := r.m.Act(ctx, s.ID, api.VerbStop, api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	r.wait(s.ID, api.Stopped)
	if info, err := r.domain(s.ID); err != nil || info.State != hypervisor.Shutoff {
		t.Errorf("stopped instance's domain = %+v, %v", info, err)
	}
	if _, err := r.m.Act(ctx, s.ID, api.VerbModify, api.ActionRequest{Type: &big}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Act(ctx, s.ID, api.VerbStart, api.ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	if st := r.wait(s.ID, api.Running); st.Type != "m1.large" {
		t.Errorf("started as %s, want m1.large", st.Type)
	}
	if _, err := os.Stat(filepath.Join(r.dir, s.ID, "root.raw")); err != nil {
		t.Error("the disk did not survive stop and start")
	}
	if _, err := r.m.Act(ctx, "i-0000000000000beef", api.VerbStop, api.ActionRequest{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("stopping an unknown instance = %v", err)
	}
}

func TestGuestShutdownTerminates(t *testing.T) {
	r := newRig(t)
	s := spec()
	r.launch(s)
	r.wait(s.ID, api.Running)
	r.hv.Crash(s.ID)
	st := r.wait(s.ID, api.Terminated)
	if st.Reason == nil || st.Reason.Code != "Client.InstanceInitiatedShutdown" {
		t.Errorf("reason = %+v", st.Reason)
	}
}

// A domain found paused (a start cut short by a kill of nodectl can
// leave qemu so) is resumed, not taken for a guest that shut down.
func TestPausedDomainIsResumed(t *testing.T) {
	r := newRig(t)
	s := spec()
	r.launch(s)
	r.wait(s.ID, api.Running)
	r.hv.Pause(s.ID)
	for {
		info, err := r.domain(s.ID)
		if err == nil && info.State == hypervisor.Running {
			break
		}
		if st := r.status(s.ID); st.State != api.Running {
			t.Fatalf("a paused domain's instance went %s (%+v)", st.State, st.Reason)
		}
		if dl, ok := t.Deadline(); ok && time.Until(dl) < time.Second {
			t.Fatal("the paused domain was never resumed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if st := r.status(s.ID); st.State != api.Running || r.hv.Boots(s.ID) != 1 {
		t.Fatalf("after a pause: %s, %d boots; want running, resumed (1 boot)", st.State, r.hv.Boots(s.ID))
	}
}

func TestRestartAdoptsAndCleans(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	keep, gone := spec(), spec()
	r.launch(keep)
	r.launch(gone)
	r.wait(keep.ID, api.Running)
	r.wait(gone.ID, api.Running)
	r.m.Close()

	// While nodectl is down: the cluster wants gone terminated (its record
	// says so, as if the terminate had been acknowledged just before the
	// crash), a domain nobody owns appears, and a crash left a directory
	// without a record.
	rec, err := readRecord(filepath.Join(r.dir, gone.ID))
	if err != nil {
		t.Fatal(err)
	}
	rec.Desired = api.Terminated
	if err := rec.write(filepath.Join(r.dir, gone.ID)); err != nil {
		t.Fatal(err)
	}
	drv := r.hv.Driver("node-1")
	if err := drv.Define(ctx, hypervisor.Domain{Name: "i-0000000000000a11e"}); err != nil {
		t.Fatal(err)
	}
	if err := drv.Start(ctx, "i-0000000000000a11e"); err != nil {
		t.Fatal(err)
	}
	other := r.hv.Driver("node-2")
	if err := other.Define(ctx, hypervisor.Domain{Name: "i-00000000000000b0b"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(r.dir, "i-000000000000c0ffe"), 0o755); err != nil {
		t.Fatal(err)
	}

	r.m = r.start()
	r.wait(gone.ID, api.Terminated)
	if st := r.status(keep.ID); st.State != api.Running || r.hv.Boots(keep.ID) != 1 {
		t.Errorf("the running instance was not adopted: %+v, %d boots", st, r.hv.Boots(keep.ID))
	}
	for {
		if _, err := drv.Inspect(ctx, "i-0000000000000a11e"); errors.Is(err, hypervisor.ErrNotFound) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := other.Inspect(ctx, "i-00000000000000b0b"); err != nil {
		t.Errorf("another node's domain was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "i-000000000000c0ffe")); !os.IsNotExist(err) {
		t.Error("a directory without a record survived the restart")
	}
}

func TestRestartResumesInterruptedLaunch(t *testing.T) {
	r := newRig(t)
	r.im.block = make(chan struct{})
	s := spec()
	r.launch(s)
	r.m.Close() // "crash" mid-download
	r.im.block = nil
	r.m = r.start()
	r.wait(s.ID, api.Running)
}

func TestLaunchRefusesBadSpecs(t *testing.T) {
	r := newRig(t)
	for name, mut := range map[string]func(*api.InstanceSpec){
		"bad id":    func(s *api.InstanceSpec) { s.ID = "i-../../etc" },
		"no kernel": func(s *api.InstanceSpec) { s.Kernel = nil },
		"no cores":  func(s *api.InstanceSpec) { s.Type.Cores = 0 },
	} {
		s := spec()
		mut(&s)
		if _, err := r.m.Launch(context.Background(), s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Launch = %v, want ErrInvalid", name, err)
		}
	}
}

// plain is a driver without the optional Ifacer.
type plain struct{ hypervisor.Driver }

func TestReportsIface(t *testing.T) {
	ctx := context.Background()
	ifaces := func(r *rig, id string) []string {
		t.Helper()
		names, err := r.hv.Driver("node-1").Ifaces(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	t.Run("running, stopped, started again, adopted", func(t *testing.T) {
		r := newRig(t)
		s := spec()
		r.launch(s)
		st := r.wait(s.ID, api.Running)
		first := ifaces(r, s.ID)
		if len(first) != 1 || st.Iface != first[0] {
			t.Fatalf("running: iface %q, driver has %v", st.Iface, first)
		}
		if _, err := r.m.Act(ctx, s.ID, api.VerbStop, api.ActionRequest{}); err != nil {
			t.Fatal(err)
		}
		if st := r.wait(s.ID, api.Stopped); st.Iface != "" {
			t.Errorf("stopped: iface %q, want none", st.Iface)
		}
		if _, err := r.m.Act(ctx, s.ID, api.VerbStart, api.ActionRequest{}); err != nil {
			t.Fatal(err)
		}
		st = r.wait(s.ID, api.Running)
		second := ifaces(r, s.ID)
		if len(second) != 1 || st.Iface != second[0] || st.Iface == first[0] {
			t.Errorf("restarted: iface %q, driver has %v, first boot had %v", st.Iface, second, first)
		}
		r.m.Close()
		r.m = r.start()
		for st = r.status(s.ID); st.Iface == ""; st = r.status(s.ID) {
			time.Sleep(2 * time.Millisecond)
		}
		if st.State != api.Running || st.Iface != second[0] || r.hv.Boots(s.ID) != 2 {
			t.Errorf("adopted: %+v, %d boots, want iface %s", st, r.hv.Boots(s.ID), second[0])
		}
	})
	t.Run("no nic", func(t *testing.T) {
		r := newRig(t)
		s := spec()
		s.MAC = ""
		r.launch(s)
		if st := r.wait(s.ID, api.Running); st.Iface != "" {
			t.Errorf("iface %q for a domain without a NIC", st.Iface)
		}
	})
	t.Run("driver cannot tell", func(t *testing.T) {
		r := newRig(t)
		r.m.Close()
		m, err := New(Config{Name: "node-1", Dir: t.TempDir(), Bridge: "br0", Poll: 10 * time.Millisecond},
			plain{r.hv.Driver("node-1")}, r.im, disks.Sparse{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		r.m = m
		s := spec()
		r.launch(s)
		if st := r.wait(s.ID, api.Running); st.Iface != "" {
			t.Errorf("iface %q from a driver without Ifaces", st.Iface)
		}
	})
}
