package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
)

// installHashReader makes r.Body check, as it is read, that the body hashes
// to want (hex SHA-256) and is as long as r.ContentLength. An empty body is
// checked at once.
func installHashReader(r *http.Request, want string) error {
	want = strings.ToLower(want)
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		if want != EmptySHA256 {
			return fmt.Errorf("%w: empty body", ErrContentSHA256)
		}
		return nil
	}
	r.Body = readCloser{newHashReader(r.Body, want, r.ContentLength), r.Body}
	return nil
}

// hashReader hashes what it reads and, instead of io.EOF, returns an error
// when the body is short or does not hash to the expected value.
type hashReader struct {
	src  io.Reader
	want string // lower-case hex
	size int64  // expected length, -1 if unknown
	n    int64
	h    hash.Hash
	err  error // sticky
}

func newHashReader(src io.Reader, want string, size int64) *hashReader {
	return &hashReader{src: src, want: want, size: size, h: sha256.New()}
}

func (h *hashReader) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.src.Read(p)
	if n > 0 {
		h.h.Write(p[:n])
		h.n += int64(n)
	}
	switch {
	case err == io.EOF:
		h.err = h.finish()
		return n, h.err
	case errors.Is(err, io.ErrUnexpectedEOF):
		h.err = fmt.Errorf("%w: %w", ErrIncompleteBody, err)
		return n, h.err
	case err != nil:
		h.err = err
		return n, err
	}
	return n, nil
}

func (h *hashReader) finish() error {
	if h.size >= 0 && h.n < h.size {
		return fmt.Errorf("%w: got %d of %d bytes", ErrIncompleteBody, h.n, h.size)
	}
	if got := hex.EncodeToString(h.h.Sum(nil)); got != h.want {
		return fmt.Errorf("%w: body hashes to %s, header says %s", ErrContentSHA256, got, h.want)
	}
	return io.EOF
}
