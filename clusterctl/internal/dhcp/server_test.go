package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeDnsmasq stands in for dnsmasq where the supervisor is under test: it
// writes its pid file, "reads" the hosts file at start and on SIGHUP
// (logging as dnsmasq does, failing while Dir/unreadable exists, and
// counting SIGHUPs in Dir/hups), and exits on SIGTERM.
const fakeDnsmasq = `#!/bin/sh
for a; do
	case $a in
	--pid-file=*) pf=${a#--pid-file=} ;;
	--dhcp-hostsfile=*) hf=${a#--dhcp-hostsfile=} ;;
	esac
done
readhosts() {
	if [ -r "$hf" ] && [ ! -e "$(dirname "$pf")/unreadable" ]; then echo "dnsmasq-dhcp[$$]: read $hf" >&2
	else echo "dnsmasq[$$]: cannot read $hf: Permission denied" >&2; fi
}
trap 'echo x >> "$(dirname "$pf")/hups"; readhosts' HUP
trap 'echo "dnsmasq[$$]: exiting on receipt of SIGTERM" >&2; exit 0' TERM
echo "dnsmasq[$$]: started, version fake DNS disabled" >&2
readhosts
echo $$ > "$pf"
while :; do sleep 0.05 >/dev/null 2>&1 & wait $!; done
`

// testLogger logs to t until the test's cleanups have run.
func testLogger(t *testing.T) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// fakeConfig is a config whose dnsmasq is fakeDnsmasq.
func fakeConfig(t *testing.T) Config {
	bin := filepath.Join(t.TempDir(), "dnsmasq")
	if err := os.WriteFile(bin, []byte(fakeDnsmasq), 0o755); err != nil {
		t.Fatal(err)
	}
	return Config{
		Bridge:    "kzdbr0",
		Subnet:    netip.MustParsePrefix("10.66.0.0/24"),
		Gateway:   netip.MustParseAddr("10.66.0.1"),
		LeaseTime: 2 * time.Minute,
		Dir:       filepath.Join(t.TempDir(), "dhcp"),
		Binary:    bin,
	}
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not closed after Start")
	}
	return s
}

func hups(t *testing.T, cfg Config) int {
	data, err := os.ReadFile(filepath.Join(cfg.Dir, "hups"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitNewPID waits until s serves with a dnsmasq other than old.
func waitNewPID(t *testing.T, s *Server, old int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if pid := s.PID(); pid != 0 && pid != old {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("dnsmasq %d was not replaced", old)
	return 0
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestServerSupervisesFake(t *testing.T) {
	cfg := fakeConfig(t)
	s := startServer(t, cfg)
	ctx := context.Background()

	pid := s.PID()
	if pid == 0 || readPID(cfg.pidPath()) != pid {
		t.Fatalf("PID() = %d, pid file %d", pid, readPID(cfg.pidPath()))
	}
	if got := readFile(t, cfg.hostsPath()); got != "" {
		t.Fatalf("hosts file at start = %q, want empty", got)
	}

	two := []Host{host(t, "02:00:00:00:00:02", "10.66.0.20", "guest2"), host(t, "02:00:00:00:00:01", "10.66.0.10", "guest1")}
	if err := s.SetHosts(ctx, two); err != nil {
		t.Fatalf("SetHosts: %v", err)
	}
	if got, want := readFile(t, cfg.hostsPath()), "02:00:00:00:00:01,10.66.0.10,guest1\n02:00:00:00:00:02,10.66.0.20,guest2\n"; got != want {
		t.Fatalf("hosts file = %q, want %q", got, want)
	}
	if n := hups(t, cfg); n != 1 {
		t.Fatalf("SIGHUPs after a change = %d, want 1", n)
	}
	if fi, err := os.Stat(cfg.hostsPath()); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("hosts file mode: %v %v, want 0644", fi.Mode(), err)
	}

	t.Run("unchanged set costs nothing", func(t *testing.T) {
		swapped := []Host{two[1], two[0]}
		if err := s.SetHosts(ctx, swapped); err != nil {
			t.Fatal(err)
		}
		if n := hups(t, cfg); n != 1 {
			t.Fatalf("SIGHUPs = %d, want still 1", n)
		}
	})

	t.Run("invalid set changes nothing", func(t *testing.T) {
		bad := append(two, host(t, "02:00:00:00:00:03", "10.99.0.1", ""))
		if err := s.SetHosts(ctx, bad); !errors.Is(err, ErrInvalidHost) {
			t.Fatalf("SetHosts = %v, want ErrInvalidHost", err)
		}
		if n := hups(t, cfg); n != 1 {
			t.Fatalf("SIGHUPs = %d, want still 1", n)
		}
	})

	t.Run("a failed re-read is reported and retried", func(t *testing.T) {
		marker := filepath.Join(cfg.Dir, "unreadable")
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHosts(ctx, two[1:]); err == nil || !strings.Contains(err.Error(), "cannot read") {
			t.Fatalf("SetHosts = %v, want dnsmasq's \"cannot read\"", err)
		}
		if err := os.Remove(marker); err != nil {
			t.Fatal(err)
		}
		before := hups(t, cfg)
		if err := s.SetHosts(ctx, two[1:]); err != nil {
			t.Fatalf("SetHosts again: %v", err)
		}
		if n := hups(t, cfg); n != before+1 {
			t.Fatalf("SIGHUPs = %d, want %d: the same set is signalled again", n, before+1)
		}
		if err := s.SetHosts(ctx, two); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("killed dnsmasq comes back", func(t *testing.T) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		pid2 := waitNewPID(t, s, pid)
		if readPID(cfg.pidPath()) != pid2 {
			t.Fatalf("pid file %d, want %d", readPID(cfg.pidPath()), pid2)
		}
		before := hups(t, cfg)
		if err := s.SetHosts(ctx, two[:1]); err != nil {
			t.Fatalf("SetHosts after restart: %v", err)
		}
		if n := hups(t, cfg); n != before+1 {
			t.Fatalf("SIGHUPs = %d, want %d", n, before+1)
		}
		pid = pid2
	})

	t.Run("a lease holding a reassigned address restarts dnsmasq without it", func(t *testing.T) {
		lease := "1795320370 02:00:00:00:00:09 10.66.0.30 old *\n"
		other := "1795320371 02:00:00:00:00:02 10.66.0.20 guest2 *\n"
		if err := os.WriteFile(cfg.leasePath(), []byte(lease+other), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHosts(ctx, []Host{two[0], host(t, "02:00:00:00:00:01", "10.66.0.30", "")}); err != nil {
			t.Fatalf("SetHosts: %v", err)
		}
		if got := s.PID(); got == pid || got == 0 {
			t.Fatalf("PID() = %d, want a new dnsmasq (was %d)", got, pid)
		}
		if got := readFile(t, cfg.leasePath()); got != other {
			t.Fatalf("leases = %q, want %q", got, other)
		}
		if alive(pid) {
			t.Fatalf("old dnsmasq %d still running", pid)
		}
		pid = s.PID()
	})

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.PID() != 0 {
		t.Fatalf("PID() after Close = %d", s.PID())
	}
	time.Sleep(50 * time.Millisecond)
	if alive(pid) {
		t.Fatalf("dnsmasq %d running after Close", pid)
	}
	if err := s.SetHosts(ctx, two); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetHosts after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSetHostsBeforeStart(t *testing.T) {
	cfg := fakeConfig(t)
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	one := []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "")}
	if err := s.SetHosts(context.Background(), one); err != nil {
		t.Fatalf("SetHosts before Start: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, cfg.hostsPath()); got != "02:00:00:00:00:01,10.66.0.10\n" {
		t.Fatalf("hosts = %q", got)
	}
	if err := s.SetHosts(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	if n := hups(t, cfg); n != 0 {
		t.Fatalf("SIGHUPs = %d, want 0: dnsmasq started with these hosts", n)
	}
}

func TestStartKeepsHostsOfPreviousRun(t *testing.T) {
	cfg := fakeConfig(t)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const prev = "02:00:00:00:00:01,10.66.0.10,guest1\n"
	if err := os.WriteFile(cfg.hostsPath(), []byte(prev), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg)
	if got := readFile(t, cfg.hostsPath()); got != prev {
		t.Fatalf("hosts = %q, want the previous run's %q", got, prev)
	}
	// The same set again is no change.
	if err := s.SetHosts(context.Background(), []Host{host(t, "02:00:00:00:00:01", "10.66.0.10", "guest1")}); err != nil {
		t.Fatal(err)
	}
	if n := hups(t, cfg); n != 0 {
		t.Fatalf("SIGHUPs = %d, want 0", n)
	}
}

func TestStartFails(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, cfg *Config)
		want   string
	}{
		{"binary missing", func(t *testing.T, cfg *Config) { cfg.Binary = filepath.Join(t.TempDir(), "nope") }, "start dnsmasq"},
		{"exits at once", func(t *testing.T, cfg *Config) { cfg.Binary = "/bin/false" }, "exited while starting"},
		{"hosts file unreadable", func(t *testing.T, cfg *Config) {
			// The fake reports "cannot read" like dnsmasq when it cannot.
			script := strings.Replace(fakeDnsmasq, `[ -r "$hf" ]`, `false`, 1)
			if err := os.WriteFile(cfg.Binary, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "cannot read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fakeConfig(t)
			tt.change(t, &cfg)
			s, err := New(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start = %v, want an error with %q", err, tt.want)
			}
			if s.PID() != 0 {
				t.Fatalf("PID() = %d after a failed start", s.PID())
			}
		})
	}
}

func TestStartStopsStaleDnsmasq(t *testing.T) {
	cfg := fakeConfig(t)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A process that looks like our dnsmasq in /proc/PID/cmdline.
	stale := exec.Command("/bin/sh", "-c", "while :; do sleep 0.05; done", "--dhcp-hostsfile="+cfg.hostsPath())
	stale.Args[0] = "dnsmasq"
	// Another process, not a dnsmasq: left alone when a pid file names it.
	other := exec.Command("/bin/sh", "-c", "while :; do sleep 0.05; done", "--dhcp-hostsfile="+cfg.hostsPath())
	for _, c := range []*exec.Cmd{stale, other} {
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
	}
	staleDone := make(chan error, 1)
	go func() { staleDone <- stale.Wait() }()

	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if err := os.WriteFile(cfg.pidPath(), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.stopStale(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !alive(other.Process.Pid) {
		t.Fatal("a process that is not a dnsmasq was killed")
	}

	if err := os.WriteFile(cfg.pidPath(), []byte(strconv.Itoa(stale.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-staleDone:
		if ws, ok := stale.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("stale dnsmasq ended with %v, want SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stale dnsmasq still running after Start")
	}
	if s.PID() == 0 || s.PID() == stale.Process.Pid {
		t.Fatalf("PID() = %d", s.PID())
	}
}

func TestCloseWhileStarting(t *testing.T) {
	cfg := fakeConfig(t)
	// A dnsmasq that never writes its pid file never serves.
	script := strings.Replace(fakeDnsmasq, `echo $$ > "$pf"`, `:`, 1)
	if err := os.WriteFile(cfg.Binary, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(context.Background()) }()
	for s.pidOfAny() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	pid := s.pidOfAny()
	begin := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Close took %s", d)
	}
	if err := <-started; !errors.Is(err, ErrClosed) {
		t.Fatalf("Start = %v, want ErrClosed", err)
	}
	time.Sleep(50 * time.Millisecond)
	if alive(pid) {
		t.Fatalf("dnsmasq %d alive after Close", pid)
	}
}

// pidOfAny is the pid of the dnsmasq running, serving or not.
func (s *Server) pidOfAny() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}
