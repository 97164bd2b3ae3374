package objstore

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// Reader reads an object's data. Its files stay readable until Close,
// whatever happens to the object meanwhile.
type Reader struct {
	Object
	files  *files
	ids    []string
	inline map[string][]byte // inline chunks' data by id, read with the record
	once   sync.Once
}

// Close lets go of the object's files.
func (r *Reader) Close() error {
	r.once.Do(func() { r.files.unpin(r.ids) })
	return nil
}

// WriteRange copies n bytes of the object starting at off to w. Where w
// can take a file directly (a TCP connection), the kernel copies the data
// (sendfile).
func (r *Reader) WriteRange(w io.Writer, off, n int64) (int64, error) {
	var total int64
	for _, c := range r.Chunks {
		if n <= 0 {
			break
		}
		if off >= c.Size {
			off -= c.Size
			continue
		}
		length := min(c.Size-off, n)
		src, err := r.openChunk(c, off)
		if err != nil {
			return total, err
		}
		m, err := io.Copy(w, io.LimitReader(src, length))
		src.Close()
		total += m
		if err == nil && m < length {
			err = fmt.Errorf("data file shorter than its record: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return total, err
		}
		n -= length
		off = 0
	}
	return total, nil
}

// openChunk opens chunk c positioned at byte off of it. A file chunk's
// reader is the *os.File itself, so that copies to a socket can use
// sendfile.
func (r *Reader) openChunk(c Chunk, off int64) (io.ReadCloser, error) {
	if c.Inline {
		return io.NopCloser(bytes.NewReader(r.inline[c.ID][off:])), nil
	}
	f, err := r.files.open(c.ID)
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("seek data file: %w", err)
		}
	}
	return f, nil
}

// chunkAt opens the chunk holding byte off of the object, positioned
// there, and says how many of the n bytes from off it holds.
func (r *Reader) chunkAt(off, n int64) (io.ReadCloser, int64, error) {
	for _, c := range r.Chunks {
		if off >= c.Size {
			off -= c.Size
			continue
		}
		src, err := r.openChunk(c, off)
		return src, min(c.Size-off, n), err
	}
	return nil, 0, fmt.Errorf("read past the end of the object: %w", io.ErrUnexpectedEOF)
}

// Section returns a reader of n bytes from off. Close the returned reader
// before the Reader.
func (r *Reader) Section(off, n int64) io.ReadCloser {
	return &section{r: r, off: off, left: n}
}

type section struct {
	r    *Reader
	off  int64 // offset of the next byte within the object
	left int64
	src  io.ReadCloser // the chunk being read
	slen int64         // bytes still to take from src
}

func (s *section) Read(p []byte) (int, error) {
	for s.slen == 0 {
		s.Close()
		if s.left <= 0 {
			return 0, io.EOF
		}
		src, length, err := s.r.chunkAt(s.off, s.left)
		if err != nil {
			return 0, err
		}
		s.src, s.slen = src, length
	}
	if int64(len(p)) > s.slen {
		p = p[:s.slen]
	}
	m, err := s.src.Read(p)
	s.slen -= int64(m)
	s.left -= int64(m)
	s.off += int64(m)
	if err == io.EOF {
		if s.slen > 0 {
			return m, fmt.Errorf("data file shorter than its record: %w", io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return m, err
}

func (s *section) Close() error {
	if s.src != nil {
		s.src.Close()
		s.src = nil
	}
	return nil
}
