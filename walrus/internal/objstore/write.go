package objstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

const (
	// inlineMax is the largest object whose data is kept in the database
	// with its record instead of in a file: a small PUT then costs a share
	// of one group commit, not a file's create, fsync and rename (and on
	// ext4 without a journal, an inode allocation that gets slow after
	// many deletes), and a GET no open and close.
	inlineMax = 32 << 10
	// bufSize is the unit in which bodies are read, written and hashed.
	bufSize = 1 << 20
	// pipelineMin is the body size from which receiving, hashing and
	// writing run in goroutines of their own instead of one loop: MD5 is
	// the slowest step of a PUT, and overlapping it with the rest is worth
	// the goroutines only for bodies of several buffers.
	pipelineMin = 4 * bufSize
	// inFlight is how many buffers a pipeline writing one file may have
	// received and not yet hashed and written.
	inFlight = 4
	// segmentSize is the size of each file of an object written as
	// segments. A multiple of bufSize.
	segmentSize = 16 << 20
	// segmentWriters is how many segment files of one body are written at
	// once. One thread writing one file cannot fill the page cache as fast
	// as the disk takes it on some machines (VMs whose fresh memory faults
	// in from the host), and the kernel serializes buffered writes to one
	// file; writes to different files run in parallel.
	segmentWriters = 2
	// parallelPuts is how many bodies at a time may be written as
	// segments; each holds segmentSize/bufSize+2 buffers. Bodies beyond
	// those are written to one file each: with that many PUTs running,
	// they are parallel already.
	parallelPuts = 2
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// written is the result of streaming a body into new data files.
type written struct {
	chunks []Chunk // in body order; a body is one chunk unless written as segments
	size   int64
	md5    string // hex
	inline []byte // the data of an inline chunk, to commit with its record
}

// writeData streams exactly size bytes of r into new uncommitted files,
// reads r to its end (so that verifying readers report their verdict),
// and fsyncs the files. On error the files are gone. An object's body
// (object set) may instead be kept in memory, to be committed inline with
// its record, when small, and split into segment files when large; a
// part's body is one file.
func (s *Store) writeData(ctx context.Context, r io.Reader, size int64, object bool) (written, error) {
	if object && size <= inlineMax {
		return readInline(ctx, r, size)
	}
	if size < pipelineMin {
		return s.writeSmall(ctx, r, size)
	}
	seg, writers := size, 1
	if object && size >= 2*s.segSize {
		select {
		case s.lanes <- struct{}{}:
			defer func() { <-s.lanes }()
			seg, writers = s.segSize, segmentWriters
		default:
		}
	}
	return s.writePipelined(ctx, r, size, seg, writers)
}

// readInline is writeData for an object small enough to be inline.
func readInline(ctx context.Context, r io.Reader, size int64) (written, error) {
	// One byte more than the size: a longer body fills it.
	data := make([]byte, size+1)
	m, err := io.ReadFull(r, data)
	if err == nil || int64(m) > size {
		return written{}, ErrTooLarge
	}
	if _, err := bodyEnd(err); err != nil {
		return written{}, err
	}
	if int64(m) < size {
		return written{}, ErrIncompleteBody
	}
	if err := ctx.Err(); err != nil {
		return written{}, err
	}
	sum := md5.Sum(data[:m])
	return written{
		chunks: []Chunk{{ID: newID(), Size: size, Inline: true}},
		size:   size, md5: hex.EncodeToString(sum[:]), inline: data[:m],
	}, nil
}

// writeSmall is writeData for small bodies: one loop receives, hashes and
// writes, with one buffer.
func (s *Store) writeSmall(ctx context.Context, r io.Reader, size int64) (w written, err error) {
	id, fh, err := s.files.create()
	if err != nil {
		return w, err
	}
	bp := bufPool.Get().(*[]byte)
	defer func() {
		bufPool.Put(bp)
		if err != nil {
			_ = fh.Close()
			s.files.discard(id)
		}
	}()
	h := md5.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return w, err
		}
		m, rerr := io.ReadFull(r, *bp)
		if m > 0 {
			if n+int64(m) > size {
				return w, ErrTooLarge
			}
			if _, err := fh.Write((*bp)[:m]); err != nil {
				return w, fmt.Errorf("write data file: %w", err)
			}
			h.Write((*bp)[:m])
			n += int64(m)
		}
		if done, err := bodyEnd(rerr); done || err != nil {
			if err != nil {
				return w, err
			}
			break
		}
	}
	if n < size {
		return w, ErrIncompleteBody
	}
	if err := syncClose(fh); err != nil {
		return w, err
	}
	return written{chunks: []Chunk{{ID: id, Size: n}}, size: n, md5: hex.EncodeToString(h.Sum(nil))}, nil
}

// bodyEnd reads the error of an io.ReadFull of a body: the body's end
// comes as EOF, or as ErrUnexpectedEOF after a short last read (a
// truncated body then falls short of its size).
func bodyEnd(err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return true, nil
	default:
		return false, readErr(err)
	}
}

func syncClose(fh *os.File) error {
	if err := fh.Sync(); err != nil {
		_ = fh.Close()
		return fmt.Errorf("sync data file: %w", err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("close data file: %w", err)
	}
	return nil
}

// block is one received buffer on its way to the hasher and a writer; it
// goes back to the free list when both are done with it.
type block struct {
	buf  *[]byte
	n    int
	seg  int  // index of the segment it belongs to
	last bool // the segment's last block
	refs atomic.Int32
}

// pipeline receives a body into blocks and hands each to the hashing
// goroutine and to the writer of its segment. Segments are consecutive
// pieces of the body, one file each; writer k writes segments k,
// k+writers, ..., so that as many files are written at once as there are
// writers while the body still arrives in order.
type pipeline struct {
	s      *Store
	free   chan *block
	hashq  chan *block
	queues []chan *block
	chunks []Chunk // by segment; each entry written by its segment's writer
	wg     sync.WaitGroup
	err    atomic.Pointer[error] // the first writer's error
	md5    hash.Hash
}

// writePipelined is writeData for large bodies: segments of seg bytes,
// written by writers goroutines.
func (s *Store) writePipelined(ctx context.Context, r io.Reader, size, seg int64, writers int) (w written, err error) {
	nseg := int((size + seg - 1) / seg)
	nbuf := inFlight + 1
	if writers > 1 {
		nbuf = int(seg/bufSize) + 2
	}
	p := &pipeline{
		s: s, free: make(chan *block, nbuf), hashq: make(chan *block, nbuf),
		queues: make([]chan *block, writers), chunks: make([]Chunk, nseg), md5: md5.New(),
	}
	for range nbuf {
		p.free <- &block{buf: bufPool.Get().(*[]byte)}
	}
	p.wg.Add(1 + writers)
	go p.hash()
	for k := range p.queues {
		p.queues[k] = make(chan *block, nbuf)
		go p.write(p.queues[k])
	}
	n, err := p.receive(ctx, r, size, seg)
	close(p.hashq)
	for _, q := range p.queues {
		close(q)
	}
	p.wg.Wait()
	for range nbuf {
		b := <-p.free
		bufPool.Put(b.buf)
	}
	if werr := p.err.Load(); err == nil && werr != nil {
		err = *werr
	}
	if err == nil && n < size {
		err = ErrIncompleteBody
	}
	if err != nil {
		for _, c := range p.chunks {
			if c.ID != "" {
				s.files.discard(c.ID)
			}
		}
		return w, err
	}
	return written{chunks: p.chunks, size: n, md5: hex.EncodeToString(p.md5.Sum(nil))}, nil
}

// receive reads the body into blocks and hands them on; it returns the
// number of bytes received.
func (p *pipeline) receive(ctx context.Context, r io.Reader, size, seg int64) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if p.err.Load() != nil {
			return n, nil // writeData reports the writer's error
		}
		b := <-p.free
		m, rerr := io.ReadFull(r, *b.buf)
		if m > 0 {
			if n+int64(m) > size {
				p.free <- b
				return n, ErrTooLarge
			}
			b.n, b.seg = m, int(n/seg)
			n += int64(m)
			b.last = n == size || n%seg == 0
			b.refs.Store(2)
			p.hashq <- b
			p.queues[b.seg%len(p.queues)] <- b
		} else {
			p.free <- b
		}
		if done, err := bodyEnd(rerr); done || err != nil {
			return n, err
		}
	}
}

// release is called by the hasher and by the writer when done with b.
func (p *pipeline) release(b *block) {
	if b.refs.Add(-1) == 0 {
		p.free <- b
	}
}

func (p *pipeline) hash() {
	defer p.wg.Done()
	for b := range p.hashq {
		p.md5.Write((*b.buf)[:b.n])
		p.release(b)
	}
}

// write writes the blocks of its segments, each segment into a new file
// that it fsyncs once the segment is whole. After an error it only
// releases blocks.
func (p *pipeline) write(q <-chan *block) {
	defer p.wg.Done()
	var (
		fh *os.File
		wb writeback
		n  int64
	)
	for b := range q {
		if p.err.Load() == nil {
			if err := p.writeBlock(b, &fh, &wb, &n); err != nil {
				p.err.CompareAndSwap(nil, &err)
			}
		}
		p.release(b)
	}
	if fh != nil { // the body ended early; writeData discards the file
		_ = fh.Close()
	}
}

func (p *pipeline) writeBlock(b *block, fh **os.File, wb *writeback, n *int64) error {
	if *fh == nil {
		id, f, err := p.s.files.create()
		if err != nil {
			return err
		}
		p.chunks[b.seg].ID = id
		*fh, *wb, *n = f, writeback{f: f}, 0
	}
	if _, err := (*fh).Write((*b.buf)[:b.n]); err != nil {
		return fmt.Errorf("write data file: %w", err)
	}
	*n += int64(b.n)
	p.chunks[b.seg].Size = *n
	if err := wb.wrote(*n); err != nil {
		return err
	}
	if !b.last {
		return nil
	}
	f := *fh
	*fh = nil
	return syncClose(f)
}

func readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrIncompleteBody, err)
	}
	return err
}
