//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koala-cloud/koala/internal/netnstest"
)

// clientHost is a machine outside the cloud, made of a network namespace
// with one veth link to this host: the public network 198.18.<n>.0/24,
// with this host at .1 (the cluster's public interface, which holds the
// elastic IPs .10 to .20) and the client at .2, routing everything
// through this host.
type clientHost struct {
	ns     string
	hostIf string // this host's end of the link
	prefix string // the public network's first three octets
}

// newClientHost makes the namespace name (also the name of this host's
// end of the link: at most 15 characters) on public network n.
func newClientHost(t *testing.T, name string, n int) *clientHost {
	t.Helper()
	c := &clientHost{ns: name, hostIf: name, prefix: fmt.Sprintf("198.18.%d", n)}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", c.hostIf).Run()
		_ = exec.Command("ip", "netns", "del", c.ns).Run()
	})
	for _, args := range [][]string{
		{"ip", "netns", "add", c.ns},
		{"ip", "link", "add", c.hostIf, "type", "veth", "peer", "name", "eth0", "netns", c.ns},
		{"ip", "addr", "add", c.prefix + ".1/24", "dev", c.hostIf},
		{"ip", "link", "set", c.hostIf, "up"},
		{"ip", "-n", c.ns, "addr", "add", c.IP() + "/24", "dev", "eth0"},
		{"ip", "-n", c.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", c.ns, "link", "set", "lo", "up"},
		{"ip", "-n", c.ns, "route", "add", "default", "via", c.prefix + ".1"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return c
}

// IP is the client's address.
func (c *clientHost) IP() string { return c.prefix + ".2" }

// pool is the cluster's public address pool on this network.
func (c *clientHost) pool() string { return c.prefix + ".10-" + c.prefix + ".20" }

// dialLine connects to addr from the client and returns the first line
// it is sent, or an error.
func (c *clientHost) dialLine(t *testing.T, addr string) (string, error) {
	t.Helper()
	var conn net.Conn
	var err error
	if nerr := netnstest.Do(c.ns, func() { conn, err = net.DialTimeout("tcp", addr, 2*time.Second) }); nerr != nil {
		t.Fatal(nerr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// peers is a TCP service on the client that greets each connection and
// remembers the addresses connections came from.
type peers struct {
	mu   sync.Mutex
	seen []string
}

// listen serves port on the client until the test ends.
func (c *clientHost) listen(t *testing.T, port int) *peers {
	t.Helper()
	var ln net.Listener
	var err error
	if nerr := netnstest.Do(c.ns, func() { ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)) }); nerr != nil {
		t.Fatal(nerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &peers{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			p.mu.Lock()
			if !slices.Contains(p.seen, host) {
				p.seen = append(p.seen, host)
			}
			p.mu.Unlock()
			_, _ = conn.Write([]byte("koala-client-hello\n"))
			conn.Close()
		}
	}()
	return p
}

// from reports whether a connection came from addr, and all sources seen.
func (p *peers) from(addr string) (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.seen, addr), strings.Join(p.seen, " ")
}

// holds reports whether this host holds addr on the client link.
func (c *clientHost) holds(addr string) bool {
	out, _ := exec.Command("ip", "-4", "addr", "show", "dev", c.hostIf).Output()
	return strings.Contains(string(out), " "+addr+"/32 ")
}
