package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/koala-cloud/koala/pkg/durable"
)

// Errors SetHosts and Start return (wrapped).
var (
	// ErrClosed: the server has been closed.
	ErrClosed = errors.New("dhcp server closed")
	// ErrNotApplied: the hosts file is written, but dnsmasq has not loaded
	// it in time (it is down or restarting); it will when it comes back.
	ErrNotApplied = errors.New("dnsmasq has not loaded the hosts file")
)

// Timings of the supervisor.
const (
	startTimeout = 10 * time.Second       // exec to serving
	stopTimeout  = 5 * time.Second        // SIGTERM to SIGKILL
	applyTimeout = 10 * time.Second       // SetHosts waiting for dnsmasq
	minBackoff   = 250 * time.Millisecond // first restart delay
	maxBackoff   = 30 * time.Second
	stableAfter  = time.Minute // a run this long resets the backoff
)

// Server runs and supervises one dnsmasq serving DHCP on a bridge.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{} // closed once dnsmasq first serves

	setMu sync.Mutex // serializes SetHosts: one write, signal and wait at a time

	mu       sync.Mutex
	hosts    []byte        // the hosts file as last written or read
	list     []Host        // hosts, parsed
	want     uint64        // generation of the hosts file on disk
	applied  uint64        // generation dnsmasq serves
	failed   uint64        // generation dnsmasq failed to read
	failMsg  string        // why it failed
	proc     *proc         // the running dnsmasq; nil between runs
	changed  chan struct{} // closed and replaced when anything above changes
	started  bool
	starting chan struct{} // closed when the last Start returns
	closed   bool
	restart  chan struct{} // asks the supervisor for a restart (buffered 1)
	cancel   context.CancelFunc
	finished chan struct{} // closed when the supervisor has stopped dnsmasq
}

// New checks cfg, creates Dir, and reads the hosts file a previous run left
// there; the server has not started yet.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dhcp config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	cfg.Exec = slices.Clone(cfg.Exec)
	cfg.DNS = slices.Clone(cfg.DNS)
	s := &Server{
		cfg:      cfg,
		log:      log.With("bridge", cfg.Bridge),
		ready:    make(chan struct{}),
		changed:  make(chan struct{}),
		restart:  make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dhcp: state dir: %w", err)
	}
	if err := s.loadHosts(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start stops a dnsmasq that a crashed previous run left serving the same
// hosts file, starts dnsmasq and returns once it serves (or with the reason
// it could not; Start may then be tried again). dnsmasq then runs,
// restarted when it dies, until Close; ctx bounds the start only.
//
// dnsmasq starts with the hosts given to SetHosts before Start, else with
// the hosts file a previous run left in Dir, else with none.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.started {
		s.mu.Unlock()
		return errors.New("dhcp: already started")
	}
	s.started = true
	starting := make(chan struct{})
	s.starting = starting
	s.mu.Unlock()
	defer close(starting)

	var p *proc
	err := s.stopStale(ctx)
	if err == nil {
		p, err = s.launch(ctx)
	}
	if err != nil {
		s.mu.Lock()
		s.started = false // Start may be tried again
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	if s.closed { // Close came while dnsmasq was starting
		s.mu.Unlock()
		s.stop(p)
		s.setProc(p, nil)
		return ErrClosed
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.mu.Unlock()
	go s.supervise(life, p)
	return nil
}

// Ready is closed once dnsmasq serves for the first time.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// PID is the process ID of the dnsmasq serving now, or 0 when none does.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || !s.proc.ready {
		return 0
	}
	return s.proc.pid
}

// SetHosts makes hosts the complete set of guests served: it rewrites the
// hosts file atomically and has dnsmasq re-read it (SIGHUP), and returns
// once dnsmasq serves the new set. An unchanged set costs nothing. When a
// lease dnsmasq holds would keep an address from the MAC it is now
// reserved for, dnsmasq is restarted without that lease instead.
//
// Before Start, SetHosts only writes the file. Every host must be inside
// Subnet (not its network, broadcast or gateway address), and no MAC or IP
// may appear twice; otherwise nothing changes and the error wraps
// ErrInvalidHost. When dnsmasq does not load the new file within ten
// seconds (it is down and waiting to be restarted) the error wraps
// ErrNotApplied: the file is written, and served once dnsmasq is back.
func (s *Server) SetHosts(ctx context.Context, hosts []Host) error {
	if err := checkHosts(s.cfg.Subnet, s.cfg.Gateway, hosts); err != nil {
		return err
	}
	data := renderHosts(hosts)

	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	same, pending := bytes.Equal(data, s.hosts), s.applied < s.want
	retry := same && s.failed >= s.want // dnsmasq could not read it last time
	s.mu.Unlock()
	if same && !pending {
		return nil
	}
	if !same { // only SetHosts writes the file, under setMu
		if err := writeFileAtomic(s.cfg.hostsPath(), data, 0o644); err != nil {
			return fmt.Errorf("dhcp: write hosts: %w", err)
		}
	}

	s.mu.Lock()
	if !same {
		s.hosts, s.list = data, slices.Clone(hosts)
		s.want++
		s.log.Info("dhcp hosts written", "hosts", len(hosts), "generation", s.want)
	}
	if p := s.proc; p != nil && (!same || retry) {
		if s.staleLeases() {
			s.requestRestart("a lease holds an address now reserved for another mac")
		} else if p.ready {
			s.hup(p)
		}
		// Else dnsmasq is starting: it gets the signal once it serves.
	}
	gen, started := s.want, s.started
	s.mu.Unlock()
	if !started {
		return nil // Start serves the file
	}
	return s.waitApplied(ctx, gen)
}

// Close stops dnsmasq (SIGTERM, then SIGKILL) and the supervisor, and
// waits for both. The files in Dir stay for the next run.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.broadcast()
	starting := s.starting
	s.mu.Unlock()
	if starting != nil {
		<-starting // a Start in progress gives up
	}
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-s.finished
	}
	return nil
}

// supervise keeps dnsmasq running until ctx ends: p is the one Start
// launched.
func (s *Server) supervise(ctx context.Context, p *proc) {
	defer close(s.finished)
	backoff := minBackoff
	for {
		select {
		case <-ctx.Done():
			s.stop(p)
			s.setProc(p, nil)
			return
		case <-s.restart:
			s.log.Info("restarting dnsmasq", "pid", p.pid)
			s.stop(p)
			s.setProc(p, nil)
		case <-p.exited:
			up := time.Since(p.started)
			s.setProc(p, nil)
			if up >= stableAfter {
				backoff = minBackoff
			}
			s.log.Warn("dnsmasq exited; restarting", "pid", p.pid, "err", p.err, "uptime", up.Round(time.Millisecond),
				"retry_in", backoff, "stderr", p.lastLines())
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
		for {
			var err error
			if p, err = s.launch(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("dnsmasq did not start; retrying", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// waitApplied waits until dnsmasq serves generation gen of the hosts file.
func (s *Server) waitApplied(ctx context.Context, gen uint64) error {
	timer := time.NewTimer(applyTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		applied, failed, msg, closed, changed := s.applied, s.failed, s.failMsg, s.closed, s.changed
		s.mu.Unlock()
		switch {
		case applied >= gen:
			return nil
		case failed >= gen:
			return fmt.Errorf("dhcp: dnsmasq: %s", msg)
		case closed:
			return ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("dhcp: waiting for dnsmasq to load the hosts file: %w", ctx.Err())
		case <-timer.C:
			return fmt.Errorf("dhcp: after %s: %w", applyTimeout, ErrNotApplied)
		}
	}
}

// loadHosts reads the hosts file a previous run left in Dir. A file this
// package cannot read back, or whose hosts this configuration rejects, is
// replaced by an empty one: dnsmasq then starts with no hosts until
// SetHosts. Called by New only.
func (s *Server) loadHosts() error {
	data, err := os.ReadFile(s.cfg.hostsPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dhcp: read hosts: %w", err)
	}
	list, perr := parseHosts(data)
	if perr == nil {
		perr = checkHosts(s.cfg.Subnet, s.cfg.Gateway, list)
	}
	if err != nil || perr != nil {
		if perr != nil {
			s.log.Warn("dhcp hosts file from a previous run ignored", "path", s.cfg.hostsPath(), "err", perr)
		}
		data, list = nil, nil
		if err := writeFileAtomic(s.cfg.hostsPath(), nil, 0o644); err != nil {
			return fmt.Errorf("dhcp: write hosts: %w", err)
		}
	}
	s.hosts, s.list, s.want = data, list, 1
	return nil
}

// staleLeases reports whether the lease file holds a lease that
// dropStaleLeases would drop. s.mu is held.
func (s *Server) staleLeases() bool {
	data, err := os.ReadFile(s.cfg.leasePath())
	if err != nil {
		return false
	}
	_, dropped := dropStaleLeases(data, s.list)
	return len(dropped) > 0
}

// requestRestart asks the supervisor to restart dnsmasq. s.mu is held.
func (s *Server) requestRestart(why string) {
	if len(s.restart) == 0 {
		s.log.Info("dnsmasq restart requested", "reason", why)
	}
	select {
	case s.restart <- struct{}{}:
	default: // one is pending already
	}
}

// setProc replaces old by p as the running dnsmasq, if old still is.
func (s *Server) setProc(old, p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == old {
		s.proc = p
		s.broadcast()
	}
}

// broadcast wakes everyone waiting on s.changed. s.mu is held.
func (s *Server) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// writeFileAtomic replaces path by data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

// sleep waits d, or less when ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
