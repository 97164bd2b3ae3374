package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// chunkMode is the flavour of an aws-chunked body.
type chunkMode int

const (
	// modeSigned is STREAMING-AWS4-HMAC-SHA256-PAYLOAD.
	modeSigned chunkMode = iota
	// modeSignedTrailer is STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
	modeSignedTrailer
	// modeUnsignedTrailer is STREAMING-UNSIGNED-PAYLOAD-TRAILER.
	modeUnsignedTrailer
)

func (m chunkMode) signed() bool { return m != modeUnsignedTrailer }

// Bounds on the framing of an aws-chunked body; they keep memory bounded
// whatever the body size.
const (
	chunkBufSize    = 16 << 10 // read buffer
	maxChunkLine    = 4 << 10  // a chunk header line, CRLF included
	maxTrailerBytes = 16 << 10 // everything after the final chunk header
	maxTrailers     = 64
)

// checksumSizes gives the decoded size of the x-amz-checksum-* trailers
// whose algorithm is known.
var checksumSizes = map[string]int{
	"X-Amz-Checksum-Crc32":     4,
	"X-Amz-Checksum-Crc32c":    4,
	"X-Amz-Checksum-Crc64nvme": 8,
	"X-Amz-Checksum-Sha1":      20,
	"X-Amz-Checksum-Sha256":    32,
}

// chunkConfig is what the decoder needs to know about the request.
type chunkConfig struct {
	mode       chunkMode
	key        []byte // derived signing key (signed modes)
	amzDate    string // timestamp of the string to sign
	scope      string // credential scope
	seed       string // hex signature of the request (signed modes)
	decodedLen int64  // x-amz-decoded-content-length
	// trailers are the canonical names declared in x-amz-trailer; when
	// non-empty, exactly these trailers must be sent.
	trailers  []string
	onTrailer func(http.Header) // called with the trailers before io.EOF
}

// chunkedReader decodes an aws-chunked body while it is read. Chunk data
// is passed through as it arrives; the chunk signature is checked when the
// chunk ends, and every error (bad signature, bad framing, short body) is
// returned by the Read that would otherwise return io.EOF, or earlier.
type chunkedReader struct {
	cfg      chunkConfig
	src      *bufio.Reader
	prevSig  string // hex signature of the previous chunk (the seed at first)
	n        int64  // decoded bytes so far
	left     int64  // data bytes left in the current chunk
	inChunk  bool   // a chunk header was read and its end is pending
	chunkNo  int
	chunkSig []byte
	h        hash.Hash
	err      error // sticky
}

func newChunkedReader(src io.Reader, cfg chunkConfig) *chunkedReader {
	return &chunkedReader{
		cfg:     cfg,
		src:     bufio.NewReaderSize(src, chunkBufSize),
		prevSig: cfg.seed,
		h:       sha256.New(),
	}
}

func (c *chunkedReader) fail(err error) error {
	c.err = err
	return err
}

// Read implements io.Reader.
func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for c.left == 0 {
		if c.inChunk {
			if err := c.endChunk(); err != nil {
				return 0, c.fail(err)
			}
		}
		final, err := c.readHeader()
		if err != nil {
			return 0, c.fail(err)
		}
		if final {
			return 0, c.fail(c.finish())
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.src.Read(p)
	if n > 0 {
		if c.cfg.mode.signed() {
			c.h.Write(p[:n])
		}
		c.left -= int64(n)
		c.n += int64(n)
	}
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, c.fail(fmt.Errorf("%w: body ended inside chunk %d", ErrIncompleteBody, c.chunkNo))
		}
		return n, c.fail(err)
	}
	return n, nil
}

// readErr maps an error of the underlying body.
func readErr(err error, where string) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: body ended %s", ErrIncompleteBody, where)
	}
	return err
}

// readHeader reads "hex-size[;chunk-signature=sig]\r\n". It reports whether
// this is the final, zero-size chunk.
func (c *chunkedReader) readHeader() (final bool, err error) {
	c.chunkNo++
	raw, err := c.src.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(raw) > maxChunkLine {
		return false, fmt.Errorf("%w: chunk %d header too long", ErrChunkEncoding, c.chunkNo)
	}
	if err != nil {
		return false, readErr(err, fmt.Sprintf("before chunk %d", c.chunkNo))
	}
	line, ok := strings.CutSuffix(string(raw), "\r\n")
	if !ok {
		return false, fmt.Errorf("%w: chunk %d header not terminated by CRLF", ErrChunkEncoding, c.chunkNo)
	}
	sizeHex, ext, hasExt := strings.Cut(line, ";")
	if len(sizeHex) == 0 || len(sizeHex) > 16 {
		return false, fmt.Errorf("%w: chunk %d size %q", ErrChunkEncoding, c.chunkNo, sizeHex)
	}
	size, err := strconv.ParseUint(sizeHex, 16, 63)
	if err != nil {
		return false, fmt.Errorf("%w: chunk %d size %q", ErrChunkEncoding, c.chunkNo, sizeHex)
	}
	if c.cfg.mode.signed() {
		sig, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !hasExt || !ok {
			return false, fmt.Errorf("%w: chunk %d has no chunk-signature", ErrChunkEncoding, c.chunkNo)
		}
		if c.chunkSig, err = parseSignature(sig); err != nil {
			return false, fmt.Errorf("%w: chunk %d chunk-signature is not 64 hex digits", ErrChunkEncoding, c.chunkNo)
		}
	}
	if rest := c.cfg.decodedLen - c.n; int64(size) > rest {
		return false, fmt.Errorf("%w: chunk %d of %d bytes goes past x-amz-decoded-content-length %d",
			ErrChunkEncoding, c.chunkNo, size, c.cfg.decodedLen)
	}
	c.h.Reset()
	if size == 0 {
		if c.cfg.mode.signed() {
			if err := c.verifyChunk(EmptySHA256); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	c.left = int64(size)
	c.inChunk = true
	return false, nil
}

// endChunk reads the CRLF after the chunk data and checks the signature.
func (c *chunkedReader) endChunk() error {
	c.inChunk = false
	var crlf [2]byte
	if _, err := io.ReadFull(c.src, crlf[:]); err != nil {
		return readErr(err, fmt.Sprintf("after chunk %d data", c.chunkNo))
	}
	if crlf != [2]byte{'\r', '\n'} {
		return fmt.Errorf("%w: chunk %d data not followed by CRLF", ErrChunkEncoding, c.chunkNo)
	}
	if c.cfg.mode.signed() {
		return c.verifyChunk(hex.EncodeToString(c.h.Sum(nil)))
	}
	return nil
}

// verifyChunk checks the current chunk's signature, chained from the
// previous one, and advances the chain.
func (c *chunkedReader) verifyChunk(dataHash string) error {
	sig := hmacSHA256(c.cfg.key, chunkStringToSign(c.cfg.amzDate, c.cfg.scope, c.prevSig, dataHash))
	if !hmac.Equal(sig, c.chunkSig) {
		return fmt.Errorf("%w: chunk %d", ErrSignature, c.chunkNo)
	}
	c.prevSig = hex.EncodeToString(sig)
	return nil
}

// trailerField is one trailing header, in arrival order.
type trailerField struct{ name, value string }

// finish runs after the final chunk header: it checks the decoded length,
// reads and checks the trailing headers and returns io.EOF when all is well.
func (c *chunkedReader) finish() error {
	if c.n != c.cfg.decodedLen {
		return fmt.Errorf("%w: decoded %d of %d bytes (x-amz-decoded-content-length)", ErrIncompleteBody, c.n, c.cfg.decodedLen)
	}
	fields, sig, err := c.readTrailers()
	if err != nil {
		return err
	}
	if c.cfg.mode == modeSigned {
		if len(fields) > 0 || sig != "" {
			return fmt.Errorf("%w: data after the final chunk", ErrChunkEncoding)
		}
		return io.EOF
	}
	trailer := http.Header{}
	for _, f := range fields {
		name := http.CanonicalHeaderKey(f.name)
		if len(c.cfg.trailers) > 0 && !slices.Contains(c.cfg.trailers, name) {
			return fmt.Errorf("%w: trailer %s not declared in x-amz-trailer", ErrChunkEncoding, f.name)
		}
		if err := checkChecksumValue(name, f.value); err != nil {
			return err
		}
		trailer.Add(name, f.value)
	}
	for _, name := range c.cfg.trailers {
		if _, ok := trailer[name]; !ok {
			return fmt.Errorf("%w: trailer %s declared in x-amz-trailer is missing", ErrIncompleteBody, name)
		}
	}
	switch c.cfg.mode {
	case modeUnsignedTrailer:
		if sig != "" {
			return fmt.Errorf("%w: x-amz-trailer-signature in an unsigned payload", ErrChunkEncoding)
		}
	case modeSignedTrailer:
		if len(fields) > 0 || sig != "" {
			if err := c.verifyTrailer(fields, sig); err != nil {
				return err
			}
		}
	}
	if c.cfg.onTrailer != nil {
		c.cfg.onTrailer(trailer)
	}
	return io.EOF
}

// verifyTrailer checks x-amz-trailer-signature over the trailing headers,
// chained from the final chunk's signature.
func (c *chunkedReader) verifyTrailer(fields []trailerField, sigHex string) error {
	if sigHex == "" {
		return fmt.Errorf("%w: missing x-amz-trailer-signature", ErrSignature)
	}
	want, err := parseSignature(sigHex)
	if err != nil {
		return fmt.Errorf("%w: x-amz-trailer-signature is not 64 hex digits", ErrChunkEncoding)
	}
	var canon strings.Builder
	for _, f := range fields {
		canon.WriteString(strings.ToLower(f.name))
		canon.WriteByte(':')
		canon.WriteString(f.value)
		canon.WriteByte('\n')
	}
	sts := trailerStringToSign(c.cfg.amzDate, c.cfg.scope, c.prevSig, hashHex([]byte(canon.String())))
	if !hmac.Equal(hmacSHA256(c.cfg.key, sts), want) {
		return fmt.Errorf("%w: x-amz-trailer-signature", ErrSignature)
	}
	return nil
}

// readTrailers reads everything after the final chunk header up to the end
// of the body as "name:value" lines. Empty lines are skipped: clients put
// one or two CRLFs around the trailer, and minio-go ends a trailer line with
// a bare LF.
func (c *chunkedReader) readTrailers() (fields []trailerField, sig string, err error) {
	total := 0
	for {
		raw, rerr := c.src.ReadSlice('\n')
		total += len(raw)
		if rerr == bufio.ErrBufferFull || total > maxTrailerBytes {
			return nil, "", fmt.Errorf("%w: trailer longer than %d bytes", ErrChunkEncoding, maxTrailerBytes)
		}
		if rerr != nil && rerr != io.EOF {
			return nil, "", readErr(rerr, "inside the trailer")
		}
		line := strings.TrimRight(string(raw), "\r\n")
		if line != "" {
			if sig != "" {
				return nil, "", fmt.Errorf("%w: trailer line after x-amz-trailer-signature", ErrChunkEncoding)
			}
			name, value, ok := strings.Cut(line, ":")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || !validHeaderName(name) {
				return nil, "", fmt.Errorf("%w: trailer line %q is not name:value", ErrChunkEncoding, truncate(line, 64))
			}
			if strings.EqualFold(name, "x-amz-trailer-signature") {
				if value == "" {
					return nil, "", fmt.Errorf("%w: empty x-amz-trailer-signature", ErrChunkEncoding)
				}
				sig = value
			} else {
				if len(fields) == maxTrailers {
					return nil, "", fmt.Errorf("%w: more than %d trailers", ErrChunkEncoding, maxTrailers)
				}
				fields = append(fields, trailerField{name, value})
			}
		}
		if rerr == io.EOF {
			return fields, sig, nil
		}
	}
}

// checkChecksumValue checks that an x-amz-checksum-* trailer is base64 of
// the size its algorithm produces.
func checkChecksumValue(name, value string) error {
	if !strings.HasPrefix(name, "X-Amz-Checksum-") {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return fmt.Errorf("%w: trailer %s value %q is not base64", ErrChunkEncoding, name, truncate(value, 64))
	}
	if size, ok := checksumSizes[name]; ok && len(b) != size {
		return fmt.Errorf("%w: trailer %s holds %d bytes, want %d", ErrChunkEncoding, name, len(b), size)
	}
	return nil
}

// validHeaderName reports whether s is a non-empty HTTP token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
