// Package blockdev is the device behind each exported volume: a file,
// read and written in place, that can also
//
//   - start as a snapshot and fill itself from it chunk by chunk, a
//     chunk being read from the snapshot the first time anything touches
//     it (and by a background filler), so that the volume is usable at
//     once; which chunks are filled is made durable with the data, on
//     every Sync, so that a restart neither loses a flushed write nor
//     refills over it;
//   - be frozen: Freeze returns a point-in-time view for a snapshot
//     while the volume stays writable, by copying a chunk aside the
//     first time it is written after the freeze (copy-on-write).
package blockdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Source is where a filling device's chunks come from.
type Source interface {
	// ReadChunk fills buf (one chunk) with chunk index of the snapshot.
	ReadChunk(ctx context.Context, index int64, buf []byte) error
}

// FillLog makes a filling device's progress durable: it records which
// chunks hold their data (bits), and complete once all do.
type FillLog interface {
	SaveFill(bits []byte, complete bool) error
}

// Dev is a volume's device. It is safe for concurrent use.
type Dev struct {
	f     *os.File
	size  int64
	chunk int64

	// io is held shared by writes and exclusively by Freeze, so that a
	// freeze falls between writes.
	io sync.RWMutex
	// syncMu orders Syncs, so that an older record of the filled chunks
	// never lands after a newer one.
	syncMu sync.Mutex

	mu      sync.Mutex // guards what follows
	src     Source     // nil when every chunk is filled
	log     FillLog
	filled  []byte                  // bit per chunk
	missing int64                   // chunks whose bit is clear
	filling map[int64]chan struct{} // chunks being read from src
	dirty   bool                    // filled changed since the last save
	frozen  *Frozen
}

// Open returns the device over f of size bytes in chunks of chunk bytes.
func Open(f *os.File, size, chunk int64) *Dev {
	return &Dev{f: f, size: size, chunk: chunk, filling: map[int64]chan struct{}{}}
}

// Chunks is how many chunks the device has.
func (d *Dev) Chunks() int64 { return (d.size + d.chunk - 1) / d.chunk }

// ChunkSize is the size of a chunk.
func (d *Dev) ChunkSize() int64 { return d.chunk }

// Size is the device's size in bytes.
func (d *Dev) Size() int64 { return d.size }

// FillFrom makes the device read every chunk whose bit is clear in
// filled from src before first use; log records progress.
func (d *Dev) FillFrom(src Source, filled []byte, log FillLog) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.filled = make([]byte, (d.Chunks()+7)/8)
	copy(d.filled, filled)
	d.src, d.log = src, log
	d.missing = 0
	for i := range d.Chunks() {
		if d.filled[i/8]&(1<<(i%8)) == 0 {
			d.missing++
		}
	}
	if d.missing == 0 {
		d.src = nil
	}
}

// Filling reports whether chunks remain to be read from the source.
func (d *Dev) Filling() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.src != nil
}

// ReadAt reads from the device, filling the chunks it touches first.
func (d *Dev) ReadAt(p []byte, off int64) (int, error) {
	if err := d.fill(context.Background(), off, int64(len(p))); err != nil {
		return 0, err
	}
	return d.f.ReadAt(p, off)
}

// WriteAt writes to the device: the chunks it touches are filled first,
// and copied aside for a frozen view that has not read them yet.
func (d *Dev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("blockdev: write of %d bytes at %d beyond %d", len(p), off, d.size)
	}
	if err := d.fill(context.Background(), off, int64(len(p))); err != nil {
		return 0, err
	}
	d.io.RLock()
	defer d.io.RUnlock()
	if err := d.preserve(off, int64(len(p))); err != nil {
		return 0, err
	}
	return d.f.WriteAt(p, off)
}

// Sync makes every write before it durable, and then the record of
// which chunks are filled.
func (d *Dev) Sync() error {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	d.mu.Lock()
	bits, log, dirty := append([]byte(nil), d.filled...), d.log, d.dirty
	complete := d.src == nil
	d.dirty = false
	d.mu.Unlock()
	if err := d.f.Sync(); err != nil {
		return err
	}
	if log == nil || !dirty {
		return nil
	}
	if err := log.SaveFill(bits, complete); err != nil {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
		return fmt.Errorf("blockdev: record fill: %w", err)
	}
	if complete {
		d.mu.Lock()
		if d.src == nil {
			d.log = nil
		}
		d.mu.Unlock()
	}
	return nil
}

// Close closes the file.
func (d *Dev) Close() error { return d.f.Close() }

// chunks returns the first and last chunk of a range.
func (d *Dev) chunks(off, n int64) (int64, int64) {
	if n <= 0 {
		return 0, -1
	}
	return off / d.chunk, (off + n - 1) / d.chunk
}

// fill reads the chunks of a range from the source, once each; callers
// racing for a chunk wait for the one reading it.
func (d *Dev) fill(ctx context.Context, off, n int64) error {
	first, last := d.chunks(off, n)
	for i := first; i <= last; i++ {
		if err := d.FillChunk(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// FillChunk reads chunk i from the source unless it is filled already.
func (d *Dev) FillChunk(ctx context.Context, i int64) error {
	for {
		d.mu.Lock()
		if d.src == nil || d.filled[i/8]&(1<<(i%8)) != 0 {
			d.mu.Unlock()
			return nil
		}
		if wait, ok := d.filling[i]; ok {
			d.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		d.filling[i] = done
		src := d.src
		d.mu.Unlock()

		buf := make([]byte, d.chunkLen(i))
		err := src.ReadChunk(ctx, i, buf)
		if err == nil {
			_, err = d.f.WriteAt(buf, i*d.chunk)
		}
		d.mu.Lock()
		delete(d.filling, i)
		close(done)
		if err == nil {
			d.filled[i/8] |= 1 << (i % 8)
			d.dirty = true
			if d.missing--; d.missing == 0 {
				d.src = nil
			}
		}
		d.mu.Unlock()
		if err != nil {
			return fmt.Errorf("blockdev: fill chunk %d: %w", i, err)
		}
		return nil
	}
}

func (d *Dev) chunkLen(i int64) int64 { return min(d.chunk, d.size-i*d.chunk) }

// Frozen is a point-in-time view of a device.
type Frozen struct {
	d        *Dev
	cow      *os.File
	captured []byte // bit per chunk: read, or copied aside
	aside    []byte // bit per chunk: in cow
}

// ErrFrozen is Freeze's answer while another view is open.
var ErrFrozen = errors.New("blockdev: a snapshot of the device is in progress")

// Freeze starts a point-in-time view of the device, keeping chunks
// written after it in cowPath until the view reads them. One view at a
// time.
func (d *Dev) Freeze(cowPath string) (*Frozen, error) {
	cow, err := os.OpenFile(cowPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	n := (d.Chunks() + 7) / 8
	fr := &Frozen{d: d, cow: cow, captured: make([]byte, n), aside: make([]byte, n)}
	d.io.Lock()
	defer d.io.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.frozen != nil {
		cow.Close()
		os.Remove(cowPath)
		return nil, ErrFrozen
	}
	d.frozen = fr
	return fr, nil
}

// preserve copies the chunks of a range aside for the frozen view, if
// any, that has not read them.
func (d *Dev) preserve(off, n int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fr := d.frozen
	if fr == nil {
		return nil
	}
	first, last := d.chunks(off, n)
	for i := first; i <= last; i++ {
		if fr.captured[i/8]&(1<<(i%8)) != 0 {
			continue
		}
		buf := make([]byte, d.chunkLen(i))
		if _, err := d.f.ReadAt(buf, i*d.chunk); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := fr.cow.WriteAt(buf, i*d.chunk); err != nil {
			return fmt.Errorf("blockdev: copy chunk %d aside: %w", i, err)
		}
		fr.captured[i/8] |= 1 << (i % 8)
		fr.aside[i/8] |= 1 << (i % 8)
	}
	return nil
}

// ReadChunk reads chunk i as it was when the view was made into buf,
// which must hold a chunk; it returns the chunk's length.
func (fr *Frozen) ReadChunk(ctx context.Context, i int64, buf []byte) (int, error) {
	d := fr.d
	if err := d.FillChunk(ctx, i); err != nil {
		return 0, err
	}
	n := d.chunkLen(i)
	d.mu.Lock()
	defer d.mu.Unlock()
	from := d.f
	if fr.aside[i/8]&(1<<(i%8)) != 0 {
		from = fr.cow
	}
	if _, err := from.ReadAt(buf[:n], i*d.chunk); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	fr.captured[i/8] |= 1 << (i % 8)
	return int(n), nil
}

// Close ends the view and removes its copy-on-write file.
func (fr *Frozen) Close() error {
	d := fr.d
	d.mu.Lock()
	if d.frozen == fr {
		d.frozen = nil
	}
	d.mu.Unlock()
	err := fr.cow.Close()
	if rerr := os.Remove(fr.cow.Name()); err == nil {
		err = rerr
	}
	return err
}
