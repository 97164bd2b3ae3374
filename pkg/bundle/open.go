package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
)

// PartSource gives access to a bundle's parts by file name. Part returns an
// error wrapping ErrMissingPart or fs.ErrNotExist when there is no such part.
type PartSource interface {
	Part(ctx context.Context, filename string) (io.ReadCloser, error)
}

// maxTrailer bounds the tar stream after the image member: end-of-archive
// blocks and padding to the record size (10 KiB for GNU tar and Python).
const maxTrailer = 1 << 20

// Open returns a reader of the image in the bundle m describes, decrypted
// with key and iv (from Keys). The reader fetches the parts from src in
// order and streams them through SHA-1 checks, AES-128-CBC decryption,
// gunzip and untar, with memory bounded whatever the image size.
//
// Each part's digest is checked at the end of the part, before any byte of
// the next part is read. Reading reports an error, never io.EOF, when a
// part is missing or altered or when the image does not match the
// manifest's digest and size. The Read that would return the image's last
// bytes first reads the rest of the stream and checks the image digest; on
// failure it returns the error instead of those bytes. So a caller never
// receives all of a bad image, and one that keeps the data only after
// reading io.EOF never keeps bad data. Open does not check bundled_size;
// the part digests cover the parts' lengths. Errors wrap ErrMissingPart, ErrPartDigest,
// ErrImageDigest or ErrKeyDecrypt (the first part does not decrypt to a
// gzip stream: wrong key or IV), or are the source's or ctx's errors.
//
// Open reads the first part up to the tar header, so a wrong key or a
// missing first part shows at once. Close the reader when done.
func Open(ctx context.Context, m *Manifest, key, iv []byte, src PartSource) (io.ReadCloser, error) {
	if m == nil || len(m.Parts) == 0 {
		return nil, fmt.Errorf("%w: no parts", ErrMalformedManifest)
	}
	want, err := hex.DecodeString(m.Digest)
	if err != nil || len(want) != sha1.Size {
		return nil, fmt.Errorf("%w: image digest is not a SHA-1", ErrMalformedManifest)
	}
	if len(key) != aes.BlockSize || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: key and iv must be %d bytes", ErrKeyDecrypt, aes.BlockSize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyDecrypt, err)
	}
	r := &imageReader{
		ctx:   ctx,
		m:     m,
		want:  want,
		parts: &partReader{ctx: ctx, src: src, parts: m.Parts},
	}
	plain := newCBCReader(r.parts, cipher.NewCBCDecrypter(block, iv))
	gz, err := gzip.NewReader(plain)
	if err != nil {
		return nil, r.abort(r.classify(err, true))
	}
	r.tarred = &hashReader{r: gz, h: sha1.New()}
	r.tr = tar.NewReader(r.tarred)
	hdr, err := r.tr.Next()
	if err != nil {
		return nil, r.abort(r.classify(err, false))
	}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00', tar.TypeGNUSparse:
	default:
		return nil, r.abort(fmt.Errorf("%w: tar member %q is of type %q, not a regular file", ErrImageDigest, hdr.Name, hdr.Typeflag))
	}
	if hdr.Size != m.Size {
		return nil, r.abort(fmt.Errorf("%w: image is %d bytes, manifest says %d", ErrImageDigest, hdr.Size, m.Size))
	}
	r.left = hdr.Size
	return r, nil
}

// imageReader is the reader Open returns.
type imageReader struct {
	ctx    context.Context
	m      *Manifest
	want   []byte
	parts  *partReader
	tarred *hashReader // the gunzipped tar stream, hashed as it is read
	tr     *tar.Reader
	left   int64 // image bytes not yet read
	err    error // sticky; io.EOF after success
}

func (r *imageReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if err := r.ctx.Err(); err != nil {
		r.err = r.abort(err)
		return 0, r.err
	}
	if r.left == 0 {
		r.err = r.finish()
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.tr.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		err = nil
		if r.left > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		r.err = r.abort(r.classify(err, false))
		return n, r.err
	}
	if r.left == 0 {
		// Check everything before handing out the image's last bytes, so
		// that even a caller that stops after Size bytes never holds the
		// whole of a bad image.
		if r.err = r.finish(); r.err != io.EOF {
			return 0, r.err
		}
	}
	return n, nil
}

// finish reads the rest of the stream after the image and checks the image
// digest. It returns io.EOF when all is well.
func (r *imageReader) finish() error {
	if _, err := r.tr.Next(); err != io.EOF {
		if err == nil {
			return r.abort(fmt.Errorf("%w: tar stream holds more than one member", ErrImageDigest))
		}
		return r.abort(r.classify(err, false))
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.tarred, maxTrailer+1))
	if err != nil {
		return r.abort(r.classify(err, false))
	}
	if n > maxTrailer {
		return r.abort(fmt.Errorf("%w: more than %d bytes after the image", ErrImageDigest, maxTrailer))
	}
	if !r.parts.done() {
		// The gzip stream ended where the parts did not.
		return r.abort(fmt.Errorf("%w: data after the end of the gzip stream", ErrImageDigest))
	}
	if got := r.tarred.h.Sum(nil); !bytes.Equal(got, r.want) {
		return r.abort(fmt.Errorf("%w: sha1 of the tarred image is %x, manifest says %s", ErrImageDigest, got, r.m.Digest))
	}
	return io.EOF
}

// classify turns an error from the decoding chain into a package error.
// Errors of the part reader (missing or altered part, source failure,
// cancellation) stand. Otherwise the current part is read to its end to
// see whether it is altered, which explains any decoding failure; if it is
// intact, a failure while reading the gzip header means a wrong key or IV
// and anything later a badly made image.
func (r *imageReader) classify(err error, header bool) error {
	if r.parts.err != nil {
		return r.parts.err
	}
	if perr := r.parts.verifyRest(); perr != nil {
		return perr
	}
	if header {
		return fmt.Errorf("%w: first part does not decrypt to a gzip stream (wrong key or iv): %w", ErrKeyDecrypt, err)
	}
	return fmt.Errorf("%w: corrupt image stream: %w", ErrImageDigest, err)
}

// abort releases the parts and returns err.
func (r *imageReader) abort(err error) error {
	r.parts.close()
	return err
}

// Close releases the part being read.
func (r *imageReader) Close() error {
	if r.err == nil {
		r.err = fs.ErrClosed
	}
	r.parts.close()
	return nil
}

// hashReader hashes what it reads.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// partReader concatenates the parts, checking each one's SHA-1 at its end.
type partReader struct {
	ctx   context.Context
	src   PartSource
	parts []Part
	next  int           // index into parts of the next part to open
	cur   io.ReadCloser // the part being read, or nil
	h     hash.Hash
	err   error // sticky
}

func (p *partReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	for {
		if err := p.ctx.Err(); err != nil {
			p.err = err
			return 0, err
		}
		if p.cur == nil {
			if p.next == len(p.parts) {
				return 0, io.EOF
			}
			if err := p.openNext(); err != nil {
				p.err = err
				return 0, err
			}
		}
		n, err := p.cur.Read(b)
		p.h.Write(b[:n])
		if err == io.EOF {
			if err := p.endPart(); err != nil {
				p.err = err
				return 0, err
			}
			err = nil
		}
		if err != nil {
			part := p.parts[p.next-1]
			p.err = fmt.Errorf("read part %d (%s): %w", part.Index, part.Filename, err)
			return 0, p.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (p *partReader) openNext() error {
	part := p.parts[p.next]
	rc, err := p.src.Part(p.ctx, part.Filename)
	if err != nil {
		if errors.Is(err, ErrMissingPart) || errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: part %d (%s): %w", ErrMissingPart, part.Index, part.Filename, err)
		}
		return fmt.Errorf("open part %d (%s): %w", part.Index, part.Filename, err)
	}
	p.cur = rc
	p.next++
	if p.h == nil {
		p.h = sha1.New()
	}
	p.h.Reset()
	return nil
}

// endPart closes the current part, which has been read to its end, and
// checks its digest.
func (p *partReader) endPart() error {
	p.close()
	part := p.parts[p.next-1]
	got := p.h.Sum(nil)
	want, err := hex.DecodeString(part.SHA1)
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("%w: part %d (%s): sha1 %x, manifest says %s", ErrPartDigest, part.Index, part.Filename, got, part.SHA1)
	}
	return nil
}

// verifyRest reads the current part to its end and checks its digest.
func (p *partReader) verifyRest() error {
	if p.err != nil {
		return p.err
	}
	if p.cur == nil {
		return nil
	}
	buf := make([]byte, 32<<10)
	for {
		if err := p.ctx.Err(); err != nil {
			p.err = err
			return err
		}
		n, err := p.cur.Read(buf)
		p.h.Write(buf[:n])
		if err == io.EOF {
			if err := p.endPart(); err != nil {
				p.err = err
				return err
			}
			return nil
		}
		if err != nil {
			return nil // the decoding error stands
		}
	}
}

// done reports whether every part has been read and checked.
func (p *partReader) done() bool {
	return p.err == nil && p.cur == nil && p.next == len(p.parts)
}

func (p *partReader) close() {
	if p.cur != nil {
		p.cur.Close()
		p.cur = nil
	}
}

// cbcReader decrypts AES-CBC as it reads and removes the PKCS#7 padding of
// the last block, which it recognises by the end of its input.
type cbcReader struct {
	src   io.Reader
	mode  cipher.BlockMode
	buf   []byte
	start int    // buf[start:end] is ciphertext not yet decrypted
	end   int    //
	out   []byte // decrypted bytes not yet returned (in buf)
	total int64  // ciphertext bytes read
	eof   bool
	err   error
}

func newCBCReader(src io.Reader, mode cipher.BlockMode) *cbcReader {
	return &cbcReader{src: src, mode: mode, buf: make([]byte, 64<<10)}
}

func (c *cbcReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.eof {
			return 0, io.EOF
		}
		c.fill()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// fill reads ciphertext and decrypts every whole block that is known not to
// be the last one, or, at the end of the input, the rest.
func (c *cbcReader) fill() {
	bs := c.mode.BlockSize()
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	n, err := c.src.Read(c.buf[c.end:])
	c.end += n
	c.total += int64(n)
	switch {
	case err == io.EOF:
		if c.total == 0 || c.end%bs != 0 {
			c.err = fmt.Errorf("ciphertext of %d bytes is not a whole number of %d-byte blocks", c.total, bs)
			return
		}
		c.mode.CryptBlocks(c.buf[:c.end], c.buf[:c.end])
		pad := int(c.buf[c.end-1])
		if pad == 0 || pad > bs {
			c.err = errors.New("bad pkcs#7 padding")
			return
		}
		for _, b := range c.buf[c.end-pad : c.end] {
			if int(b) != pad {
				c.err = errors.New("bad pkcs#7 padding")
				return
			}
		}
		c.out = c.buf[:c.end-pad]
		c.start, c.end = 0, 0
		c.eof = true
	case err != nil:
		c.err = err
	case c.end > bs:
		// Keep at least one byte back: the blocks before it are not last.
		k := (c.end - 1) / bs * bs
		c.mode.CryptBlocks(c.buf[:k], c.buf[:k])
		c.out = c.buf[:k]
		c.start = k
	}
}
