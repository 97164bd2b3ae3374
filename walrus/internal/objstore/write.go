package objstore

import (
	"crypto/md5"
	"hash"
	"sync"
)

const (
	// bufSize is the unit in which bodies are read, written and hashed.
	bufSize = 1 << 20
	// pipelineMin is the body size from which MD5 runs beside the
	// receive-and-write loop instead of in it: MD5 is the slowest step of
	// a PUT, and overlapping it with the rest is worth a goroutine only
	// for bodies of several buffers.
	pipelineMin = 4 * bufSize
	// inFlight is how many buffers may wait for the hashing goroutine.
	inFlight = 4
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// hasher computes a body's MD5 (its ETag) as buffers are written. For
// large bodies the hashing runs in its own goroutine, so that receiving
// and writing the next buffer overlaps hashing the last one.
type hasher struct {
	h    hash.Hash
	buf  *[]byte // the one buffer of the inline mode
	work chan *[]byte
	free chan *[]byte
	done chan struct{}
	cur  *[]byte
}

func newHasher(size int64) *hasher {
	h := &hasher{h: md5.New()}
	if size < pipelineMin {
		h.buf = bufPool.Get().(*[]byte)
		return h
	}
	h.work = make(chan *[]byte, inFlight)
	h.free = make(chan *[]byte, inFlight+1)
	h.done = make(chan struct{})
	for range inFlight + 1 {
		h.free <- bufPool.Get().(*[]byte)
	}
	go func() {
		defer close(h.done)
		for b := range h.work {
			h.h.Write(*b)
			*b = (*b)[:bufSize]
			h.free <- b
		}
	}()
	return h
}

// buffer returns the buffer to read the next piece of the body into.
func (h *hasher) buffer() []byte {
	if h.buf != nil {
		return *h.buf
	}
	h.cur = <-h.free
	return *h.cur
}

// write hashes p, which is the start of the last buffer returned; the
// buffer must not be touched afterwards.
func (h *hasher) write(p []byte) {
	if h.buf != nil {
		h.h.Write(p)
		return
	}
	*h.cur = p
	h.work <- h.cur
	h.cur = nil
}

// sum returns the MD5 of everything written.
func (h *hasher) sum() []byte {
	h.wait()
	return h.h.Sum(nil)
}

func (h *hasher) wait() {
	if h.work != nil {
		close(h.work)
		h.work = nil
		<-h.done
	}
}

// close gives the buffers back; the hasher is not used after it.
func (h *hasher) close() {
	h.wait()
	if h.buf != nil {
		bufPool.Put(h.buf)
		h.buf = nil
		return
	}
	if h.cur != nil {
		*h.cur = (*h.cur)[:bufSize]
		bufPool.Put(h.cur)
		h.cur = nil
	}
	if h.free != nil {
		close(h.free)
		for b := range h.free {
			bufPool.Put(b)
		}
		h.free = nil
	}
}
