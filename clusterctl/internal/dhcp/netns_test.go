package dhcp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The integration test builds, from network namespaces:
//
//	kzd-host-X: bridge kzdbr0 10.66.0.1/24, ports kzdp1 kzdp2; dnsmasq runs here
//	kzd-c1-X:   kzdv0 02:6b:7a:64:00:01, veth peer of kzdp1
//	kzd-c2-X:   kzdv0 02:6b:7a:64:00:02, veth peer of kzdp2
//
// and asks for leases with busybox udhcpc in the client namespaces.

const (
	labBridge = "kzdbr0"
	labGW     = "10.66.0.1"
	labMAC1   = "02:6b:7a:64:00:01"
	labMAC2   = "02:6b:7a:64:00:02"
)

// skipOrFail skips the test, or fails it under CI=true where everything it
// needs must be present.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

type lab struct {
	host, c1, c2 string
}

// run runs a command and fails the test when it fails.
func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newLab builds the namespaces, removed by t.Cleanup.
func newLab(t *testing.T) *lab {
	t.Helper()
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	l := &lab{host: "kzd-host-" + suffix, c1: "kzd-c1-" + suffix, c2: "kzd-c2-" + suffix}
	for _, ns := range []string{l.host, l.c1, l.c2} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			skipOrFail(t, "cannot create network namespaces: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	run(t, "ip", "-n", l.host, "link", "set", "lo", "up")
	l.addBridge(t)
	for i, c := range []struct{ ns, mac string }{{l.c1, labMAC1}, {l.c2, labMAC2}} {
		port := fmt.Sprintf("kzdp%d", i+1)
		run(t, "ip", "link", "add", "kzdv0", "netns", c.ns, "type", "veth", "peer", "name", port, "netns", l.host)
		run(t, "ip", "-n", l.host, "link", "set", port, "master", labBridge, "up")
		run(t, "ip", "-n", c.ns, "link", "set", "kzdv0", "address", c.mac)
		run(t, "ip", "-n", c.ns, "link", "set", "kzdv0", "up")
	}
	return l
}

// addBridge creates the bridge with the gateway's address.
func (l *lab) addBridge(t *testing.T) {
	t.Helper()
	run(t, "ip", "-n", l.host, "link", "add", labBridge, "type", "bridge")
	run(t, "ip", "-n", l.host, "addr", "add", labGW+"/24", "dev", labBridge)
	run(t, "ip", "-n", l.host, "link", "set", labBridge, "up")
}

// recreateBridge deletes the bridge and makes it again, ports included.
func (l *lab) recreateBridge(t *testing.T) {
	t.Helper()
	run(t, "ip", "-n", l.host, "link", "del", labBridge)
	time.Sleep(200 * time.Millisecond)
	l.addBridge(t)
	run(t, "ip", "-n", l.host, "link", "set", "kzdp1", "master", labBridge)
	run(t, "ip", "-n", l.host, "link", "set", "kzdp2", "master", labBridge)
}

// offer is what udhcpc handed its script on "bound".
type offer struct {
	IP, Router, Subnet, DNS, Domain, Hostname string
}

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) echo "lease|$ip|$router|$subnet|$dns|$domain|$hostname" ;;
esac
`

// dhcp runs udhcpc in namespace ns and returns the lease it got, or false.
func dhcp(t *testing.T, ns, script string) (offer, bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns,
		"/bin/busybox", "udhcpc", "-i", "kzdv0", "-n", "-q", "-t", "3", "-T", "1", "-s", script).CombinedOutput()
	t.Logf("udhcpc in %s: err=%v\n%s", ns, err, out)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, "|"); len(f) == 7 && f[0] == "lease" {
			return offer{IP: f[1], Router: f[2], Subnet: f[3], DNS: f[4], Domain: f[5], Hostname: f[6]}, err == nil
		}
	}
	return offer{}, false
}

// wantLease asks for a lease in ns and fails unless it is for ip.
func wantLease(t *testing.T, ns, script, ip string) offer {
	t.Helper()
	got, ok := dhcp(t, ns, script)
	if !ok || got.IP != ip {
		t.Fatalf("lease in %s = %+v (ok %v), want ip %s", ns, got, ok, ip)
	}
	return got
}

func TestDnsmasqInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for network namespaces")
	}
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		skipOrFail(t, "dnsmasq not installed: %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		skipOrFail(t, "busybox (udhcpc) not installed: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "iproute2 not installed: %v", err)
	}
	l := newLab(t)

	// dnsmasq drops root: its directory must be reachable by nobody.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Bridge:    labBridge,
		Subnet:    netip.MustParsePrefix("10.66.0.0/24"),
		Gateway:   netip.MustParseAddr(labGW),
		DNS:       []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		Domain:    "kzd.test",
		LeaseTime: 2 * time.Minute,
		Dir:       filepath.Join(dir, "dhcp"),
		Binary:    bin,
		Exec:      []string{"ip", "netns", "exec", l.host},
		LogDHCP:   true,
	}
	if err := os.Mkdir(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// A dnsmasq that a crashed previous run left serving our hosts file.
	argv := cfg.withDefaults().command()
	stale := exec.Command(argv[0], argv[1:]...)
	if err := stale.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.Process.Kill(); stale.Wait() })
	staleDone := make(chan struct{})
	go func() { stale.Wait(); close(staleDone) }()
	for deadline := time.Now().Add(5 * time.Second); readPID(cfg.pidPath()) != stale.Process.Pid; {
		if time.Now().After(deadline) {
			t.Fatal("stale dnsmasq did not write its pid file")
		}
		time.Sleep(20 * time.Millisecond)
	}

	s := startServer(t, cfg)
	ctx := context.Background()
	select {
	case <-staleDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Start left the stale dnsmasq running")
	}
	pid := s.PID()
	t.Logf("dnsmasq pid %d (replaced stale %d)", pid, stale.Process.Pid)

	c1 := host(t, labMAC1, "10.66.0.10", "guest1")
	c2 := host(t, labMAC2, "10.66.0.20", "guest2")

	t.Run("known mac gets its lease and options", func(t *testing.T) {
		if err := s.SetHosts(ctx, []Host{c1}); err != nil {
			t.Fatal(err)
		}
		got := wantLease(t, l.c1, script, "10.66.0.10")
		want := offer{IP: "10.66.0.10", Router: labGW, Subnet: "255.255.255.0", DNS: "192.0.2.53", Domain: "kzd.test", Hostname: "guest1"}
		if got != want {
			t.Fatalf("lease = %+v, want %+v", got, want)
		}
	})

	t.Run("unknown mac gets nothing", func(t *testing.T) {
		if got, ok := dhcp(t, l.c2, script); ok || got.IP != "" {
			t.Fatalf("unknown client got %+v", got)
		}
	})

	t.Run("added mac gets its lease without a restart", func(t *testing.T) {
		if err := s.SetHosts(ctx, []Host{c1, c2}); err != nil {
			t.Fatal(err)
		}
		wantLease(t, l.c2, script, "10.66.0.20")
		if s.PID() != pid {
			t.Fatalf("dnsmasq restarted: pid %d, was %d", s.PID(), pid)
		}
	})

	t.Run("changed address is served on renewal without a restart", func(t *testing.T) {
		c1.IP = netip.MustParseAddr("10.66.0.11")
		if err := s.SetHosts(ctx, []Host{c1, c2}); err != nil {
			t.Fatal(err)
		}
		wantLease(t, l.c1, script, "10.66.0.11")
		if s.PID() != pid {
			t.Fatalf("dnsmasq restarted: pid %d, was %d", s.PID(), pid)
		}
	})

	t.Run("bridge deleted and created again", func(t *testing.T) {
		l.recreateBridge(t)
		wantLease(t, l.c1, script, "10.66.0.11")
		if s.PID() != pid {
			t.Fatalf("dnsmasq restarted: pid %d, was %d", s.PID(), pid)
		}
	})

	t.Run("killed dnsmasq is restarted and serves the same leases", func(t *testing.T) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		pid = waitNewPID(t, s, pid)
		wantLease(t, l.c2, script, "10.66.0.20")
		wantLease(t, l.c1, script, "10.66.0.11")
	})

	t.Run("address of a removed guest goes to a new one at once", func(t *testing.T) {
		// Guest 1 is gone; its lease on .11 would make dnsmasq refuse .11
		// to anyone else until it expired.
		c2.IP = netip.MustParseAddr("10.66.0.11")
		if err := s.SetHosts(ctx, []Host{c2}); err != nil {
			t.Fatal(err)
		}
		wantLease(t, l.c2, script, "10.66.0.11")
		if got, ok := dhcp(t, l.c1, script); ok || got.IP != "" {
			t.Fatalf("removed client got %+v", got)
		}
		t.Logf("dnsmasq pid %d, was %d (restarted to drop the old lease)", s.PID(), pid)
		pid = s.PID()
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if alive(pid) {
		t.Fatalf("dnsmasq %d alive after Close", pid)
	}

	t.Run("hosts file the dnsmasq user cannot read fails Start", func(t *testing.T) {
		bad := cfg
		bad.Dir = filepath.Join(t.TempDir(), "dhcp") // under a 0700 directory
		s, err := New(bad, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "cannot read") {
			t.Fatalf("Start = %v, want dnsmasq's \"cannot read\"", err)
		}
		t.Logf("Start: %v", err)
	})
}
