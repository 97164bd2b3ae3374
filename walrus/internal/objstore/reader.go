package objstore

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Reader reads an object's data. Its files stay readable until Close,
// whatever happens to the object meanwhile.
type Reader struct {
	Object
	files *files
	ids   []string
	once  sync.Once
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
	err := r.each(off, n, func(f *os.File, length int64) error {
		m, err := io.Copy(w, io.LimitReader(f, length))
		total += m
		if err == nil && m < length {
			err = fmt.Errorf("data file shorter than its record: %w", io.ErrUnexpectedEOF)
		}
		return err
	})
	return total, err
}

// each opens the files covering [off, off+n), positions each at the first
// byte wanted, and calls fn with it and the number of bytes to take.
func (r *Reader) each(off, n int64, fn func(f *os.File, length int64) error) error {
	for _, c := range r.Chunks {
		if n <= 0 {
			return nil
		}
		if off >= c.Size {
			off -= c.Size
			continue
		}
		length := min(c.Size-off, n)
		f, err := r.files.open(c.ID)
		if err != nil {
			return err
		}
		if off > 0 {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return fmt.Errorf("seek data file: %w", err)
			}
		}
		err = fn(f, length)
		f.Close()
		if err != nil {
			return err
		}
		n -= length
		off = 0
	}
	return nil
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
	f    *os.File
	flen int64 // bytes still to take from f
}

func (s *section) Read(p []byte) (int, error) {
	for s.flen == 0 {
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if s.left <= 0 {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > s.flen {
		p = p[:s.flen]
	}
	m, err := s.f.Read(p)
	s.flen -= int64(m)
	s.left -= int64(m)
	s.off += int64(m)
	if err == io.EOF {
		if s.flen > 0 {
			return m, fmt.Errorf("data file shorter than its record: %w", io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return m, err
}

// next opens the chunk holding s.off.
func (s *section) next() error {
	off := s.off
	for _, c := range s.r.Chunks {
		if off >= c.Size {
			off -= c.Size
			continue
		}
		f, err := s.r.files.open(c.ID)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("seek data file: %w", err)
		}
		s.f, s.flen = f, min(c.Size-off, s.left)
		return nil
	}
	return fmt.Errorf("read past the end of the object: %w", io.ErrUnexpectedEOF)
}

func (s *section) Close() error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	return nil
}
