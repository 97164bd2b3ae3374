package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/koala-cloud/koala/nodectl/internal/disks"
	"github.com/koala-cloud/koala/nodectl/internal/hypervisor"
	"github.com/koala-cloud/koala/pkg/api"
	"github.com/koala-cloud/koala/pkg/durable"
	"github.com/koala-cloud/koala/pkg/sched"
)

// Errors the API edge maps to EC2 codes.
var (
	ErrNotFound = errors.New("no such instance")
	ErrState    = errors.New("instance in the wrong state")
	ErrInvalid  = errors.New("invalid instance spec")
)

// Config tunes a Manager.
type Config struct {
	Name      string          // the node's name: the owner of its domains
	Dir       string          // instance directories
	Bridge    string          // host bridge the instances' NICs join
	Cmdline   string          // kernel command line
	Capacity  sched.Resources // what the node offers
	StopGrace time.Duration   // how long a stop waits for the guest
	Keep      time.Duration   // how long a terminated instance is reported
	Poll      time.Duration   // how often domains are checked
}

// Images is the node's image cache.
type Images interface {
	Get(ctx context.Context, ref api.ImageRef) (string, error)
}

// Ifacer is a driver that reports the host-side devices of a running
// domain's NICs (libvirt's "vnet3"), in the order the domain defines
// them; optional.
type Ifacer interface {
	Ifaces(ctx context.Context, name string) ([]string, error)
}

// Volumes attaches EBS volumes to instances; optional.
type Volumes interface {
	Attach(ctx context.Context, instance string, v api.VolumeAttachment) error
	Detach(ctx context.Context, instance string, v api.VolumeAttachment) error
	// Forget lets go of the volumes of an instance that ended.
	Forget(ctx context.Context, instance string)
}

// Manager runs a node's instances.
type Manager struct {
	cfg    Config
	drv    hypervisor.Driver
	images Images
	disks  disks.Maker
	vols   Volumes
	log    *slog.Logger

	mu      sync.Mutex
	insts   map[string]*instance
	gen     uint64
	changed chan struct{}

	bg   context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// instance is one instance in memory; its fields are guarded by
// Manager.mu.
type instance struct {
	rec    record
	busy   bool               // a converger runs
	dirty  bool               // the record changed under the converger
	cancel context.CancelFunc // preempts the converger
	// iface is the host device of the NIC of the running domain, looked
	// up after each start (or adoption): Status never asks the driver.
	iface string
}

var idRE = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// New returns a manager; Start loads what is on disk and runs it.
func New(cfg Config, drv hypervisor.Driver, images Images, dm disks.Maker, log *slog.Logger) (*Manager, error) {
	if cfg.Name == "" || cfg.Dir == "" {
		return nil, errors.New("node: name and dir are required")
	}
	if cfg.Cmdline == "" {
		cfg.Cmdline = "console=ttyS0 root=/dev/vda"
	}
	if cfg.Keep <= 0 {
		cfg.Keep = time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return &Manager{cfg: cfg, drv: drv, images: images, disks: dm, log: log,
		insts: map[string]*instance{}, changed: make(chan struct{}, 1)}, nil
}

// SetVolumes gives the manager what attaches volumes; call before Start.
func (m *Manager) SetVolumes(v Volumes) { m.vols = v }

// Changed signals after instance states change, for the status pusher.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Start loads the instance directories, adopts running domains, resumes
// interrupted work and starts watching domains. It returns once the
// records are loaded.
func (m *Manager) Start(ctx context.Context) error {
	m.bg, m.stop = context.WithCancel(context.WithoutCancel(ctx))
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	m.mu.Lock()
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(m.cfg.Dir, e.Name())
		rec, err := readRecord(dir)
		if errors.Is(err, os.ErrNotExist) {
			// A crash between making the directory and writing the record:
			// nothing was acknowledged, nothing runs.
			m.log.Info("removing an instance directory without a record", "dir", dir)
			_ = os.RemoveAll(dir)
			continue
		}
		if err != nil {
			m.log.Error("unreadable instance record; leaving it", "dir", dir, "err", err)
			continue
		}
		m.gen = max(m.gen, rec.Generation)
		m.insts[rec.Spec.ID] = &instance{rec: rec}
	}
	for _, in := range m.insts {
		if in.rec.State != api.Terminated || !in.rec.Cleaned {
			m.kickLocked(in, false)
		}
	}
	n := len(m.insts)
	m.mu.Unlock()
	m.log.Info("node started", "node", m.cfg.Name, "instances", n)
	m.wg.Add(1)
	go m.watch()
	return nil
}

// Close stops the convergers and the watcher; domains keep running.
func (m *Manager) Close() {
	if m.stop != nil {
		m.stop()
	}
	m.wg.Wait()
}

func (m *Manager) dir(id string) string { return filepath.Join(m.cfg.Dir, id) }

// notify wakes the status pusher.
func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// save bumps an instance's generation and writes its record, under m.mu.
func (m *Manager) saveLocked(in *instance) error {
	m.gen++
	in.rec.Generation = m.gen
	err := in.rec.write(m.dir(in.rec.Spec.ID))
	m.notify()
	return err
}

// setState moves an instance to state with reason and writes it.
func (m *Manager) setState(in *instance, state string, reason *api.Reason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in.rec.State == state && reason == nil {
		return
	}
	in.rec.State, in.rec.Since = state, time.Now().UTC()
	if reason != nil {
		in.rec.Reason = reason
	}
	if err := m.saveLocked(in); err != nil {
		m.log.Error("saving instance state", "instance_id", in.rec.Spec.ID, "err", err)
	}
}

// Launch accepts an instance to run. It returns once the instance's
// record is on disk; the launch goes on in the background. Launching an
// instance the node has is a no-op that reports it.
func (m *Manager) Launch(ctx context.Context, spec api.InstanceSpec) (api.InstanceStatus, error) {
	if err := validate(spec); err != nil {
		return api.InstanceStatus{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if in, ok := m.insts[spec.ID]; ok {
		return m.statusLocked(in), nil
	}
	dir := m.dir(spec.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return api.InstanceStatus{}, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	spec.Node = m.cfg.Name
	in := &instance{rec: record{Spec: spec, State: api.Pending, Desired: api.Running, Since: time.Now().UTC()}}
	if err := m.saveLocked(in); err != nil {
		_ = os.RemoveAll(dir)
		return api.InstanceStatus{}, err
	}
	if err := durable.SyncDir(m.cfg.Dir); err != nil {
		return api.InstanceStatus{}, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	m.insts[spec.ID] = in
	m.kickLocked(in, false)
	return m.statusLocked(in), nil
}

func validate(s api.InstanceSpec) error {
	switch {
	case !idRE.MatchString(s.ID):
		return fmt.Errorf("%w: instance id %q", ErrInvalid, s.ID)
	case s.Type.Cores <= 0 || s.Type.MemoryMiB <= 0:
		return fmt.Errorf("%w: type %+v", ErrInvalid, s.Type)
	case s.Kernel == nil:
		return fmt.Errorf("%w: %s has no kernel", ErrInvalid, s.ID)
	}
	return nil
}

// Act runs an instance action. Terminating an instance the node does not
// have succeeds: it is gone.
func (m *Manager) Act(ctx context.Context, id, verb string, req api.ActionRequest) (api.InstanceStatus, error) {
	m.mu.Lock()
	in, ok := m.insts[id]
	if !ok {
		m.mu.Unlock()
		if verb == api.VerbTerminate {
			return api.InstanceStatus{ID: id, State: api.Terminated, Node: m.cfg.Name}, nil
		}
		return api.InstanceStatus{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	r := &in.rec
	var err error
	switch verb {
	case api.VerbTerminate:
		if r.Desired != api.Terminated {
			r.Desired = api.Terminated
			err = m.saveLocked(in)
			m.kickLocked(in, true)
		}
	case api.VerbStop:
		switch {
		case r.Desired == api.Terminated:
			err = fmt.Errorf("stop %s: %w: %s", id, ErrState, r.State)
		case r.Desired != api.Stopped:
			r.Desired = api.Stopped
			err = m.saveLocked(in)
			m.kickLocked(in, false)
		}
	case api.VerbStart:
		switch {
		case r.Desired == api.Terminated:
			err = fmt.Errorf("start %s: %w: %s", id, ErrState, r.State)
		case r.Desired != api.Running:
			r.Desired = api.Running
			err = m.saveLocked(in)
			m.kickLocked(in, false)
		}
	case api.VerbModify:
		if r.State != api.Stopped || req.Type == nil {
			err = fmt.Errorf("modify %s: %w: %s", id, ErrState, r.State)
			break
		}
		r.Spec.Type = *req.Type
		err = m.saveLocked(in)
	case api.VerbAttachVolume, api.VerbDetachVolume:
		switch {
		case m.vols == nil || req.Volume == nil:
			err = fmt.Errorf("%w: this node attaches no volumes", ErrInvalid)
		case verb == api.VerbAttachVolume && r.State != api.Running:
			err = fmt.Errorf("attach a volume to %s: %w: %s", id, ErrState, r.State)
		default:
			m.mu.Unlock()
			if verb == api.VerbAttachVolume {
				err = m.vols.Attach(ctx, id, *req.Volume)
			} else {
				err = m.vols.Detach(ctx, id, *req.Volume)
			}
			m.mu.Lock()
		}
	case api.VerbReboot:
		if r.State != api.Running {
			err = fmt.Errorf("reboot %s: %w: %s", id, ErrState, r.State)
			break
		}
		m.mu.Unlock()
		err = m.drv.Reboot(ctx, id)
		m.mu.Lock()
	default:
		err = fmt.Errorf("%w: unknown action %q", ErrInvalid, verb)
	}
	st := m.statusLocked(in)
	m.mu.Unlock()
	return st, err
}

// kickLocked makes the instance's converger run (again); preempt cancels
// one that is running, for a terminate that must not wait for a launch.
func (m *Manager) kickLocked(in *instance, preempt bool) {
	if in.busy {
		in.dirty = true
		if preempt && in.cancel != nil {
			in.cancel()
		}
		return
	}
	in.busy, in.dirty = true, true
	m.wg.Add(1)
	go m.converge(in)
}

// converge moves an instance towards its desired state until the record
// stops changing under it.
func (m *Manager) converge(in *instance) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		if !in.dirty || m.bg.Err() != nil {
			in.busy, in.cancel = false, nil
			m.mu.Unlock()
			return
		}
		in.dirty = false
		ctx, cancel := context.WithCancel(m.bg)
		in.cancel = cancel
		rec := in.rec
		m.mu.Unlock()
		err := m.step(ctx, in, rec)
		preempted := ctx.Err() != nil
		cancel()
		if err != nil && !preempted {
			m.fail(in, err)
		}
	}
}

// fail ends an instance whose launch or restart failed in terminated,
// with the reason.
func (m *Manager) fail(in *instance, err error) {
	m.log.Warn("instance failed", "instance_id", in.rec.Spec.ID, "err", err)
	m.mu.Lock()
	in.rec.Desired = api.Terminated
	in.rec.Reason = reasonFor(err)
	if serr := m.saveLocked(in); serr != nil {
		m.log.Error("saving instance state", "instance_id", in.rec.Spec.ID, "err", serr)
	}
	in.dirty = true
	m.mu.Unlock()
}

// step does what one record asks.
func (m *Manager) step(ctx context.Context, in *instance, rec record) error {
	id := rec.Spec.ID
	switch rec.Desired {
	case api.Terminated:
		if rec.State == api.Terminated && rec.Cleaned {
			return nil
		}
		if rec.State != api.Terminated {
			m.setState(in, api.ShuttingDown, nil)
		}
		if err := m.drv.Destroy(ctx, id); err != nil {
			return m.retryLater(ctx, in, fmt.Errorf("destroy %s: %w", id, err))
		}
		m.removeDisks(id)
		if m.vols != nil {
			m.vols.Forget(ctx, id)
		}
		reason := rec.Reason
		if reason == nil {
			reason = &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"}
		}
		m.mu.Lock()
		in.rec.State, in.rec.Since, in.rec.Reason, in.rec.Cleaned = api.Terminated, time.Now().UTC(), reason, true
		in.rec.Images = nil
		if err := m.saveLocked(in); err != nil {
			m.log.Error("saving instance state", "instance_id", id, "err", err)
		}
		m.mu.Unlock()
		return nil
	case api.Stopped:
		if rec.State == api.Stopped {
			return nil
		}
		if rec.State == api.Pending {
			// Finish setting it up, so that a start finds it whole.
			if err := m.prepare(ctx, in, rec); err != nil {
				return err
			}
		} else {
			m.setState(in, api.Stopping, nil)
			if err := m.drv.Stop(ctx, id, m.cfg.StopGrace); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
				return m.retryLater(ctx, in, fmt.Errorf("stop %s: %w", id, err))
			}
		}
		m.setState(in, api.Stopped, &api.Reason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"})
		return nil
	default: // running
		if rec.State == api.Running {
			info, err := m.drv.Inspect(ctx, id)
			if err == nil && info.State == hypervisor.Running {
				m.lookupIface(ctx, in) // adopted
				return nil
			}
			m.log.Info("restarting an instance whose domain is not running", "instance_id", id)
		}
		if rec.State != api.Pending {
			m.setState(in, api.Pending, nil)
		}
		m.mu.Lock()
		in.iface = "" // a new boot gets a new device
		m.mu.Unlock()
		if err := m.prepare(ctx, in, rec); err != nil {
			return err
		}
		if err := m.drv.Start(ctx, id); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		iface := m.iface(ctx, rec.Spec)
		m.mu.Lock()
		in.iface = iface
		in.rec.State, in.rec.Since, in.rec.Reason = api.Running, time.Now().UTC(), nil
		if err := m.saveLocked(in); err != nil {
			m.log.Error("saving instance state", "instance_id", id, "err", err)
		}
		m.mu.Unlock()
		return nil
	}
}

// hasNIC reports whether the instance's domain has a NIC on the bridge.
func (m *Manager) hasNIC(s api.InstanceSpec) bool { return m.cfg.Bridge != "" && s.MAC != "" }

// iface looks up the host device of a running instance's NIC: "" when
// the driver cannot tell, or the domain has no NIC. A failure is logged;
// the watcher tries again.
func (m *Manager) iface(ctx context.Context, s api.InstanceSpec) string {
	f, ok := m.drv.(Ifacer)
	if !ok || !m.hasNIC(s) {
		return ""
	}
	names, err := f.Ifaces(ctx, s.ID)
	if err != nil || len(names) == 0 {
		if ctx.Err() == nil {
			m.log.Warn("looking up the instance's host device", "instance_id", s.ID, "err", err)
		}
		return ""
	}
	return names[0]
}

// lookupIface refreshes the cached device of a running instance and
// reports a change.
func (m *Manager) lookupIface(ctx context.Context, in *instance) {
	m.mu.Lock()
	spec := in.rec.Spec
	m.mu.Unlock()
	iface := m.iface(ctx, spec)
	if iface == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if in.iface == iface || in.rec.State != api.Running {
		return
	}
	in.iface = iface
	if err := m.saveLocked(in); err != nil {
		m.log.Error("saving instance state", "instance_id", spec.ID, "err", err)
	}
}

// retryLater keeps a failed cleanup step for the watcher's next round
// instead of failing the instance.
func (m *Manager) retryLater(ctx context.Context, in *instance, err error) error {
	m.log.Warn("will retry", "instance_id", in.rec.Spec.ID, "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(m.cfg.Poll):
		m.mu.Lock()
		in.dirty = true
		m.mu.Unlock()
	}
	return nil
}

// prepare stages the images, makes the disks that are missing and
// defines the domain. Every step may be repeated.
func (m *Manager) prepare(ctx context.Context, in *instance, rec record) error {
	s := rec.Spec
	refs := []api.ImageRef{*s.Kernel, s.Image}
	if s.Ramdisk != nil {
		refs = append(refs, *s.Ramdisk)
	}
	shas := make([]string, len(refs))
	for i, r := range refs {
		shas[i] = r.SHA256
	}
	m.mu.Lock()
	in.rec.Images = shas
	m.mu.Unlock()
	paths := make([]string, len(refs))
	for i, r := range refs {
		p, err := m.images.Get(ctx, r)
		if err != nil {
			return &stepError{code: "Server.InternalError", msg: "could not fetch image " + r.ID, err: err}
		}
		paths[i] = p
	}
	dir := m.dir(s.ID)
	root := filepath.Join(dir, "root."+m.disks.Format())
	if _, err := os.Stat(root); err != nil {
		if err := m.disks.Overlay(ctx, paths[1], root); err != nil {
			return &stepError{code: "Server.InternalError", msg: "could not create the root disk", err: err}
		}
	}
	ephemeral := filepath.Join(dir, "ephemeral."+m.disks.Format())
	if _, err := os.Stat(ephemeral); err != nil && s.Type.DiskGiB > 0 {
		if err := m.disks.Blank(ctx, ephemeral, s.Type.DiskGiB); err != nil {
			return &stepError{code: "Server.InternalError", msg: "could not create the ephemeral disk", err: err}
		}
	}
	d := m.domain(s, paths, root, ephemeral)
	if err := m.drv.Define(ctx, d); err != nil && !errors.Is(err, hypervisor.ErrRunning) {
		return &stepError{code: "Server.InternalError", msg: "could not define the virtual machine", err: err}
	}
	return nil
}

func (m *Manager) domain(s api.InstanceSpec, paths []string, root, ephemeral string) hypervisor.Domain {
	d := hypervisor.Domain{
		Name: s.ID, Cores: s.Type.Cores, MemoryMiB: s.Type.MemoryMiB, Kernel: paths[0], Cmdline: m.cfg.Cmdline,
		Disks:       []hypervisor.Disk{{Path: root, Format: m.disks.Format(), Target: "vda"}},
		ConsolePath: filepath.Join(m.dir(s.ID), "console.log"), Serial: s.ID,
		Metadata: hypervisor.Metadata{InstanceID: s.ID, AccountID: s.AccountID, Reservation: s.ReservationID,
			ImageID: s.Image.ID, Type: s.Type.Name},
	}
	if len(paths) > 2 {
		d.Ramdisk = paths[2]
	}
	if s.Type.DiskGiB > 0 {
		d.Disks = append(d.Disks, hypervisor.Disk{Path: ephemeral, Format: m.disks.Format(), Target: "vdb"})
	}
	if m.cfg.Bridge != "" && s.MAC != "" {
		d.NICs = []hypervisor.NIC{{Bridge: m.cfg.Bridge, MAC: s.MAC}}
	}
	return d
}

// removeDisks deletes a terminated instance's disks; the record and the
// console log stay while the instance is reported.
func (m *Manager) removeDisks(id string) {
	entries, _ := os.ReadDir(m.dir(id))
	for _, e := range entries {
		if e.Name() != recordFile && e.Name() != "console.log" {
			_ = os.RemoveAll(filepath.Join(m.dir(id), e.Name()))
		}
	}
}

// stepError is a failure with the StateReason it gives the instance.
type stepError struct {
	code, msg string
	err       error
}

func (e *stepError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func reasonFor(err error) *api.Reason {
	var se *stepError
	if errors.As(err, &se) {
		return &api.Reason{Code: se.code, Message: se.code + ": " + se.Error()}
	}
	return &api.Reason{Code: "Server.InternalError", Message: "Server.InternalError: " + err.Error()}
}

// watch checks the domains every Poll: it destroys domains of this node
// that no live instance owns, notices guests that stopped by themselves,
// and forgets terminated instances after Keep.
func (m *Manager) watch() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	for {
		m.check(m.bg)
		select {
		case <-m.bg.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) check(ctx context.Context) {
	listed := time.Now().UTC()
	domains, err := m.drv.List(ctx)
	if err != nil {
		m.log.Warn("listing domains", "err", err)
		return
	}
	seen := map[string]hypervisor.State{}
	for _, d := range domains {
		seen[d.Name] = d.State
	}
	var orphans, paused []string
	var lookups []*instance
	m.mu.Lock()
	for _, d := range domains {
		in := m.insts[d.Name]
		if in == nil || (in.rec.Desired == api.Terminated && !in.busy && in.rec.Cleaned) {
			orphans = append(orphans, d.Name)
		}
	}
	now := time.Now()
	for id, in := range m.insts {
		r := &in.rec
		switch {
		case in.busy:
		case r.State == api.Running && r.Desired == api.Running && seen[id] == hypervisor.Running && in.iface == "" &&
			m.hasNIC(r.Spec):
			lookups = append(lookups, in)
		case r.State == api.Terminated && r.Cleaned && now.Sub(r.Since) > m.cfg.Keep:
			delete(m.insts, id)
			_ = os.RemoveAll(m.dir(id))
			m.notify()
		case r.State == api.Running && r.Desired == api.Running && seen[id] == hypervisor.Paused:
			// Never paused by us: a start cut short (nodectl killed in it)
			// can leave it so. Start resumes it.
			paused = append(paused, id)
		case r.State == api.Running && r.Desired == api.Running && seen[id] != hypervisor.Running && r.Since.Before(listed):
			// (An instance that became running after the listing is not
			// in it yet.)
			reason := &api.Reason{Code: "Client.InstanceInitiatedShutdown", Message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown"}
			switch st, ok := seen[id]; {
			case !ok:
				reason = &api.Reason{Code: "Server.InternalError", Message: "Server.InternalError: the instance's virtual machine disappeared"}
			case st == hypervisor.Crashed:
				reason = &api.Reason{Code: "Server.InternalError", Message: "Server.InternalError: the instance's virtual machine crashed"}
			}
			m.log.Info("instance stopped by itself", "instance_id", id, "domain", seen[id])
			r.Desired, r.Reason = api.Terminated, reason
			if err := m.saveLocked(in); err != nil {
				m.log.Error("saving instance state", "instance_id", id, "err", err)
			}
			m.kickLocked(in, false)
		}
	}
	m.mu.Unlock()
	if _, ok := m.drv.(Ifacer); ok {
		for _, in := range lookups {
			m.lookupIface(ctx, in)
		}
	}
	for _, id := range paused {
		m.log.Warn("instance's domain is paused: resuming it", "instance_id", id)
		if err := m.drv.Start(ctx, id); err != nil {
			m.log.Warn("resuming a paused domain", "instance_id", id, "err", err)
		}
	}
	for _, name := range orphans {
		m.log.Info("destroying a domain no instance owns", "domain", name)
		if err := m.drv.Destroy(ctx, name); err != nil {
			m.log.Warn("destroying an orphan domain", "domain", name, "err", err)
		}
	}
}

// InUse reports whether a live instance's disks use the image with this
// digest: the image cache keeps it.
func (m *Manager) InUse(sha string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range m.insts {
		for _, s := range in.rec.Images {
			if s == sha {
				return true
			}
		}
	}
	return false
}

func (m *Manager) statusLocked(in *instance) api.InstanceStatus {
	r := in.rec
	st := api.InstanceStatus{ID: r.Spec.ID, State: r.State, Reason: r.Reason, Node: m.cfg.Name, MAC: r.Spec.MAC,
		PrivateIP: r.Spec.PrivateIP, Type: r.Spec.Type.Name, Since: r.Since, Generation: r.Generation}
	if r.State == api.Running {
		st.Iface = in.iface
	}
	return st
}

// Status reports the node and its instances.
func (m *Manager) Status() api.NodeStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := api.NodeStatus{Name: m.cfg.Name, Capacity: m.cfg.Capacity, Instances: make([]api.InstanceStatus, 0, len(m.insts))}
	for _, in := range m.insts {
		st.Instances = append(st.Instances, m.statusLocked(in))
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].ID < st.Instances[j].ID })
	return st
}

// ConsoleTail is how much console output GetConsoleOutput returns.
const ConsoleTail = 64 << 10

// Console returns the last 64 KiB of an instance's console.
func (m *Manager) Console(ctx context.Context, id string) (api.ConsoleOutput, error) {
	m.mu.Lock()
	_, ok := m.insts[id]
	m.mu.Unlock()
	if !ok {
		return api.ConsoleOutput{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	f, err := os.Open(filepath.Join(m.dir(id), "console.log"))
	if errors.Is(err, os.ErrNotExist) {
		return api.ConsoleOutput{Timestamp: time.Now().UTC()}, nil
	}
	if err != nil {
		return api.ConsoleOutput{}, fmt.Errorf("console %s: %w", id, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return api.ConsoleOutput{}, fmt.Errorf("console %s: %w", id, err)
	}
	if st.Size() > ConsoleTail {
		if _, err := f.Seek(st.Size()-ConsoleTail, io.SeekStart); err != nil {
			return api.ConsoleOutput{}, fmt.Errorf("console %s: %w", id, err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, ConsoleTail))
	if err != nil {
		return api.ConsoleOutput{}, fmt.Errorf("console %s: %w", id, err)
	}
	return api.ConsoleOutput{Output: data, Timestamp: st.ModTime().UTC()}, nil
}
