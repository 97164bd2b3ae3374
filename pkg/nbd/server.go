// Package nbd serves block devices with the Network Block Device
// protocol (fixed newstyle handshake, simple replies), as qemu's NBD
// client speaks it: a node serves a volume it reaches over AoE to the
// qemu of the instance it is attached to, on a unix socket.
//
// Options: EXPORT_NAME, GO and INFO (with the export's size, flags and
// block sizes), LIST, ABORT; others (TLS, structured replies, metadata
// contexts) are refused, which clients fall back from. Commands: READ,
// WRITE (with FUA), FLUSH, TRIM and WRITE_ZEROES (as writes of zeros),
// DISC. Requests run concurrently; replies go out as they complete.
package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Device is what an export serves: the aoe.Initiator and *os.File are
// Devices once sized.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes acknowledged writes durable.
	Sync() error
}

// Export is a named device.
type Export struct {
	Name string
	Dev  Device
	Size int64
	// BlockSize is the minimum request alignment (512 for AoE devices);
	// 0 means 1.
	BlockSize uint32
	ReadOnly  bool
}

// Protocol constants.
const (
	magicNBD        = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply   = 0x3e889045565a9
	magicRequest    = 0x25609513
	magicReply      = 0x67446698
	flagFixed       = 1 << 0
	flagNoZeroes    = 1 << 1
	clientFixed     = 1 << 0
	clientNoZeroes  = 1 << 1
	optExportName   = 1
	optAbort        = 2
	optList         = 3
	optInfo         = 6
	optGo           = 7
	repAck          = 1
	repServer       = 2
	repInfo         = 3
	repErrUnsup     = 1<<31 | 1
	repErrInvalid   = 1<<31 | 3
	repErrUnknown   = 1<<31 | 6
	infoExport      = 0
	infoBlockSize   = 3
	tflagHasFlags   = 1 << 0
	tflagReadOnly   = 1 << 1
	tflagFlush      = 1 << 2
	tflagFUA        = 1 << 3
	tflagTrim       = 1 << 5
	tflagZeroes     = 1 << 6
	cmdRead         = 0
	cmdWrite        = 1
	cmdDisc         = 2
	cmdFlush        = 3
	cmdTrim         = 4
	cmdWriteZeroes  = 6
	cmdFlagFUA      = 1 << 0
	errPerm         = 1
	errIO           = 5
	errInval        = 22
	errNoSpace      = 28
	maxOptionLen    = 64 << 10
	maxRequestBytes = 32 << 20
)

// Server serves exports on a listener.
type Server struct {
	mu      sync.RWMutex
	exports map[string]Export
	log     *slog.Logger
}

// NewServer returns a server of no exports.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{exports: map[string]Export{}, log: log}
}

// Add serves e under its name, replacing one of the same name.
func (s *Server) Add(e Export) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exports[e.Name] = e
}

// Remove stops offering the export name to new connections.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.exports, name)
}

func (s *Server) export(name string) (Export, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.exports[name]
	if !ok && name == "" && len(s.exports) == 1 {
		for _, only := range s.exports {
			return only, true
		}
	}
	return e, ok
}

// Serve accepts connections until ln fails or ctx ends; each is served
// until its client disconnects.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			context.AfterFunc(cctx, func() { c.Close() })
			if err := s.ServeConn(cctx, c); err != nil && !errors.Is(err, io.EOF) && cctx.Err() == nil {
				s.log.Warn("nbd connection ended", "err", err)
			}
		})
	}
}

// ServeConn runs the handshake and then the transmission phase on c.
func (s *Server) ServeConn(ctx context.Context, c io.ReadWriter) error {
	hs := make([]byte, 0, 18)
	hs = binary.BigEndian.AppendUint64(hs, magicNBD)
	hs = binary.BigEndian.AppendUint64(hs, magicOpt)
	hs = binary.BigEndian.AppendUint16(hs, flagFixed|flagNoZeroes)
	if _, err := c.Write(hs); err != nil {
		return err
	}
	var cflags uint32
	if err := binary.Read(c, binary.BigEndian, &cflags); err != nil {
		return err
	}
	if cflags&clientFixed == 0 {
		return errors.New("nbd: client does not speak fixed newstyle")
	}
	noZeroes := cflags&clientNoZeroes != 0
	for {
		var hdr struct {
			Magic  uint64
			Option uint32
			Len    uint32
		}
		if err := binary.Read(c, binary.BigEndian, &hdr); err != nil {
			return err
		}
		if hdr.Magic != magicOpt || hdr.Len > maxOptionLen {
			return fmt.Errorf("nbd: bad option header (magic %#x, length %d)", hdr.Magic, hdr.Len)
		}
		data := make([]byte, hdr.Len)
		if _, err := io.ReadFull(c, data); err != nil {
			return err
		}
		switch hdr.Option {
		case optExportName:
			e, ok := s.export(string(data))
			if !ok {
				return fmt.Errorf("nbd: no export %q", data)
			}
			out := binary.BigEndian.AppendUint64(nil, uint64(e.Size))
			out = binary.BigEndian.AppendUint16(out, transmitFlags(e))
			if !noZeroes {
				out = append(out, make([]byte, 124)...)
			}
			if _, err := c.Write(out); err != nil {
				return err
			}
			return s.transmit(ctx, c, e)
		case optAbort:
			_ = optReply(c, hdr.Option, repAck, nil)
			return io.EOF
		case optList:
			s.mu.RLock()
			var names []string
			for n := range s.exports {
				names = append(names, n)
			}
			s.mu.RUnlock()
			for _, n := range names {
				if err := optReply(c, hdr.Option, repServer, append(binary.BigEndian.AppendUint32(nil, uint32(len(n))), n...)); err != nil {
					return err
				}
			}
			if err := optReply(c, hdr.Option, repAck, nil); err != nil {
				return err
			}
		case optInfo, optGo:
			name, ok := goName(data)
			if !ok {
				if err := optReply(c, hdr.Option, repErrInvalid, nil); err != nil {
					return err
				}
				continue
			}
			e, found := s.export(name)
			if !found {
				if err := optReply(c, hdr.Option, repErrUnknown, []byte("no such export")); err != nil {
					return err
				}
				continue
			}
			info := binary.BigEndian.AppendUint16(nil, infoExport)
			info = binary.BigEndian.AppendUint64(info, uint64(e.Size))
			info = binary.BigEndian.AppendUint16(info, transmitFlags(e))
			if err := optReply(c, hdr.Option, repInfo, info); err != nil {
				return err
			}
			bs := binary.BigEndian.AppendUint16(nil, infoBlockSize)
			bs = binary.BigEndian.AppendUint32(bs, max(e.BlockSize, 1))
			bs = binary.BigEndian.AppendUint32(bs, max(e.BlockSize, 4096))
			bs = binary.BigEndian.AppendUint32(bs, maxRequestBytes)
			if err := optReply(c, hdr.Option, repInfo, bs); err != nil {
				return err
			}
			if err := optReply(c, hdr.Option, repAck, nil); err != nil {
				return err
			}
			if hdr.Option == optGo {
				return s.transmit(ctx, c, e)
			}
		default:
			if err := optReply(c, hdr.Option, repErrUnsup, nil); err != nil {
				return err
			}
		}
	}
}

// goName reads the export name of a GO or INFO option.
func goName(data []byte) (string, bool) {
	if len(data) < 6 {
		return "", false
	}
	n := int(binary.BigEndian.Uint32(data))
	if len(data) < 4+n+2 {
		return "", false
	}
	reqs := int(binary.BigEndian.Uint16(data[4+n:]))
	if len(data) != 4+n+2+2*reqs {
		return "", false
	}
	return string(data[4 : 4+n]), true
}

func transmitFlags(e Export) uint16 {
	f := uint16(tflagHasFlags | tflagFlush | tflagFUA | tflagTrim | tflagZeroes)
	if e.ReadOnly {
		f |= tflagReadOnly
	}
	return f
}

func optReply(w io.Writer, opt, typ uint32, data []byte) error {
	out := binary.BigEndian.AppendUint64(nil, magicOptReply)
	out = binary.BigEndian.AppendUint32(out, opt)
	out = binary.BigEndian.AppendUint32(out, typ)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	_, err := w.Write(append(out, data...))
	return err
}

// transmit serves requests until the client disconnects.
func (s *Server) transmit(ctx context.Context, c io.ReadWriter, e Export) error {
	var wmu sync.Mutex // one reply at a time
	var wg sync.WaitGroup
	defer wg.Wait()
	reply := func(handle uint64, errno uint32, data []byte) error {
		out := binary.BigEndian.AppendUint32(make([]byte, 0, 16+len(data)), magicReply)
		out = binary.BigEndian.AppendUint32(out, errno)
		out = binary.BigEndian.AppendUint64(out, handle)
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(append(out, data...))
		return err
	}
	sem := make(chan struct{}, 64)
	for {
		var req struct {
			Magic  uint32
			Flags  uint16
			Type   uint16
			Handle uint64
			Offset uint64
			Len    uint32
		}
		if err := binary.Read(c, binary.BigEndian, &req); err != nil {
			return err
		}
		if req.Magic != magicRequest {
			return fmt.Errorf("nbd: bad request magic %#x", req.Magic)
		}
		var payload []byte
		if req.Type == cmdWrite {
			if req.Len > maxRequestBytes {
				return fmt.Errorf("nbd: write of %d bytes", req.Len)
			}
			payload = make([]byte, req.Len)
			if _, err := io.ReadFull(c, payload); err != nil {
				return err
			}
		}
		if req.Type == cmdDisc {
			return io.EOF
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			data, errno := s.do(e, req.Type, req.Flags, req.Offset, req.Len, payload)
			if err := reply(req.Handle, errno, data); err != nil {
				s.log.Debug("nbd reply not sent", "err", err)
			}
		})
	}
}

// zero writes n zero bytes at off, a MiB at a time.
func (s *Server) zero(e Export, off, n uint64, flags uint16) uint32 {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, uint64(len(buf)))
		if _, err := e.Dev.WriteAt(buf[:k], int64(off)); err != nil {
			s.log.Warn("nbd write zeroes failed", "export", e.Name, "offset", off, "err", err)
			return errIO
		}
		off, n = off+k, n-k
	}
	if flags&cmdFlagFUA != 0 {
		if err := e.Dev.Sync(); err != nil {
			return errIO
		}
	}
	return 0
}

// do runs one command and returns its data (for READ) and NBD errno.
func (s *Server) do(e Export, typ, flags uint16, off uint64, n uint32, payload []byte) ([]byte, uint32) {
	bs := uint64(max(e.BlockSize, 1))
	inRange := off+uint64(n) <= uint64(e.Size) && off%bs == 0 && uint64(n)%bs == 0
	switch typ {
	case cmdRead:
		if !inRange || n > maxRequestBytes {
			return nil, errInval
		}
		buf := make([]byte, n)
		if _, err := e.Dev.ReadAt(buf, int64(off)); err != nil && !errors.Is(err, io.EOF) {
			s.log.Warn("nbd read failed", "export", e.Name, "offset", off, "len", n, "err", err)
			return nil, errIO
		}
		return buf, 0
	case cmdWrite, cmdWriteZeroes, cmdTrim:
		if e.ReadOnly {
			return nil, errPerm
		}
		if !inRange {
			if off+uint64(n) > uint64(e.Size) {
				return nil, errNoSpace
			}
			return nil, errInval
		}
		if typ == cmdTrim {
			return nil, 0 // a hint; the data may stay
		}
		if typ == cmdWriteZeroes {
			return nil, s.zero(e, off, uint64(n), flags)
		}
		if _, err := e.Dev.WriteAt(payload, int64(off)); err != nil {
			s.log.Warn("nbd write failed", "export", e.Name, "offset", off, "len", n, "err", err)
			return nil, errIO
		}
		if flags&cmdFlagFUA != 0 {
			if err := e.Dev.Sync(); err != nil {
				return nil, errIO
			}
		}
		return nil, 0
	case cmdFlush:
		if err := e.Dev.Sync(); err != nil {
			s.log.Warn("nbd flush failed", "export", e.Name, "err", err)
			return nil, errIO
		}
		return nil, 0
	}
	return nil, errInval
}
