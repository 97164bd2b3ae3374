package aoe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn carries AoE frames (whole Ethernet frames, without the checksum)
// on one interface. Its methods may be called from several goroutines.
type Conn interface {
	// ReadFrame reads the next frame into b and returns its length.
	ReadFrame(b []byte) (int, error)
	// WriteFrame sends one frame.
	WriteFrame(b []byte) error
	// HardwareAddr is the interface's MAC.
	HardwareAddr() net.HardwareAddr
	// MTU is the interface's MTU: the most bytes after the Ethernet header.
	MTU() int
	Close() error
}

// ErrPermission reports a missing privilege for raw sockets.
var ErrPermission = errors.New("AF_PACKET sockets need root or CAP_NET_RAW")

// RawConn is a Conn over an AF_PACKET socket bound to one interface and
// the AoE EtherType. It reads only frames that arrive on the interface,
// not those sent from this host.
type RawConn struct {
	f   *os.File
	rc  syscall.RawConn
	ifi *net.Interface
}

// Listen opens a RawConn on the interface named ifname.
func Listen(ifname string) (*RawConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("aoe: interface %s: %w", ifname, err)
	}
	proto := htons(EtherType)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(proto))
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("aoe: packet socket on %s: %w (%w)", ifname, ErrPermission, err)
		}
		return nil, fmt.Errorf("aoe: packet socket on %s: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("aoe: bind to %s: %w", ifname, err)
	}
	f := os.NewFile(uintptr(fd), "aoe:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &RawConn{f: f, rc: rc, ifi: ifi}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ReadFrame implements Conn.
func (c *RawConn) ReadFrame(b []byte) (int, error) {
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), b, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return 0, err
		}
		if rerr != nil {
			return 0, rerr
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return n, nil
	}
}

// WriteFrame implements Conn.
func (c *RawConn) WriteFrame(b []byte) error {
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return werr
}

// HardwareAddr implements Conn.
func (c *RawConn) HardwareAddr() net.HardwareAddr { return c.ifi.HardwareAddr }

// MTU implements Conn.
func (c *RawConn) MTU() int { return c.ifi.MTU }

// Close implements Conn; a ReadFrame in progress returns an error.
func (c *RawConn) Close() error { return c.f.Close() }
