package network

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koala-cloud/koala/internal/netnstest"
	"github.com/koala-cloud/koala/pkg/netfilter"
)

// The integration test builds, from network namespaces:
//
//	kzn-host-X: the cluster host. Sync creates bridge kznbr0 with 10.67.0.1/24
//	            and runs dnsmasq and the nft ruleset here; port kznp1 joins
//	            the bridge; the metadata listener is on 127.0.0.1:8780.
//	kzn-c1-X:   a guest: kznv0 with the MAC of its lease, veth peer of kznp1.
//
// The guest gets its lease with busybox udhcpc, then fetches
// http://169.254.169.254/ and must reach the listener with its own address.
// Last, the host dials a listener in the guest, which its security group
// must allow once groups are enforced.

const (
	labBridge   = "kznbr0"
	labGuestIP  = "10.67.0.10"
	labGuestMAC = "d0:0d:0a:43:00:0a"
	labMetadata = "127.0.0.1:8780"
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

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs fn inside the network namespace ns (see netnstest.Do).
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := netnstest.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig) busybox ifconfig "$interface" 0.0.0.0 ;;
bound|renew)
	busybox ifconfig "$interface" "$ip" netmask "$subnet"
	busybox route add default gw "$router" dev "$interface"
	echo "lease|$ip|$router|$hostname" ;;
esac
`

func TestNetworkInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for network namespaces")
	}
	for _, bin := range []string{"ip", "nft", "dnsmasq"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not installed: %v", bin, err)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		skipOrFail(t, "busybox (udhcpc, wget) not installed: %v", err)
	}
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	host, guest := "kzn-host-"+suffix, "kzn-c1-"+suffix
	for _, ns := range []string{host, guest} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			skipOrFail(t, "cannot create network namespaces: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	run(t, "ip", "-n", host, "link", "set", "lo", "up")
	run(t, "ip", "link", "add", "kznv0", "netns", guest, "type", "veth", "peer", "name", "kznp1", "netns", host)
	run(t, "ip", "-n", guest, "link", "set", "kznv0", "address", labGuestMAC)
	run(t, "ip", "-n", guest, "link", "set", "kznv0", "up")

	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.sh")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	inHost := []string{"ip", "netns", "exec", host}
	cfg := Config{
		Mode:     ManagedNoVLAN,
		Bridge:   labBridge,
		Subnet:   netip.MustParsePrefix("10.67.0.0/24"),
		Gateway:  netip.MustParseAddr("10.67.0.1"),
		Metadata: netip.MustParseAddrPort(labMetadata),
		DHCPDir:  filepath.Join(dir, "dhcp"),
		DHCPUser: "root", // t.TempDir is 0700
		DHCPExec: inHost,
		LogDHCP:  true,
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := New(cfg, Deps{Host: Exec{Prefix: inHost}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx := context.Background()
	l := lease("i-guest", labGuestIP)
	other := lease("i-other", "10.67.0.11")
	for i := range 2 { // the second is a no-op
		if err := n.Sync(ctx, []Lease{l, other}, Groups{}, Addresses{}); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if !strings.Contains(run(t, "ip", "-n", host, "-o", "addr", "show", "dev", labBridge), "10.67.0.1/24") {
		t.Fatal("bridge has no gateway address")
	}
	if got := strings.TrimSpace(run(t, "ip", "netns", "exec", host, "cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
		t.Errorf("ip_forward = %s in the host namespace", got)
	}
	run(t, "ip", "-n", host, "link", "set", "kznp1", "master", labBridge, "up")

	// DHCP: the guest gets exactly its lease.
	out, err := exec.Command("ip", "netns", "exec", guest,
		"/bin/busybox", "udhcpc", "-i", "kznv0", "-n", "-q", "-t", "5", "-T", "1", "-s", script).CombinedOutput()
	t.Logf("udhcpc: err=%v\n%s", err, out)
	want := "lease|" + labGuestIP + "|10.67.0.1|" + HostName(l.IP)
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("udhcpc did not get %q", want)
	}

	// Metadata: 169.254.169.254:80 reaches the listener in the host
	// namespace, from the guest's own address.
	var ln net.Listener
	inNetns(t, host, func() { ln, err = net.Listen("tcp4", labMetadata) })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from="+r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var conn net.Conn
	inNetns(t, guest, func() { conn, err = net.DialTimeout("tcp4", "169.254.169.254:80", 5*time.Second) })
	if err != nil {
		t.Fatalf("dial 169.254.169.254:80 from the guest: %v\n%s", err, run(t, "ip", "netns", "exec", host, "nft", "list", "ruleset"))
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := (&http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil },
	}}).Get("http://169.254.169.254/latest/meta-data/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); !strings.HasPrefix(got, "from="+labGuestIP+":") {
		t.Fatalf("metadata listener saw %q, want the guest's address %s", got, labGuestIP)
	}

	// Security groups: a listener in the guest is reachable from the host
	// before any groups were received; once they were, only when a rule of
	// the guest's group allows it.
	var guestLn net.Listener
	inNetns(t, guest, func() { guestLn, err = net.Listen("tcp4", labGuestIP+":8000") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guestLn.Close() })
	go func() {
		for {
			c, err := guestLn.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	reach := func() error {
		var c net.Conn
		var err error
		inNetns(t, host, func() { c, err = net.DialTimeout("tcp4", labGuestIP+":8000", time.Second) })
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		return err
	}
	l.Groups = []string{"sg-web"}
	web := Groups{Received: true}
	allow := Groups{Received: true, Set: []netfilter.Group{{ID: "sg-web", Ingress: []netfilter.Rule{
		{Protocol: netfilter.TCP, FromPort: 8000, ToPort: 8000, CIDRs: []netip.Prefix{cfg.Subnet}}}}}}
	for _, step := range []struct {
		name   string
		groups Groups
		reach  bool
	}{
		{"before groups", Groups{}, true},
		{"group without rules", web, false},
		{"rule allows tcp 8000", allow, true},
	} {
		if err := n.Sync(ctx, []Lease{l, other}, step.groups, Addresses{}); err != nil {
			t.Fatalf("%s: sync: %v", step.name, err)
		}
		if err := reach(); (err == nil) != step.reach {
			t.Errorf("%s: dial the guest from the host: %v, want reachable %v\n%s", step.name, err, step.reach,
				run(t, "ip", "netns", "exec", host, "nft", "list", "table", "inet", "koala"))
		}
	}

	// Close stops dnsmasq and leaves the bridge.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", host, "link", "show", "dev", labBridge)
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestManagedSegmentsInNetns checks MANAGED mode's segments on a real
// bridge: guests of one group share layer 2, guests of different groups
// do not (each sees the other at the bridge's MAC, through the host), and
// the host routes between them only as their groups' rules allow.
func TestManagedSegmentsInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for network namespaces")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not installed: %v", bin, err)
		}
	}
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	host := "kzs-host-" + suffix
	type guest struct {
		ns, port, ip string
		lease        Lease
	}
	guests := []*guest{
		{ns: "kzs-a1-" + suffix, port: "kzsp1", ip: "10.68.0.11"},
		{ns: "kzs-b1-" + suffix, port: "kzsp2", ip: "10.68.0.12"},
		{ns: "kzs-a2-" + suffix, port: "kzsp3", ip: "10.68.0.13"},
	}
	groups := [][]string{{"sg-a"}, {"sg-b"}, {"sg-a"}}
	for _, ns := range []string{host, guests[0].ns, guests[1].ns, guests[2].ns} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			skipOrFail(t, "cannot create network namespaces: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "-n", host, "link", "set", "lo", "up")
	inHost := []string{"ip", "netns", "exec", host}
	dir := t.TempDir()
	cfg := Config{Mode: Managed, Bridge: "kzsbr0", Subnet: netip.MustParsePrefix("10.68.0.0/24"),
		Gateway: netip.MustParseAddr("10.68.0.1"), DHCPDir: filepath.Join(dir, "dhcp"), DHCPUser: "root", DHCPExec: inHost}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	n, err := New(cfg, Deps{Host: Exec{Prefix: inHost}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	var leases []Lease
	for i, g := range guests {
		g.lease = lease("i-"+g.ns[4:6], g.ip)
		g.lease.Groups, g.lease.Iface = groups[i], g.port
		leases = append(leases, g.lease)
		run(t, "ip", "link", "add", "kzsv0", "netns", g.ns, "type", "veth", "peer", "name", g.port, "netns", host)
		run(t, "ip", "-n", g.ns, "link", "set", "kzsv0", "address", g.lease.MAC.String())
		run(t, "ip", "-n", g.ns, "addr", "add", g.ip+"/24", "dev", "kzsv0")
		run(t, "ip", "-n", g.ns, "link", "set", "kzsv0", "up")
		run(t, "ip", "-n", g.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", g.ns, "route", "add", "default", "via", "10.68.0.1")
	}
	sgA := func(sources ...string) netfilter.Group {
		return netfilter.Group{ID: "sg-a",
			Ingress: []netfilter.Rule{{Protocol: netfilter.TCP, FromPort: 8000, ToPort: 8000, SourceGroups: sources}},
			Egress:  []netfilter.Rule{{Protocol: netfilter.All, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}}
	}
	sgB := netfilter.Group{ID: "sg-b", Egress: []netfilter.Rule{{Protocol: netfilter.All, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}}
	sync := func(gs ...netfilter.Group) {
		t.Helper()
		if err := n.Sync(context.Background(), leases, Groups{Received: true, Set: gs}, Addresses{}); err != nil {
			t.Fatal(err)
		}
	}
	sync(sgA(), sgB)
	for _, g := range guests {
		run(t, "ip", "-n", host, "link", "set", g.port, "master", cfg.Bridge, "up")
	}
	// a1 serves tcp 8000.
	var ln net.Listener
	inNetns(t, guests[0].ns, func() { ln, err = net.Listen("tcp4", guests[0].ip+":8000") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	reach := func(from *guest) error {
		var c net.Conn
		var err error
		inNetns(t, from.ns, func() { c, err = net.DialTimeout("tcp4", guests[0].ip+":8000", 2*time.Second) })
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = io.ReadAll(c)
		return err
	}
	// neighbor is the MAC from's neighbour table holds for a1.
	neighbor := func(from *guest) string {
		out := run(t, "ip", "-n", from.ns, "neigh", "show", guests[0].ip, "dev", "kzsv0")
		if f := strings.Fields(out); len(f) >= 3 && f[1] == "lladdr" {
			return f[2]
		}
		return ""
	}
	brMAC := strings.Fields(run(t, "ip", "-n", host, "-br", "link", "show", "dev", cfg.Bridge))[2]
	a2, b1 := guests[2], guests[1]
	sync(sgA("sg-a"), sgB)
	if err := reach(a2); err != nil {
		t.Errorf("a2 -> a1 in the same group, allowed: %v\nneigh a2: %s\nneigh a1: %s\n%s", err,
			run(t, "ip", "-n", a2.ns, "neigh"), run(t, "ip", "-n", guests[0].ns, "neigh"),
			run(t, "ip", "netns", "exec", host, "nft", "list", "table", "bridge", "koala_kzsbr0"))
	}
	if got := neighbor(a2); got != guests[0].lease.MAC.String() {
		t.Errorf("a2 sees a1 at %q, want a1's own MAC %s: one segment shares layer 2", got, guests[0].lease.MAC)
	}
	if err := reach(b1); err == nil {
		t.Errorf("b1 -> a1 across segments before a rule allowed it: reached")
	}
	sync(sgA("sg-a", "sg-b"), sgB)
	if err := reach(b1); err != nil {
		t.Errorf("b1 -> a1 once sg-a admits sg-b: %v\n%s", err, run(t, "ip", "netns", "exec", host, "nft", "list", "ruleset"))
	}
	if got := neighbor(b1); got != brMAC {
		t.Errorf("b1 sees a1 at %q, want the bridge's MAC %s: the segments share layer 2", got, brMAC)
	}
}
