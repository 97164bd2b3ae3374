package s3api

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"

	"github.com/koala-cloud/koala/pkg/awserr"
	"github.com/koala-cloud/koala/walrus/internal/objstore"
)

// Checksum algorithms S3 supports, by their names on the wire.
var algorithms = []string{"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"}

// crc64NVME is the reflected CRC-64/NVME polynomial.
const crc64NVME = 0x9a6c9329ac4bc9b5

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	nvmeTable  = crc64.MakeTable(crc64NVME)
)

func newHash(alg string) hash.Hash {
	switch alg {
	case "CRC32":
		return crc32.NewIEEE()
	case "CRC32C":
		return crc32.New(castagnoli)
	case "CRC64NVME":
		return crc64.New(nvmeTable)
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	}
	return nil
}

// checksumHeader is the header that carries alg's value.
func checksumHeader(alg string) string { return "x-amz-checksum-" + strings.ToLower(alg) }

func validAlgorithm(alg string) bool {
	for _, a := range algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// checksummer computes and checks the flexible checksum a request asks
// for: its value comes in a header, or in the trailer of an aws-chunked
// body, or (for parts of an upload that declared an algorithm) from the
// server alone.
type checksummer struct {
	alg     string
	h       hash.Hash
	want    string // from a header; "" if the trailer brings it
	trailer string // canonical trailer name when the trailer brings it
	rq      *request
}

// newChecksummer reads the request's checksum headers. It returns nil
// when the request asks for no checksum and def is "".
func newChecksummer(rq *request, def string) (*checksummer, error) {
	h := rq.r.Header
	c := &checksummer{rq: rq}
	for _, alg := range algorithms {
		v := h.Get(checksumHeader(alg))
		if v == "" {
			continue
		}
		if c.alg != "" {
			return nil, awserr.New("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		c.alg, c.want = alg, v
	}
	if t := h.Get("X-Amz-Trailer"); t != "" {
		alg, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(t)), "x-amz-checksum-")
		alg = strings.ToUpper(alg)
		if !ok || !validAlgorithm(alg) {
			return nil, awserr.Newf("InvalidRequest", "The value specified in the x-amz-trailer header is not supported: %s", t)
		}
		if c.alg != "" && c.alg != alg {
			return nil, awserr.New("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		c.alg, c.trailer = alg, http.CanonicalHeaderKey(t)
		if rq.auth == nil || !strings.HasPrefix(rq.auth.PayloadHash, "STREAMING-") {
			return nil, awserr.New("InvalidRequest", "x-amz-trailer requires an aws-chunked request body")
		}
	}
	if sdk := strings.ToUpper(h.Get("X-Amz-Sdk-Checksum-Algorithm")); sdk != "" {
		if !validAlgorithm(sdk) {
			return nil, awserr.Newf("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
		}
		if c.alg == "" {
			return nil, awserr.New("InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.")
		}
		if sdk != c.alg {
			return nil, awserr.Newf("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
		}
	}
	if c.alg == "" {
		if def == "" {
			return nil, nil
		}
		c.alg = def
	} else if def != "" && c.alg != def {
		return nil, awserr.Newf("InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s",
			strings.ToLower(def), strings.ToLower(c.alg))
	}
	if c.want != "" && !validValue(c.alg, c.want) {
		return nil, awserr.Newf("InvalidRequest", "Value for %s header is invalid.", checksumHeader(c.alg))
	}
	c.h = newHash(c.alg)
	return c, nil
}

// validValue reports whether v is a base64 digest of alg's size.
func validValue(alg, v string) bool {
	raw, err := base64.StdEncoding.DecodeString(v)
	return err == nil && len(raw) == newHash(alg).Size()
}

// wrap returns r hashed on the way through.
func (c *checksummer) wrap(r io.Reader) io.Reader {
	if c == nil {
		return r
	}
	return io.TeeReader(r, c.h)
}

// result checks the computed value against the client's, once the body
// has been read to its end, and returns it.
func (c *checksummer) result() (*objstore.Checksum, error) {
	if c == nil {
		return nil, nil
	}
	got := base64.StdEncoding.EncodeToString(c.h.Sum(nil))
	want := c.want
	if c.trailer != "" {
		if c.rq.auth != nil && c.rq.auth.Trailer != nil {
			want = c.rq.auth.Trailer.Get(c.trailer)
		}
		if want == "" {
			return nil, awserr.Newf("InvalidRequest", "The trailer %s was declared but not sent.", strings.ToLower(c.trailer))
		}
		if !validValue(c.alg, want) {
			return nil, awserr.Newf("InvalidRequest", "Value for %s trailing header is invalid.", checksumHeader(c.alg))
		}
	}
	if want != "" && want != got {
		return nil, awserr.Newf("BadDigest", "The %s you specified did not match the calculated checksum.", c.alg)
	}
	return &objstore.Checksum{Algorithm: c.alg, Value: got, Type: "FULL_OBJECT"}, nil
}

// setChecksumHeader sets the response header that reports sum.
func setChecksumHeader(h http.Header, sum *objstore.Checksum) {
	if sum == nil {
		return
	}
	h.Set(checksumHeader(sum.Algorithm), sum.Value)
	h.Set("x-amz-checksum-type", checksumType(sum))
}

func checksumType(sum *objstore.Checksum) string {
	if sum.Type == "" {
		return "FULL_OBJECT"
	}
	return sum.Type
}

// missingChecksum reports a part without the upload's checksum.
type missingChecksum struct{ part int }

func (e missingChecksum) Error() string { return fmt.Sprintf("part %d has no checksum", e.part) }

// composite is S3's checksum of a multipart object in COMPOSITE mode: the
// checksum of the concatenated part checksums, suffixed with the count.
func composite(alg string, parts []objstore.Part) (string, error) {
	h := newHash(alg)
	for _, p := range parts {
		if p.Checksum == nil || p.Checksum.Algorithm != alg {
			return "", missingChecksum{p.Number}
		}
		raw, err := base64.StdEncoding.DecodeString(p.Checksum.Value)
		if err != nil {
			return "", err
		}
		h.Write(raw)
	}
	return fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(h.Sum(nil)), len(parts)), nil
}

// fullObject combines the CRCs of consecutive parts into the CRC of the
// whole object, without reading the data again.
func fullObject(alg string, parts []objstore.Part) (string, error) {
	var poly uint64
	width := 32
	switch alg {
	case "CRC32":
		poly = uint64(crc32.IEEE)
	case "CRC32C":
		poly = uint64(crc32.Castagnoli)
	case "CRC64NVME":
		poly, width = crc64NVME, 64
	default:
		return "", fmt.Errorf("%s cannot be combined", alg)
	}
	var crc uint64
	for i, p := range parts {
		if p.Checksum == nil || p.Checksum.Algorithm != alg {
			return "", missingChecksum{p.Number}
		}
		raw, err := base64.StdEncoding.DecodeString(p.Checksum.Value)
		if err != nil {
			return "", err
		}
		var v uint64
		if width == 32 {
			v = uint64(binary.BigEndian.Uint32(raw))
		} else {
			v = binary.BigEndian.Uint64(raw)
		}
		if i == 0 {
			crc = v
			continue
		}
		crc = crcCombine(poly, width, crc, v, p.Size)
	}
	var out []byte
	if width == 32 {
		out = binary.BigEndian.AppendUint32(nil, uint32(crc))
	} else {
		out = binary.BigEndian.AppendUint64(nil, crc)
	}
	return base64.StdEncoding.EncodeToString(out), nil
}

// crcCombine returns the CRC of A||B given crc1 = CRC(A), crc2 = CRC(B)
// and len2 = len(B), for a reflected CRC with polynomial poly of width
// bits (zlib's crc32_combine, generalised).
func crcCombine(poly uint64, width int, crc1, crc2 uint64, len2 int64) uint64 {
	if len2 <= 0 {
		return crc1
	}
	odd := make([]uint64, width)
	even := make([]uint64, width)
	odd[0] = poly // the operator for one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	square(even, odd) // two zero bits
	square(odd, even) // four zero bits
	for {
		square(even, odd)
		if len2&1 != 0 {
			crc1 = times(even, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		square(odd, even)
		if len2&1 != 0 {
			crc1 = times(odd, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func square(dst, mat []uint64) {
	for n := range mat {
		dst[n] = times(mat, mat[n])
	}
}
