package dhcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many of dnsmasq's last log lines are kept to explain
// why it exited.
const tailLines = 8

// proc is one run of dnsmasq.
type proc struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	exited  chan struct{} // closed once reaped and its output read
	err     error         // how it ended; set before exited is closed

	// Guarded by Server.mu.
	ready      bool     // it serves: pid file written, hosts file read
	wantAtExec uint64   // hosts file generation on disk when it started
	reads      int      // attempts to read the hosts file, logged
	hups       []uint64 // hosts file generation sent with each SIGHUP
	startErr   string   // why the first read failed

	tailMu sync.Mutex
	tail   []string // last lines it logged
}

// remember keeps line among the last ones logged.
func (p *proc) remember(line string) {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) == tailLines {
		p.tail = append(p.tail[:0], p.tail[1:]...)
	}
	p.tail = append(p.tail, line)
}

// lastLines are the last lines it logged, joined.
func (p *proc) lastLines() string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return strings.Join(p.tail, " | ")
}

// launch starts dnsmasq and waits until it serves: its pid file names it
// and it has read the hosts file. Leases that would keep a reserved
// address from its MAC are dropped from the lease file first.
func (s *Server) launch(ctx context.Context) (*proc, error) {
	select {
	case <-s.restart: // this start is the restart asked for
	default:
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	err := s.purgeLeases()
	want := s.want
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := os.Remove(s.cfg.pidPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dhcp: remove pid file: %w", err)
	}

	argv := s.cfg.command()
	cmd := exec.Command(argv[0], argv[1:]...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("dhcp: pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: a Ctrl-C meant for the daemon does not reach
	// dnsmasq, which Close stops in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("dhcp: start dnsmasq: %w", err)
	}
	w.Close()
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), exited: make(chan struct{}), wantAtExec: want}
	s.log.Debug("dnsmasq started", "pid", p.pid, "argv", argv)
	s.mu.Lock()
	s.proc = p
	s.broadcast()
	s.mu.Unlock()

	logged := make(chan struct{})
	go func() {
		defer close(logged)
		s.readLog(p, r)
	}()
	go func() {
		p.err = cmd.Wait()
		select {
		case <-logged:
		case <-time.After(time.Second): // something it started holds the pipe
			r.Close()
		}
		close(p.exited)
	}()

	if err := s.waitServing(ctx, p); err != nil {
		s.stop(p)
		s.setProc(p, nil)
		return nil, err
	}
	return p, nil
}

// waitServing waits until p serves, then marks it ready.
func (s *Server) waitServing(ctx context.Context, p *proc) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		reads, startErr, closed := p.reads, p.startErr, s.closed
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if startErr != "" {
			return fmt.Errorf("dhcp: dnsmasq: %s (Dir must be readable by the user dnsmasq runs as, see Config.User)", startErr)
		}
		if reads > 0 && readPID(s.cfg.pidPath()) == p.pid {
			s.markReady(p)
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("dhcp: dnsmasq exited while starting: %v: %s", p.err, p.lastLines())
		case <-ctx.Done():
			return fmt.Errorf("dhcp: starting dnsmasq: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("dhcp: dnsmasq pid %d not serving after %s (pid file names %d; an Exec prefix must exec dnsmasq in place)",
				p.pid, startTimeout, readPID(s.cfg.pidPath()))
		case <-tick.C:
		}
	}
}

// markReady records that p serves the hosts file as it was when p started,
// and signals it if the file has changed since.
func (s *Server) markReady(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.ready = true
	s.applied = max(s.applied, p.wantAtExec)
	if s.want > p.wantAtExec {
		s.hup(p)
	}
	s.broadcast()
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.log.Info("dnsmasq serving", "pid", p.pid, "hosts", len(s.list))
}

// hup asks p to re-read the hosts file. s.mu is held.
func (s *Server) hup(p *proc) {
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		// It is exiting; the next run reads the file.
		s.log.Debug("dnsmasq not signalled", "pid", p.pid, "err", err)
		return
	}
	p.hups = append(p.hups, s.want)
	s.failed = min(s.failed, s.want-1) // a new attempt; an earlier failure no longer counts
}

// readLog logs what p writes, at debug level (warnings at warn level), and
// follows its reading of the hosts file.
func (s *Server) readLog(p *proc, r io.ReadCloser) {
	defer r.Close()
	hosts := s.cfg.hostsPath()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		msg := logMessage(line)
		p.remember(msg)
		switch {
		case msg == "read "+hosts:
			s.hostsRead(p, "")
		case strings.HasPrefix(msg, "cannot read "+hosts):
			s.hostsRead(p, msg)
		case strings.Contains(msg, "not using configured address"): // after a transaction ID with --log-dhcp
			s.mu.Lock()
			if s.staleLeases() {
				s.requestRestart("a lease holds an address now reserved for another mac")
			}
			s.mu.Unlock()
		}
		level := slog.LevelDebug
		if isWarning(msg) {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "dnsmasq", "pid", p.pid, "line", msg)
	}
}

// hostsRead records one attempt of p to read the hosts file: the first
// follows its start, each later one a SIGHUP, in order. errMsg is empty
// when it succeeded.
func (s *Server) hostsRead(p *proc, errMsg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.reads++
	switch i := p.reads - 2; {
	case i < 0:
		p.startErr = errMsg
	case i < len(p.hups) && errMsg == "":
		s.applied = max(s.applied, p.hups[i])
	case i < len(p.hups):
		s.failed, s.failMsg = max(s.failed, p.hups[i]), errMsg
	}
	s.broadcast()
}

// isWarning reports whether dnsmasq logged a problem rather than routine.
func isWarning(msg string) bool {
	m := strings.ToLower(msg)
	for _, w := range []string{"warning", "cannot", "failed", "error", "bad ", "not using configured address",
		"no address available", "unknown interface"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// stop ends p: SIGTERM, then SIGKILL after stopTimeout.
func (s *Server) stop(p *proc) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		s.log.Warn("dnsmasq ignored SIGTERM; killing it", "pid", p.pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	s.log.Info("dnsmasq stopped", "pid", p.pid)
}

// purgeLeases drops from the lease file the leases that hold an address
// now reserved for another MAC. dnsmasq must not be running. s.mu is held.
func (s *Server) purgeLeases() error {
	data, err := os.ReadFile(s.cfg.leasePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dhcp: read leases: %w", err)
	}
	keep, dropped := dropStaleLeases(data, s.list)
	if len(dropped) == 0 {
		return nil
	}
	if err := writeFileAtomic(s.cfg.leasePath(), keep, 0o644); err != nil {
		return fmt.Errorf("dhcp: write leases: %w", err)
	}
	s.log.Info("stale dhcp leases dropped", "leases", dropped)
	return nil
}

// stopStale stops the dnsmasq that the pid file names, if it is one that
// serves this server's hosts file: a previous run crashed and left it.
// Any other process the pid file may name now is left alone.
func (s *Server) stopStale(ctx context.Context) error {
	pid := readPID(s.cfg.pidPath())
	if pid <= 1 || !s.isOurs(pid) {
		return nil
	}
	s.log.Warn("stopping a dnsmasq left by a previous run", "pid", pid)
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, stopTimeout}, {syscall.SIGKILL, 2 * time.Second}} {
		if err := syscall.Kill(pid, step.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("dhcp: stop stale dnsmasq %d: %w", pid, err)
		}
		deadline := time.Now().Add(step.wait)
		for time.Now().Before(deadline) {
			if !s.isOurs(pid) {
				return nil
			}
			if !sleep(ctx, 20*time.Millisecond) {
				return fmt.Errorf("dhcp: stop stale dnsmasq %d: %w", pid, ctx.Err())
			}
		}
	}
	return fmt.Errorf("dhcp: stale dnsmasq %d does not exit", pid)
}

// isOurs reports whether pid is a live dnsmasq serving our hosts file. A
// zombie has an empty command line, so it is not.
func (s *Server) isOurs(pid int) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && isOurDnsmasq(cmdline, s.cfg.Binary, s.cfg.hostsPath())
}

// readPID is the process ID in a pid file, or 0.
func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}
