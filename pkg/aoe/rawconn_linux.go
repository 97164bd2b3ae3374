package aoe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

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
//
// Listen's RawConn waits for frames in the runtime's poller, which suits
// an initiator (one reader handing replies to many waiting requests);
// ListenBlocking's makes blocking system calls instead, so that a frame
// reaches one of a target's readers without a goroutine wake-up, which
// small AoE frames would each pay for (docs/benchmarks.md).
type RawConn struct {
	f   *os.File
	rc  syscall.RawConn
	ifi *net.Interface

	// blocking mode: mu is held shared by each read and write system
	// call and exclusively by Close, so the socket closes with no call on
	// it; a read gives up every readTimeout to look at closed.
	blocking bool
	fd       int
	mu       sync.RWMutex
	closed   bool
	once     sync.Once
}

// readTimeout is how long a blocking read waits before it looks at
// Close.
const readTimeout = 100 * time.Millisecond

// ErrConnClosed is returned by a closed blocking RawConn.
var ErrConnClosed = errors.New("aoe: connection closed")

// ListenBlocking opens a RawConn on ifname that reads and writes with
// blocking system calls.
func ListenBlocking(ifname string) (*RawConn, error) {
	ifi, fd, err := packetSocket(ifname, 0)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("aoe: socket on %s: %w", ifname, err)
	}
	return &RawConn{ifi: ifi, blocking: true, fd: fd}, nil
}

// Listen opens a RawConn on the interface named ifname.
func Listen(ifname string) (*RawConn, error) {
	ifi, fd, err := packetSocket(ifname, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "aoe:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &RawConn{f: f, rc: rc, ifi: ifi}, nil
}

// packetSocket opens an AF_PACKET socket for AoE bound to ifname.
func packetSocket(ifname string, flags int) (*net.Interface, int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, 0, fmt.Errorf("aoe: interface %s: %w", ifname, err)
	}
	proto := htons(EtherType)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|flags, int(proto))
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, 0, fmt.Errorf("aoe: packet socket on %s: %w (%w)", ifname, ErrPermission, err)
		}
		return nil, 0, fmt.Errorf("aoe: packet socket on %s: %w", ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("aoe: bind to %s: %w", ifname, err)
	}
	return ifi, fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ReadFrame implements Conn.
func (c *RawConn) ReadFrame(b []byte) (int, error) {
	if c.blocking {
		return c.readBlocking(b)
	}
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
	if c.blocking {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.closed {
			return ErrConnClosed
		}
		for {
			if _, err := unix.Write(c.fd, b); err != unix.EINTR {
				return err
			}
		}
	}
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

// Close implements Conn; a ReadFrame in progress returns an error (in
// blocking mode within readTimeout, before the socket is closed).
func (c *RawConn) Close() error {
	if !c.blocking {
		return c.f.Close()
	}
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.closed = true
		err = unix.Close(c.fd)
	})
	return err
}

func (c *RawConn) readBlocking(b []byte) (int, error) {
	for {
		c.mu.RLock()
		if c.closed {
			c.mu.RUnlock()
			return 0, ErrConnClosed
		}
		n, from, err := unix.Recvfrom(c.fd, b, 0)
		c.mu.RUnlock()
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return n, nil
	}
}
