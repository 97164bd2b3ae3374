// Package aoetest is an in-memory Ethernet segment for tests of AoE
// targets and initiators: each Port is an aoe.Conn; a frame goes to the
// port with its destination MAC, or to every other port when broadcast.
package aoetest

import (
	"bytes"
	"errors"
	"net"
	"sync"
)

// Segment connects ports.
type Segment struct {
	mu    sync.Mutex
	ports []*Port
	// Drop, when set, is asked about every frame; true loses it.
	Drop func(frame []byte) bool
}

// Port is one interface on the segment.
type Port struct {
	seg    *Segment
	mac    net.HardwareAddr
	mtu    int
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

// ErrClosed is returned by a closed port.
var ErrClosed = errors.New("aoetest: port closed")

// NewPort adds a port with the MAC and MTU given.
func (s *Segment) NewPort(mac net.HardwareAddr, mtu int) *Port {
	p := &Port{seg: s, mac: mac, mtu: mtu, in: make(chan []byte, 1024), closed: make(chan struct{})}
	s.mu.Lock()
	s.ports = append(s.ports, p)
	s.mu.Unlock()
	return p
}

// ReadFrame implements aoe.Conn.
func (p *Port) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-p.in:
		return copy(b, f), nil
	case <-p.closed:
		return 0, ErrClosed
	}
}

// WriteFrame implements aoe.Conn.
func (p *Port) WriteFrame(b []byte) error {
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	s := p.seg
	s.mu.Lock()
	drop := s.Drop
	ports := append([]*Port(nil), s.ports...)
	s.mu.Unlock()
	if drop != nil && drop(b) {
		return nil
	}
	dst := net.HardwareAddr(b[:6])
	bcast := bytes.Equal(dst, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for _, q := range ports {
		if q == p || (!bcast && !bytes.Equal(q.mac, dst)) {
			continue
		}
		select {
		case q.in <- append([]byte(nil), b...):
		default: // a full queue loses the frame, as a busy NIC would
		}
	}
	return nil
}

// HardwareAddr implements aoe.Conn.
func (p *Port) HardwareAddr() net.HardwareAddr { return p.mac }

// MTU implements aoe.Conn.
func (p *Port) MTU() int { return p.mtu }

// Close implements aoe.Conn.
func (p *Port) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}
