package dhcp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// ErrInvalidHost is returned (wrapped) for a Host that cannot be served.
var ErrInvalidHost = errors.New("invalid dhcp host")

// Host is one guest's reservation: the MAC address of its NIC, the private
// IP the cluster leased to it and, optionally, the host name it is given.
type Host struct {
	MAC  net.HardwareAddr
	IP   netip.Addr
	Name string
}

// String is the host's line in dnsmasq's hosts file: mac,ip[,name].
func (h Host) String() string {
	s := h.MAC.String() + "," + h.IP.String()
	if h.Name != "" {
		s += "," + h.Name
	}
	return s
}

// checkHosts reports the first host that cannot be served in subnet next to
// gateway, and any MAC or IP reserved twice.
func checkHosts(subnet netip.Prefix, gateway netip.Addr, hosts []Host) error {
	macs := make(map[string]int, len(hosts))
	ips := make(map[netip.Addr]int, len(hosts))
	for i, h := range hosts {
		if len(h.MAC) != 6 {
			return fmt.Errorf("%w: host %d: mac %q: want a 48-bit Ethernet address", ErrInvalidHost, i, h.MAC)
		}
		if h.MAC[0]&1 != 0 {
			return fmt.Errorf("%w: host %d: mac %s: multicast", ErrInvalidHost, i, h.MAC)
		}
		ip := h.IP.Unmap()
		if err := checkHostAddr(subnet, ip); err != nil {
			return fmt.Errorf("%w: host %d (%s): ip %w", ErrInvalidHost, i, h.MAC, err)
		}
		if ip == gateway {
			return fmt.Errorf("%w: host %d (%s): ip %s is the gateway", ErrInvalidHost, i, h.MAC, ip)
		}
		if h.Name != "" {
			if err := checkLabel(h.Name); err != nil {
				return fmt.Errorf("%w: host %d (%s): name %w", ErrInvalidHost, i, h.MAC, err)
			}
		}
		if j, dup := macs[h.MAC.String()]; dup {
			return fmt.Errorf("%w: hosts %d and %d: same mac %s", ErrInvalidHost, j, i, h.MAC)
		}
		if j, dup := ips[ip]; dup {
			return fmt.Errorf("%w: hosts %d and %d: same ip %s", ErrInvalidHost, j, i, ip)
		}
		macs[h.MAC.String()], ips[ip] = i, i
	}
	return nil
}

// renderHosts is the hosts file for hosts: one line per host, sorted, so
// that the same set always renders to the same bytes. Hosts must have
// passed checkHosts.
func renderHosts(hosts []Host) []byte {
	lines := make([]string, len(hosts))
	for i, h := range hosts {
		h.IP = h.IP.Unmap()
		lines[i] = h.String()
	}
	slices.Sort(lines)
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// parseHosts reads a hosts file written by renderHosts.
func parseHosts(data []byte) ([]Host, error) {
	var hosts []Host
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: %q: want mac,ip[,name]", n+1, line)
		}
		mac, err := net.ParseMAC(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		ip, err := netip.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		h := Host{MAC: mac, IP: ip}
		if len(f) == 3 {
			h.Name = f[2]
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// dropStaleLeases returns the lease file data without the leases that hold
// an address hosts now reserve for another MAC, and the dropped lines.
// dnsmasq never hands a reserved address to its owner while another client
// holds a lease on it ("not using configured address ... because it is
// leased to ..."), so such a lease would keep a reassigned address away
// from the new instance until it expired. Lines it does not understand
// (IPv6 "duid" lines, say) are kept.
func dropStaleLeases(data []byte, hosts []Host) (keep []byte, dropped []string) {
	owner := make(map[netip.Addr]string, len(hosts))
	for _, h := range hosts {
		owner[h.IP.Unmap()] = h.MAC.String()
	}
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		// <expiry> <mac> <ip> <name|*> <client-id|*>
		f := strings.Fields(line)
		if len(f) >= 3 {
			mac, errM := net.ParseMAC(f[1])
			ip, errI := netip.ParseAddr(f[2])
			if errM == nil && errI == nil {
				if o, ok := owner[ip.Unmap()]; ok && o != mac.String() {
					dropped = append(dropped, strings.TrimSuffix(line, "\n"))
					continue
				}
			}
		}
		b.WriteString(line)
	}
	return b.Bytes(), dropped
}

// isOurDnsmasq reports whether cmdline (the NUL-separated contents of
// /proc/PID/cmdline) is a dnsmasq, named as binary or "dnsmasq", that reads
// hostsPath: a dnsmasq that serves this server's hosts file.
func isOurDnsmasq(cmdline []byte, binary, hostsPath string) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 2 {
		return false
	}
	name := filepath.Base(args[0])
	if name != "dnsmasq" && name != filepath.Base(binary) {
		return false
	}
	return slices.Contains(args[1:], "--dhcp-hostsfile="+hostsPath)
}

// logMessage strips dnsmasq's "dnsmasq[PID]: " or "dnsmasq-dhcp[PID]: "
// prefix (or "dnsmasq: " before it has started) from a line it logged.
func logMessage(line string) string {
	if !strings.HasPrefix(line, "dnsmasq") {
		return line
	}
	i := strings.Index(line, ": ")
	if i < 0 || strings.ContainsAny(line[:i], " \t") {
		return line
	}
	return line[i+2:]
}
