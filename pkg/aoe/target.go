package aoe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
)

// Backend is the storage behind an export: an *os.File is one.
type Backend interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every write it acknowledged durable.
	Sync() error
}

// Export is a device the target serves as shelf.slot.
type Export struct {
	Shelf uint16
	Slot  uint8
	// Sectors is the device's size in 512-byte sectors.
	Sectors uint64
	Dev     Backend
	// Serial and Model are reported by IDENTIFY DEVICE.
	Serial, Model string
	// Allow lists the MACs that may use the export (its MAC mask list).
	// Frames from others are ignored, as if the export were not there.
	Allow []net.HardwareAddr
	// AllowAll lets every MAC use the export, whatever Allow says.
	AllowAll bool
}

// ErrExists reports an export already served at the same address.
var ErrExists = errors.New("aoe: shelf.slot already exported")

// Target serves exports over a Conn: the ATA commands Linux's aoe driver
// and this package's initiator use (IDENTIFY DEVICE, READ and WRITE
// SECTORS with LBA28 and LBA48, FLUSH CACHE, CHECK POWER MODE), Query
// Config with its config string, and reading the MAC mask list (the
// list itself is the owner's to set, with SetAllow: the wire cannot
// change who may use a volume).
type Target struct {
	conn    Conn
	log     *slog.Logger
	workers int

	mu      sync.RWMutex
	exports map[uint32]*export
}

type export struct {
	Export
	mu     sync.Mutex // guards config
	config []byte
}

// BufferCount is how many requests per initiator the target invites at
// once (Query Config's buffer count).
const BufferCount = 64

// Firmware is the firmware version the target reports.
const Firmware = 0x4019

// NewTarget returns a target on conn with no exports; workers (at least
// 1) frames are handled at once.
func NewTarget(conn Conn, workers int, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Target{conn: conn, log: log, workers: max(workers, 1), exports: map[uint32]*export{}}
}

func addrKey(shelf uint16, slot uint8) uint32 { return uint32(shelf)<<8 | uint32(slot) }

// Add serves e.
func (t *Target) Add(e Export) error {
	if e.Shelf == BroadcastShelf || e.Slot == BroadcastSlot {
		return fmt.Errorf("aoe: e%d.%d: a broadcast address", e.Shelf, e.Slot)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := addrKey(e.Shelf, e.Slot)
	if _, ok := t.exports[k]; ok {
		return fmt.Errorf("%w: e%d.%d", ErrExists, e.Shelf, e.Slot)
	}
	e.Allow = slices.Clone(e.Allow)
	t.exports[k] = &export{Export: e}
	return nil
}

// Remove stops serving shelf.slot; it reports whether it was served.
func (t *Target) Remove(shelf uint16, slot uint8) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := addrKey(shelf, slot)
	_, ok := t.exports[k]
	delete(t.exports, k)
	return ok
}

// SetAllow replaces the MAC mask list of shelf.slot.
func (t *Target) SetAllow(shelf uint16, slot uint8, macs []net.HardwareAddr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[addrKey(shelf, slot)]
	if ok {
		e.Allow = slices.Clone(macs) // read under t.mu only
	}
	return ok
}

// Serve handles frames until ctx ends or the Conn fails; it closes
// nothing (a Conn closed afterwards ends the workers still reading). Each
// of the workers reads a frame and answers it, so a request waits for no
// other goroutine.
func (t *Target) Serve(ctx context.Context) error {
	errc := make(chan error, t.workers)
	for range t.workers {
		go func() {
			buf := make([]byte, 9216)
			w := &worker{out: make([]byte, 0, 9216)}
			for {
				n, err := t.conn.ReadFrame(buf)
				if err != nil {
					errc <- err
					return
				}
				if ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
				t.handle(w, buf[:n])
			}
		}()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-errc:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
}

// worker holds a serving goroutine's reply buffer.
type worker struct {
	out []byte
}

// targets returns the exports a request addresses that its sender may
// use, by address.
func (t *Target) targets(h Header) []*export {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if h.Shelf != BroadcastShelf && h.Slot != BroadcastSlot {
		e, ok := t.exports[addrKey(h.Shelf, h.Slot)]
		if !ok || !(e.AllowAll || allowed(e.Allow, h.Src)) {
			return nil
		}
		return []*export{e}
	}
	var out []*export
	for _, e := range t.exports {
		if (h.Shelf == BroadcastShelf || h.Shelf == e.Shelf) && (h.Slot == BroadcastSlot || h.Slot == e.Slot) &&
			(e.AllowAll || allowed(e.Allow, h.Src)) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *export) int { return int(addrKey(a.Shelf, a.Slot)) - int(addrKey(b.Shelf, b.Slot)) })
	return out
}

func allowed(list []net.HardwareAddr, mac net.HardwareAddr) bool {
	for _, m := range list {
		if bytes.Equal(m, mac) {
			return true
		}
	}
	return false
}

// handle answers one frame; what it cannot answer it drops.
func (t *Target) handle(w *worker, b []byte) {
	f, err := ParseFrame(b)
	if err != nil || f.IsResponse() {
		return
	}
	if f.Version != Version {
		t.reply(f.Header, nil, ErrUnsupportedVersion)
		return
	}
	for _, e := range t.targets(f.Header) {
		h := f.Header
		h.Shelf, h.Slot = e.Shelf, e.Slot
		switch f.Command {
		case CmdATA:
			if h.Shelf != f.Shelf || h.Slot != f.Slot {
				continue // ATA is never broadcast
			}
			t.ata(w, h, e, f.Payload)
		case CmdQueryConfig:
			t.queryConfig(h, e, f.Payload)
		case CmdMACMask:
			t.maskList(h, e, f.Payload)
		default:
			t.reply(h, nil, ErrUnrecognizedCommand)
		}
	}
}

// replyHeader is the header of a response to the request h; aoeErr,
// when not 0, sets FlagError.
func (t *Target) replyHeader(req Header, aoeErr uint8) Header {
	h := req
	h.Dst, h.Src = req.Src, t.conn.HardwareAddr()
	h.Version, h.Flags, h.Error = Version, FlagResponse, 0
	if aoeErr != 0 {
		h.Flags |= FlagError
		h.Error = aoeErr
	}
	return h
}

// reply sends a response to the request h: arg is the argument and data
// (nil for none); aoeErr, when not 0, sets FlagError.
func (t *Target) reply(req Header, arg []byte, aoeErr uint8) {
	out := AppendHeader(make([]byte, 0, ethHeaderLen+HeaderLen+len(arg)), t.replyHeader(req, aoeErr))
	t.send(req, Pad(append(out, arg...)))
}

// send writes a response frame.
func (t *Target) send(req Header, frame []byte) {
	if err := t.conn.WriteFrame(frame); err != nil {
		t.log.Warn("aoe reply not sent", "shelf", req.Shelf, "slot", req.Slot, "to", req.Src.String(), "err", err)
	}
}

// maxSectors is the most sectors a frame carries on the Conn's MTU.
func (t *Target) maxSectors() int {
	return min((t.conn.MTU()-HeaderLen-ATAArgLen)/SectorSize, 255)
}

func (t *Target) ata(w *worker, h Header, e *export, payload []byte) {
	req, err := ParseATA(payload)
	if err != nil {
		t.reply(h, nil, ErrBadArgument)
		return
	}
	res := ATA{Flags: req.Flags, SectorCount: req.SectorCount, LBA: req.LBA, CmdStatus: ATAStatusDRDY}
	abort := func() {
		res.CmdStatus, res.ErrFeature, res.Data = ATAStatusDRDY|ATAStatusError, ATAErrorAbort, nil
	}
	n := int(req.SectorCount)
	switch req.CmdStatus {
	case ATAIdentify:
		res.Data = identify(e)
	case ATARead28, ATARead48:
		if n > t.maxSectors() {
			t.reply(h, nil, ErrBadArgument)
			return
		}
		if req.LBA+uint64(n) > e.Sectors {
			abort()
			break
		}
		// The reply is built in the worker's buffer, the sectors read
		// straight into it.
		out := AppendATA(AppendHeader(w.out[:0], t.replyHeader(h, 0)), res)
		size := len(out) + n*SectorSize
		if cap(out) < size {
			out = append(out, make([]byte, size-len(out))...)
		}
		out = out[:size]
		w.out = out
		if _, err := e.Dev.ReadAt(out[size-n*SectorSize:], int64(req.LBA)*SectorSize); err != nil && !errors.Is(err, io.EOF) {
			t.log.Error("aoe read failed", "shelf", e.Shelf, "slot", e.Slot, "lba", req.LBA, "err", err)
			abort()
			break
		}
		t.send(h, Pad(out))
		return
	case ATAWrite28, ATAWrite48:
		if n > t.maxSectors() || len(req.Data) < n*SectorSize {
			t.reply(h, nil, ErrBadArgument)
			return
		}
		if req.LBA+uint64(n) > e.Sectors {
			abort()
			break
		}
		if _, err := e.Dev.WriteAt(req.Data[:n*SectorSize], int64(req.LBA)*SectorSize); err != nil {
			t.log.Error("aoe write failed", "shelf", e.Shelf, "slot", e.Slot, "lba", req.LBA, "err", err)
			abort()
		}
	case ATAFlush28, ATAFlush48:
		if err := e.Dev.Sync(); err != nil {
			t.log.Error("aoe flush failed", "shelf", e.Shelf, "slot", e.Slot, "err", err)
			abort()
		}
	case ATACheckPower:
		res.SectorCount = 0xff // active or idle
	default:
		abort()
	}
	t.reply(h, AppendATA(nil, res), 0)
}

func (t *Target) queryConfig(h Header, e *export, payload []byte) {
	req, err := ParseConfig(payload)
	if err != nil {
		t.reply(h, nil, ErrBadArgument)
		return
	}
	e.mu.Lock()
	cur := e.config
	switch req.Command {
	case ConfigRead:
	case ConfigTestExact:
		if !bytes.Equal(cur, req.String) {
			e.mu.Unlock()
			return
		}
	case ConfigTestPrefix:
		if !bytes.HasPrefix(cur, req.String) {
			e.mu.Unlock()
			return
		}
	case ConfigSet:
		if len(cur) > 0 && !bytes.Equal(cur, req.String) {
			e.mu.Unlock()
			t.reply(h, AppendConfig(nil, t.config(cur)), ErrConfigStringPresent)
			return
		}
		e.config = slices.Clone(req.String)
	case ConfigForceSet:
		e.config = slices.Clone(req.String)
	default:
		e.mu.Unlock()
		t.reply(h, nil, ErrBadArgument)
		return
	}
	cur = e.config
	e.mu.Unlock()
	t.reply(h, AppendConfig(nil, t.config(cur)), 0)
}

func (t *Target) config(s []byte) Config {
	return Config{BufferCount: BufferCount, Firmware: Firmware, SectorCount: uint8(t.maxSectors()), Version: Version,
		String: s}
}

func (t *Target) maskList(h Header, e *export, payload []byte) {
	req, err := ParseMaskList(payload)
	if err != nil {
		t.reply(h, nil, ErrBadArgument)
		return
	}
	res := MaskList{Command: req.Command}
	if req.Command != MaskRead {
		res.Error = MaskErrBadCommand
	}
	t.mu.RLock()
	allow := slices.Clone(e.Allow)
	t.mu.RUnlock()
	for _, m := range allow {
		res.Directives = append(res.Directives, Directive{Command: DirectiveAdd, MAC: m})
	}
	t.reply(h, AppendMaskList(nil, res), 0)
}
