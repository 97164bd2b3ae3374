package netfilter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// How long a connection attempt may take before the test calls it dropped.
// On veth pairs inside one host an allowed connection takes well under a
// millisecond.
const dialTimeout = 500 * time.Millisecond

// The guests' MAC addresses.
const (
	macA = "02:77:00:00:00:0a"
	macB = "02:77:00:00:00:0b"
)

// TestIntegration builds a small cloud from network namespaces and proves
// the rendered filter with real traffic:
//
//	client (10.78.0.2) ── host (10.78.0.1; bridge 10.77.0.1/24) ─┬─ guest A 10.77.0.10
//	                                                             └─ guest B 10.77.0.11
//
// It runs once with br_netfilter off on the host (bridged frames skip the
// ip hooks, the case the design must not depend on) and once with it on
// (bridged IPv4 also meets the inet table), where the kernel has it.
func TestIntegration(t *testing.T) {
	requireNft(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs busybox (ping), and CI=true does not allow skipping")
		}
		t.Skip("needs busybox (ping)")
	}
	for _, brnf := range []bool{false, true} {
		t.Run(fmt.Sprintf("br_netfilter=%v", brnf), func(t *testing.T) {
			l := newLab(t)
			if err := l.bridgeNetfilter(brnf); err != nil {
				if !brnf {
					t.Fatal(err)
				}
				t.Skipf("cannot enable br_netfilter here: %v", err)
			}
			l.scenario(t)
		})
	}
}

func (l *lab) scenario(t *testing.T) {
	const (
		a, b, client = "10.77.0.10", "10.77.0.11", "10.78.0.2"
		gw           = "10.77.0.1"
		eipA, eipB   = "203.0.113.10", "203.0.113.11"
	)
	ctx := context.Background()

	serverA := l.serve(l.a, ":8080")
	l.serve(l.b, ":8080")
	l.serve(l.client, ":9090")
	l.serve(l.client, ":9091")
	metadata := l.serve(l.host, gw+":8775")
	l.serve(l.host, gw+":2222")

	// Without a filter everything is reachable: the topology works.
	l.reach("no filter: client -> A", l.client, a+":8080", client)
	l.reach("no filter: B -> A", l.b, a+":8080", b)

	// Another program's table, which we must never touch.
	l.nftExec(t, "add table inet kzt_foreign")
	l.nftExec(t, "add chain inet kzt_foreign watch { type filter hook forward priority 5; policy accept; }")
	l.nftExec(t, "add rule inet kzt_foreign watch counter")

	webIngress := []Rule{}
	appIngress := []Rule{}
	appEgress := allEgress
	var elastic []NAT
	ruleset := func() Ruleset {
		return Ruleset{
			Bridge: l.br,
			Ports: []Port{
				{Instance: "i-a", Iface: l.portA, MAC: mustMAC(macA), IP: ip(a), Groups: []string{"sg-web"}},
				{Instance: "i-b", Iface: l.portB, MAC: mustMAC(macB), IP: ip(b), Groups: []string{"sg-app"}},
			},
			Groups: []Group{
				{ID: "sg-web", Ingress: webIngress, Egress: allEgress},
				{ID: "sg-app", Ingress: appIngress, Egress: appEgress},
			},
			Elastic:  elastic,
			Metadata: &MetadataRedirect{To: netip.MustParseAddrPort(gw + ":8775")},
		}
	}
	apply := func() {
		t.Helper()
		script, err := Render(ruleset())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.nft.Apply(ctx, script); err != nil {
			t.Fatal(err)
		}
	}

	// Groups without ingress rules: everything inbound is dropped.
	apply()
	before := l.nftExec(t, "list ruleset")
	apply()
	if after := l.nftExec(t, "list ruleset"); after != before {
		t.Errorf("re-applying the same script changed the ruleset:\n%s", diff(before, after))
	}
	if !strings.Contains(before, "table inet kzt_foreign") {
		t.Errorf("applying removed another program's table:\n%s", before)
	}
	l.denied("no rule: client -> A", l.client, a+":8080")
	l.denied("no rule: B -> A (bridged)", l.b, a+":8080")
	l.denied("no rule: A -> B (bridged)", l.a, b+":8080")
	l.noPing("no rule: client ping A", l.client, a)
	l.reach("default egress: A -> client", l.a, client+":9090", a)
	l.reach("default egress: B -> client", l.b, client+":9090", b)
	l.reach("default egress: B -> host", l.b, gw+":2222", b)
	l.reach("metadata: A", l.a, "169.254.169.254:80", a)
	l.reach("metadata: B", l.b, "169.254.169.254:80", b)

	// A CIDR rule opens the port to the client's network only.
	webIngress = []Rule{
		{Protocol: TCP, FromPort: 8080, ToPort: 8080, CIDRs: cidrs("10.78.0.0/24")},
		{Protocol: ICMP, FromPort: 8, ToPort: Any, CIDRs: cidrs("10.78.0.0/24")},
	}
	apply()
	l.reach("cidr rule: client -> A", l.client, a+":8080", client)
	l.ping("cidr rule: client ping A", l.client, a)
	l.denied("cidr rule: B -> A", l.b, a+":8080")
	l.noPing("cidr rule: B ping A", l.b, a)

	// A source-group rule lets members of sg-app in, and only in one direction.
	sourceGroup := []Rule{
		{Protocol: TCP, FromPort: 8080, ToPort: 8081, SourceGroups: []string{"sg-app"}},
		{Protocol: ICMP, FromPort: Any, ToPort: Any, SourceGroups: []string{"sg-app"}},
	}
	webIngress = append(webIngress, sourceGroup...)
	apply()
	l.reach("source group: B -> A", l.b, a+":8080", b)
	l.ping("source group: B ping A", l.b, a)
	l.denied("source group: A -> B", l.a, b+":8080")
	l.reach("source group: client -> A", l.client, a+":8080", client)
	l.pushAfterApply(t, "source group: bridged connection survives a re-apply", a, apply)

	// Revoking it closes the port to B again.
	webIngress = webIngress[:2]
	apply()
	l.denied("revoked: B -> A", l.b, a+":8080")
	l.reach("revoked: client -> A", l.client, a+":8080", client)

	// Restricted egress: sg-app may only reach the client on 9090, but the
	// metadata service stays reachable.
	webIngress = append(webIngress, sourceGroup...)
	appEgress = []Rule{{Protocol: TCP, FromPort: 9090, ToPort: 9090, CIDRs: cidrs("10.78.0.0/24")}}
	apply()
	l.reach("egress: B -> client:9090", l.b, client+":9090", b)
	l.denied("egress: B -> client:9091", l.b, client+":9091")
	l.denied("egress: B -> A (A's ingress allows it, B's egress does not)", l.b, a+":8080")
	l.denied("egress: B -> host", l.b, gw+":2222")
	l.reach("egress: B -> metadata", l.b, "169.254.169.254:80", b)
	l.reach("egress: A -> client:9091", l.a, client+":9091", a)
	appEgress = allEgress

	// Elastic IPs: the client reaches A at its public address and sees A's
	// connections come from it; B reaches A's public address from its own.
	elastic = []NAT{{Public: ip(eipA), Private: ip(a)}, {Public: ip(eipB), Private: ip(b)}}
	webIngress = append(webIngress, Rule{Protocol: TCP, FromPort: 8080, ToPort: 8080, CIDRs: cidrs("203.0.113.0/24")})
	apply()
	l.reach("elastic ip: client -> A's public address (DNAT)", l.client, eipA+":8080", client)
	l.reach("elastic ip: A -> client (SNAT)", l.a, client+":9090", eipA)
	l.reach("elastic ip: B -> A's public address (hairpin)", l.b, eipA+":8080", eipB)
	l.reach("elastic ip: metadata keeps A's private address", l.a, "169.254.169.254:80", a)
	elastic = nil
	apply()
	l.unreachable("disassociated: client -> A's public address", l.client, eipA+":8080")
	l.reach("disassociated: A -> client", l.a, client+":9090", a)

	// Spoofing: B with another address or MAC gets nothing through, and in
	// particular not A's metadata.
	l.reach("spoof control: B -> client", l.b, client+":9090", b)
	seen := metadata.count()
	for _, addr := range []string{"10.77.0.12", a} {
		l.setAddr(l.b, addr)
		l.unreachable("spoofed address "+addr+": B -> client", l.b, client+":9090")
		l.unreachable("spoofed address "+addr+": B -> metadata", l.b, "169.254.169.254:80")
	}
	if n := metadata.count(); n != seen {
		t.Errorf("metadata listener accepted %d connections from a spoofing guest", n-seen)
	}
	l.setAddr(l.b, b)
	l.reach("address restored: B -> client", l.b, client+":9090", b)
	l.run(t, "ip", "-n", l.b, "link", "set", "eth0", "address", "02:77:00:00:00:99")
	l.unreachable("spoofed MAC: B -> client", l.b, client+":9090")
	l.run(t, "ip", "-n", l.b, "link", "set", "eth0", "address", macB)
	l.reach("MAC restored: B -> client", l.b, client+":9090", b)
	if got := serverA.count(); got == 0 {
		t.Errorf("guest A's server saw no connections")
	}

	// Remove deletes our tables, and only ours.
	if err := l.nft.Remove(ctx, l.br); err != nil {
		t.Fatal(err)
	}
	if err := l.nft.Remove(ctx, l.br); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	tables := l.nftExec(t, "list tables")
	for _, own := range TablesFor(l.br).list() {
		own = "table " + own
		if strings.Contains(tables, own) {
			t.Errorf("after Remove, %q is still there:\n%s", own, tables)
		}
	}
	if !strings.Contains(tables, "table inet kzt_foreign") {
		t.Errorf("Remove deleted another program's table:\n%s", tables)
	}
	l.reach("removed: B -> A", l.b, a+":8080", b)
}

// pushAfterApply opens a connection from guest B to guest A (at a, port
// 8081), re-applies the ruleset with apply, and then has A's side speak
// first. A's packet is a reply of a flow B opened; it must pass although
// B's groups do not allow A in, so the bridge's flow state must have
// survived the re-apply.
func (l *lab) pushAfterApply(t *testing.T, step, a string, apply func()) {
	t.Helper()
	var ln net.Listener
	if err := l.in(l.a, func() (err error) {
		ln, err = net.Listen("tcp4", ":8081")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var c net.Conn
	if err := l.in(l.b, func() (err error) {
		c, err = net.DialTimeout("tcp4", a+":8081", dialTimeout)
		return err
	}); err != nil {
		t.Errorf("%s: B -> A:8081: %v", step, err)
		return
	}
	defer c.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatalf("%s: accept failed", step)
	}
	defer sc.Close()
	apply()
	if _, err := fmt.Fprintln(sc, "push"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "push\n" {
		t.Errorf("%s: B read %q, %v; want A's push", step, line, err)
	}
}

// lab is a set of network namespaces wired as in TestIntegration.
type lab struct {
	t                    *testing.T
	host, a, b, client   string // namespace names
	br, portA, portB, up string // devices in the host namespace
	nft                  Runner
}

func newLab(t *testing.T) *lab {
	t.Helper()
	var id string
	for {
		id = fmt.Sprintf("%04x", rand.IntN(1<<16))
		if _, err := os.Stat("/run/netns/kzt-" + id + "-h"); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	l := &lab{
		t:    t,
		host: "kzt-" + id + "-h", a: "kzt-" + id + "-a", b: "kzt-" + id + "-b", client: "kzt-" + id + "-c",
		br: "kzt" + id + "br", portA: "kzt" + id + "a", portB: "kzt" + id + "b", up: "kzt" + id + "c",
	}
	l.nft = Runner{Netns: l.host}
	for _, ns := range []string{l.host, l.a, l.b, l.client} {
		l.run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		l.run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	h := []string{"ip", "-n", l.host}
	l.run(t, append(h, "link", "add", l.br, "type", "bridge")...)
	l.run(t, append(h, "addr", "add", "10.77.0.1/24", "dev", l.br)...)
	l.run(t, append(h, "link", "set", l.br, "up")...)
	for _, g := range []struct{ ns, port, mac, addr string }{
		{l.a, l.portA, macA, "10.77.0.10"},
		{l.b, l.portB, macB, "10.77.0.11"},
	} {
		l.run(t, append(h, "link", "add", g.port, "type", "veth", "peer", "name", "eth0", "netns", g.ns)...)
		l.run(t, append(h, "link", "set", g.port, "master", l.br, "up")...)
		l.run(t, "ip", "-n", g.ns, "link", "set", "eth0", "address", g.mac, "up")
		l.setAddr(g.ns, g.addr)
	}
	l.run(t, append(h, "link", "add", l.up, "type", "veth", "peer", "name", "eth0", "netns", l.client)...)
	l.run(t, append(h, "addr", "add", "10.78.0.1/24", "dev", l.up)...)
	l.run(t, append(h, "link", "set", l.up, "up")...)
	l.run(t, "ip", "-n", l.client, "addr", "add", "10.78.0.2/24", "dev", "eth0")
	l.run(t, "ip", "-n", l.client, "link", "set", "eth0", "up")
	l.run(t, "ip", "-n", l.client, "route", "add", "default", "via", "10.78.0.1")
	if err := l.in(l.host, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	}); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}
	return l
}

// bridgeNetfilter turns br_netfilter's call-iptables hook for the host
// namespace on or off.
func (l *lab) bridgeNetfilter(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return l.in(l.host, func() error {
		err := os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte(v), 0)
		if errors.Is(err, os.ErrNotExist) && !on {
			return nil // no br_netfilter at all: off is what we want
		}
		return err
	})
}

// setAddr gives a guest the address (and the default route) it uses.
func (l *lab) setAddr(ns, addr string) {
	l.t.Helper()
	l.run(l.t, "ip", "-n", ns, "addr", "flush", "dev", "eth0")
	l.run(l.t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.run(l.t, "ip", "-n", ns, "route", "replace", "default", "via", "10.77.0.1")
}

// run runs a command (argv[0] and its arguments) and fails t if it fails.
func (l *lab) run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// nftExec runs an nft command in the host namespace.
func (l *lab) nftExec(t *testing.T, cmd string) string {
	t.Helper()
	return l.run(t, append([]string{"ip", "netns", "exec", l.host, "nft"}, strings.Fields(cmd)...)...)
}

// in runs fn on an OS thread that has joined namespace ns. Sockets fn
// creates stay in ns. The thread is never unlocked, so the runtime
// discards it instead of reusing it in the wrong namespace.
func (l *lab) in(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// server answers each connection with the address it came from.
type server struct {
	mu    sync.Mutex
	peers []string
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

func (l *lab) serve(ns, addr string) *server {
	l.t.Helper()
	var ln net.Listener
	if err := l.in(ns, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		l.t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	l.t.Cleanup(func() { ln.Close() })
	s := &server{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.peers = append(s.peers, c.RemoteAddr().String())
			s.mu.Unlock()
			fmt.Fprintf(c, "%s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	return s
}

// dial connects from namespace ns to addr and returns the source address
// the server saw.
func (l *lab) dial(ns, addr string) (netip.Addr, error) {
	var seen netip.Addr
	err := l.in(ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, dialTimeout)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		ap, err := netip.ParseAddrPort(strings.TrimSpace(line))
		seen = ap.Addr()
		return err
	})
	return seen, err
}

// reach asserts that ns connects to addr and the server sees it as from.
func (l *lab) reach(step, ns, addr, from string) {
	l.t.Helper()
	seen, err := l.dial(ns, addr)
	switch {
	case err != nil:
		l.t.Errorf("%s: %s -> %s: %v, want a connection", step, ns, addr, err)
	case seen != ip(from):
		l.t.Errorf("%s: %s -> %s: server saw %v, want %s", step, ns, addr, seen, from)
	}
}

// denied asserts that the filter drops ns's connection to addr: it times
// out rather than being refused or failing otherwise.
func (l *lab) denied(step, ns, addr string) {
	l.t.Helper()
	_, err := l.dial(ns, addr)
	var nerr net.Error
	switch {
	case err == nil:
		l.t.Errorf("%s: %s -> %s connected, want it dropped", step, ns, addr)
	case !errors.As(err, &nerr) || !nerr.Timeout():
		l.t.Errorf("%s: %s -> %s: %v, want a timeout (dropped)", step, ns, addr, err)
	}
}

// unreachable asserts that ns cannot connect to addr at all.
func (l *lab) unreachable(step, ns, addr string) {
	l.t.Helper()
	if _, err := l.dial(ns, addr); err == nil {
		l.t.Errorf("%s: %s -> %s connected, want no connection", step, ns, addr)
	}
}

func (l *lab) pingOK(ns, addr string) bool {
	return exec.Command("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "1", addr).Run() == nil
}

func (l *lab) ping(step, ns, addr string) {
	l.t.Helper()
	if !l.pingOK(ns, addr) {
		l.t.Errorf("%s: %s ping %s got no reply", step, ns, addr)
	}
}

func (l *lab) noPing(step, ns, addr string) {
	l.t.Helper()
	if l.pingOK(ns, addr) {
		l.t.Errorf("%s: %s ping %s got a reply, want none", step, ns, addr)
	}
}
