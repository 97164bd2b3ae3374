package aoe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Initiator errors.
var (
	ErrNoTarget = errors.New("aoe: no target answered")
	ErrTimeout  = errors.New("aoe: request timed out")
	ErrATA      = errors.New("aoe: the device refused the command")
	ErrClosed   = errors.New("aoe: initiator closed")
	ErrAlign    = errors.New("aoe: offset and length must be multiples of 512")
)

// Timing of requests: the first retransmission after rtoMin, doubling up
// to rtoMax; a request fails after Deadline.
const (
	rtoMin = 50 * time.Millisecond
	rtoMax = 2 * time.Second
	// DefaultDeadline is how long a request is retried.
	DefaultDeadline = 30 * time.Second
)

// Initiator is the user-space side of one export: it reads and writes
// shelf.slot through a Conn, with as many requests in flight as the
// target invites, retransmitting lost ones. It owns the Conn.
type Initiator struct {
	conn         Conn
	shelf        uint16
	slot         uint8
	target       net.HardwareAddr
	sectors      uint64
	lba48        bool
	perFrame     int // sectors per request
	Serial       string
	Model        string
	ConfigString []byte
	deadline     time.Duration

	slots   chan struct{} // requests in flight
	tag     atomic.Uint32
	mu      sync.Mutex
	waiting map[uint32]chan Frame
	done    chan struct{}
	readErr error
	closeMu sync.Once
}

// Dial finds shelf.slot on conn (Query Config, broadcast), identifies
// the device, and returns an Initiator for it. It fails with ErrNoTarget
// when no target answers before ctx ends.
func Dial(ctx context.Context, conn Conn, shelf uint16, slot uint8) (*Initiator, error) {
	in := &Initiator{conn: conn, shelf: shelf, slot: slot, waiting: map[uint32]chan Frame{}, done: make(chan struct{}),
		deadline: DefaultDeadline}
	go in.readLoop()
	cfgFrame, err := in.roundTrip(ctx, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, CmdQueryConfig,
		AppendConfig(nil, Config{Command: ConfigRead}))
	if err != nil {
		in.Close()
		if errors.Is(err, ErrTimeout) {
			return nil, fmt.Errorf("%w: e%d.%d", ErrNoTarget, shelf, slot)
		}
		return nil, err
	}
	cfg, err := ParseConfig(cfgFrame.Payload)
	if err != nil {
		in.Close()
		return nil, err
	}
	in.target = cfgFrame.Src
	in.ConfigString = append([]byte(nil), cfg.String...)
	mtuSectors := (conn.MTU() - HeaderLen - ATAArgLen) / SectorSize
	in.perFrame = max(min(mtuSectors, int(cfg.SectorCount)), 1)
	if cfg.SectorCount == 0 {
		in.perFrame = min(mtuSectors, 2)
	}
	in.slots = make(chan struct{}, max(min(int(cfg.BufferCount), 64), 1))
	res, err := in.ata(ctx, ATA{CmdStatus: ATAIdentify, SectorCount: 1})
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("aoe: identify e%d.%d: %w", shelf, slot, err)
	}
	if len(res.Data) < SectorSize {
		in.Close()
		return nil, fmt.Errorf("aoe: identify e%d.%d: %w", shelf, slot, ErrShort)
	}
	in.sectors, in.lba48 = IdentifySectors(res.Data)
	in.Serial, in.Model = IdentifyString(res.Data, 10, 10), IdentifyString(res.Data, 27, 20)
	return in, nil
}

// Size is the device's size in bytes.
func (in *Initiator) Size() int64 { return int64(in.sectors) * SectorSize }

// Target is the MAC of the target serving the device.
func (in *Initiator) Target() net.HardwareAddr { return in.target }

// Close stops the initiator and closes its Conn.
func (in *Initiator) Close() error {
	var err error
	in.closeMu.Do(func() {
		err = in.conn.Close()
		<-in.done
	})
	return err
}

func (in *Initiator) readLoop() {
	defer close(in.done)
	buf := make([]byte, 9216)
	for {
		n, err := in.conn.ReadFrame(buf)
		if err != nil {
			in.mu.Lock()
			in.readErr = err
			for _, ch := range in.waiting {
				close(ch)
			}
			in.waiting = map[uint32]chan Frame{}
			in.mu.Unlock()
			return
		}
		f, err := ParseFrame(buf[:n])
		if err != nil || !f.IsResponse() || f.Shelf != in.shelf || f.Slot != in.slot {
			continue
		}
		in.mu.Lock()
		ch, ok := in.waiting[f.Tag]
		if ok {
			delete(in.waiting, f.Tag)
		}
		in.mu.Unlock()
		if ok {
			f.Payload = append([]byte(nil), f.Payload...)
			f.Src = append(net.HardwareAddr(nil), f.Src...)
			ch <- f
		}
	}
}

// roundTrip sends a request and waits for its response, resending it
// with backoff until in.deadline or ctx ends.
func (in *Initiator) roundTrip(ctx context.Context, dst net.HardwareAddr, cmd uint8, arg []byte) (Frame, error) {
	tag := in.tag.Add(1) & 0x7fffffff
	ch := make(chan Frame, 1)
	in.mu.Lock()
	if in.readErr != nil {
		in.mu.Unlock()
		return Frame{}, ErrClosed
	}
	in.waiting[tag] = ch
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.waiting, tag)
		in.mu.Unlock()
	}()
	h := Header{Dst: dst, Src: in.conn.HardwareAddr(), Version: Version, Shelf: in.shelf, Slot: in.slot, Command: cmd, Tag: tag}
	frame := Pad(append(AppendHeader(make([]byte, 0, ethHeaderLen+HeaderLen+len(arg)), h), arg...))
	give := time.NewTimer(in.deadline)
	defer give.Stop()
	rto := rtoMin
	for {
		if err := in.conn.WriteFrame(frame); err != nil {
			return Frame{}, err
		}
		t := time.NewTimer(rto)
		select {
		case f, ok := <-ch:
			t.Stop()
			if !ok {
				return Frame{}, ErrClosed
			}
			if f.Flags&FlagError != 0 {
				return f, fmt.Errorf("aoe: e%d.%d: target error %d", in.shelf, in.slot, f.Error)
			}
			return f, nil
		case <-t.C:
			rto = min(rto*2, rtoMax)
		case <-give.C:
			t.Stop()
			return Frame{}, ErrTimeout
		case <-ctx.Done():
			t.Stop()
			return Frame{}, ctx.Err()
		}
	}
}

// ata runs one ATA command on the device.
func (in *Initiator) ata(ctx context.Context, req ATA) (ATA, error) {
	if in.slots != nil {
		select {
		case in.slots <- struct{}{}:
			defer func() { <-in.slots }()
		case <-ctx.Done():
			return ATA{}, ctx.Err()
		}
	}
	dst := in.target
	if dst == nil {
		return ATA{}, ErrNoTarget
	}
	f, err := in.roundTrip(ctx, dst, CmdATA, AppendATA(nil, req))
	if err != nil {
		return ATA{}, err
	}
	res, err := ParseATA(f.Payload)
	if err != nil {
		return ATA{}, err
	}
	if res.CmdStatus&(ATAStatusError|0xa8) != 0 {
		return res, fmt.Errorf("%w: command %#x status %#x error %#x", ErrATA, req.CmdStatus, res.CmdStatus, res.ErrFeature)
	}
	return res, nil
}

// ReadAt reads len(p) bytes at off (both multiples of 512), one request
// per frame's worth of sectors, all in flight at once up to the target's
// buffer count.
func (in *Initiator) ReadAt(p []byte, off int64) (int, error) {
	return in.io(context.Background(), p, off, false)
}

// WriteAt writes p at off (both multiples of 512). Written data is
// durable after Flush.
func (in *Initiator) WriteAt(p []byte, off int64) (int, error) {
	return in.io(context.Background(), p, off, true)
}

// Flush has the target make every acknowledged write durable.
func (in *Initiator) Flush(ctx context.Context) error {
	cmd := uint8(ATAFlush28)
	flags := uint8(0)
	if in.lba48 {
		cmd, flags = ATAFlush48, ATAFlagExtended
	}
	_, err := in.ata(ctx, ATA{Flags: flags, CmdStatus: cmd})
	return err
}

// Sync is Flush without a context.
func (in *Initiator) Sync() error { return in.Flush(context.Background()) }

func (in *Initiator) io(ctx context.Context, p []byte, off int64, write bool) (int, error) {
	if off%SectorSize != 0 || len(p)%SectorSize != 0 {
		return 0, ErrAlign
	}
	if off < 0 || off+int64(len(p)) > in.Size() {
		return 0, fmt.Errorf("aoe: e%d.%d: %d bytes at %d: beyond the device's %d", in.shelf, in.slot, len(p), off, in.Size())
	}
	chunk := in.perFrame * SectorSize
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for start := 0; start < len(p); start += chunk {
		part := p[start:min(start+chunk, len(p))]
		lba := uint64(off+int64(start)) / SectorSize
		wg.Go(func() {
			req := ATA{SectorCount: uint8(len(part) / SectorSize), LBA: lba}
			switch {
			case write && in.lba48:
				req.Flags, req.CmdStatus, req.Data = ATAFlagExtended|ATAFlagWrite, ATAWrite48, part
			case write:
				req.Flags, req.CmdStatus, req.Data = ATAFlagWrite, ATAWrite28, part
			case in.lba48:
				req.Flags, req.CmdStatus = ATAFlagExtended, ATARead48
			default:
				req.CmdStatus = ATARead28
			}
			res, err := in.ata(ctx, req)
			if err == nil && !write {
				if len(res.Data) < len(part) {
					err = ErrShort
				} else {
					copy(part, res.Data)
				}
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return len(p), nil
}
