package sigv4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// The chunked-upload examples of the S3 API reference ("Signature
// Calculations for the Authorization Header: Transferring Payload in
// Multiple Chunks" and its trailer variant): 65536 + 1024 bytes of 'a'.
const (
	docKeyID   = "AKIAIOSFODNN7EXAMPLE"
	docSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	docTime    = "20130524T000000Z"
	docScope   = "20130524/us-east-1/s3/aws4_request"
	docSeed    = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
	docSig1    = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
	docSig2    = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
	docSigLast = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"

	docTrailerSeed    = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
	docTrailerSig1    = "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
	docTrailerSig2    = "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
	docTrailerSigLast = "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
	docTrailerSig     = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
)

func docBody(sig1, sig2, sigLast, tail string) []byte {
	var b bytes.Buffer
	b.WriteString("10000;chunk-signature=" + sig1 + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 65536))
	b.WriteString("\r\n400;chunk-signature=" + sig2 + "\r\n")
	b.Write(bytes.Repeat([]byte("a"), 1024))
	b.WriteString("\r\n0;chunk-signature=" + sigLast + "\r\n" + tail)
	return b.Bytes()
}

// docRequest is the documented PUT Object request with the given body.
func docRequest(t testing.TB, body []byte) *http.Request {
	return serverRequest(t, "PUT", "/examplebucket/chunkObject.txt", [][2]string{
		{"Host", "s3.amazonaws.com"},
		{"x-amz-date", docTime},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
		{"Authorization", "AWS4-HMAC-SHA256 Credential=" + docKeyID + "/" + docScope + ",SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=" + docSeed},
		{"x-amz-content-sha256", StreamingPayload},
		{"Content-Encoding", "aws-chunked"},
		{"x-amz-decoded-content-length", "66560"},
		{"Content-Length", "66824"},
	}, body)
}

// docTrailerRequest is the documented PUT Object request with a signed
// CRC32C trailer.
func docTrailerRequest(t testing.TB, body []byte) *http.Request {
	return serverRequest(t, "PUT", "/examplebucket/chunkObject.txt", [][2]string{
		{"Host", "s3.amazonaws.com"},
		{"x-amz-date", docTime},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
		{"Authorization", "AWS4-HMAC-SHA256 Credential=" + docKeyID + "/" + docScope + ",SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature=" + docTrailerSeed},
		{"x-amz-content-sha256", StreamingPayloadTrailer},
		{"Content-Encoding", "aws-chunked"},
		{"x-amz-decoded-content-length", "66560"},
		{"x-amz-trailer", "x-amz-checksum-crc32c"},
	}, body)
}

func docVerifier(t testing.TB) *Verifier {
	return &Verifier{Keys: staticKeys{docKeyID: docSecret}, Now: fixedClock(mustTime(t, TimeFormat, docTime))}
}

const docTrailer = "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" + docTrailerSig + "\r\n\r\n"

// TestDocChunkSignatures recomputes the documented chunk and trailer
// signatures with the pure steps.
func TestDocChunkSignatures(t *testing.T) {
	key := deriveKey(docSecret, "20130524", "us-east-1", "s3")
	chain := func(seed string, sizes ...int) []string {
		prev := seed
		var out []string
		for _, n := range sizes {
			sig := hex.EncodeToString(hmacSHA256(key, chunkStringToSign(docTime, docScope, prev, hashHex(bytes.Repeat([]byte("a"), n)))))
			out = append(out, sig)
			prev = sig
		}
		return out
	}
	if got, want := chain(docSeed, 65536, 1024, 0), []string{docSig1, docSig2, docSigLast}; !equalStrings(got, want) {
		t.Errorf("chunk signatures %v, want %v", got, want)
	}
	if got, want := chain(docTrailerSeed, 65536, 1024, 0), []string{docTrailerSig1, docTrailerSig2, docTrailerSigLast}; !equalStrings(got, want) {
		t.Errorf("trailer-mode chunk signatures %v, want %v", got, want)
	}
	sts := trailerStringToSign(docTime, docScope, docTrailerSigLast, hashHex([]byte("x-amz-checksum-crc32c:sOO8/Q==\n")))
	if got := hex.EncodeToString(hmacSHA256(key, sts)); got != docTrailerSig {
		t.Errorf("trailer signature %s, want %s", got, docTrailerSig)
	}
	// The seed signature is the request signature.
	r := docRequest(t, nil)
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if !checkSignature(r, a, docTime, key, []string{StreamingPayload}, false) {
		t.Error("documented seed signature does not verify")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDocChunkedUpload verifies the documented requests end to end, read
// in several ways.
func TestDocChunkedUpload(t *testing.T) {
	want := bytes.Repeat([]byte("a"), 66560)
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data-err": iotest.DataErrReader,
	}
	tests := []struct {
		name    string
		req     func(testing.TB, []byte) *http.Request
		body    []byte
		trailer string
	}{
		{"payload", docRequest, docBody(docSig1, docSig2, docSigLast, "\r\n"), ""},
		{"payload-trailer", docTrailerRequest, docBody(docTrailerSig1, docTrailerSig2, docTrailerSigLast, docTrailer), "sOO8/Q=="},
		{"payload-trailer-extra-crlf", docTrailerRequest, docBody(docTrailerSig1, docTrailerSig2, docTrailerSigLast, "\r\n"+docTrailer), "sOO8/Q=="},
	}
	for _, tc := range tests {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				r := tc.req(t, tc.body)
				r.Body = io.NopCloser(wrap(bytes.NewReader(tc.body)))
				auth, err := docVerifier(t).Verify(r)
				if err != nil {
					t.Fatal(err)
				}
				if r.ContentLength != 66560 {
					t.Errorf("ContentLength = %d", r.ContentLength)
				}
				if ce := r.Header.Get("Content-Encoding"); ce != "" {
					t.Errorf("Content-Encoding = %q, want aws-chunked removed", ce)
				}
				if auth.Trailer != nil {
					t.Error("trailer set before EOF")
				}
				got, err := io.ReadAll(r.Body)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("decoded %d bytes", len(got))
				}
				if tc.trailer != "" && auth.Trailer.Get("X-Amz-Checksum-Crc32c") != tc.trailer {
					t.Errorf("trailer = %v", auth.Trailer)
				}
			})
		}
	}
}

// readAllErr reads r to the end; it fails the test if io.EOF is ever seen
// together with an error afterwards (errors must come before EOF).
func readAllErr(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 1000)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestDocChunkedTampered changes the documented body in every way that
// must be refused and checks the error class.
func TestDocChunkedTampered(t *testing.T) {
	good := docBody(docSig1, docSig2, docSigLast, "\r\n")
	goodTrailer := docBody(docTrailerSig1, docTrailerSig2, docTrailerSigLast, docTrailer)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	cut := func(b []byte, n int) []byte { return bytes.Clone(b[:n]) }
	replace := func(b []byte, old, new string) []byte {
		return bytes.Replace(bytes.Clone(b), []byte(old), []byte(new), 1)
	}
	hdr1 := len("10000;chunk-signature=") + 64 + 2
	tests := []struct {
		name    string
		trailer bool
		body    []byte
		want    error
	}{
		{"first data byte", false, flip(good, hdr1), ErrSignature},
		{"last data byte", false, flip(good, hdr1+65535), ErrSignature},
		{"second chunk data", false, flip(good, len(good)-200), ErrSignature},
		{"chunk signature", false, replace(good, docSig2, docSig1), ErrSignature},
		{"final signature", false, replace(good, docSigLast, docSig2), ErrSignature},
		{"chunks swapped", false, bytes.Join([][]byte{
			[]byte("400;chunk-signature=" + docSig2 + "\r\n"), bytes.Repeat([]byte("a"), 1024), []byte("\r\n"),
			[]byte("10000;chunk-signature=" + docSig1 + "\r\n"), bytes.Repeat([]byte("a"), 65536), []byte("\r\n"),
			[]byte("0;chunk-signature=" + docSigLast + "\r\n\r\n"),
		}, nil), ErrSignature},
		{"truncated in header", false, cut(good, 10), ErrIncompleteBody},
		{"truncated in data", false, cut(good, hdr1+100), ErrIncompleteBody},
		{"truncated before crlf", false, cut(good, hdr1+65536), ErrIncompleteBody},
		{"no final chunk", false, cut(good, len(good)-len("0;chunk-signature=")-64-4), ErrIncompleteBody},
		{"empty body", false, []byte{}, ErrIncompleteBody},
		{"missing crlf after data", false, replace(good, strings.Repeat("a", 1024)+"\r\n", strings.Repeat("a", 1024)+"xx"), ErrChunkEncoding},
		{"bad size", false, replace(good, "400;", "4g0;"), ErrChunkEncoding},
		{"size past decoded length", false, replace(good, "400;", "401;"), ErrChunkEncoding},
		{"missing signature ext", false, replace(good, "400;chunk-signature="+docSig2, "400"), ErrChunkEncoding},
		{"short signature", false, replace(good, docSig2, docSig2[:60]), ErrChunkEncoding},
		{"header without CR", false, replace(good, docSig2+"\r\n", docSig2+"\n"), ErrChunkEncoding},
		{"garbage after final", false, append(bytes.Clone(good), "junk"...), ErrChunkEncoding},
		{"trailer in plain mode", false, append(bytes.Clone(good), "x-amz-checksum-crc32c:sOO8/Q==\r\n"...), ErrChunkEncoding},
		{"trailer value changed", true, replace(goodTrailer, "sOO8/Q==", "sOO8/R=="), ErrSignature},
		{"trailer signature changed", true, replace(goodTrailer, docTrailerSig, docSig1), ErrSignature},
		{"trailer signature missing", true, replace(goodTrailer, "x-amz-trailer-signature:"+docTrailerSig+"\r\n", ""), ErrSignature},
		{"trailer missing", true, replace(goodTrailer, "x-amz-checksum-crc32c:sOO8/Q==\r\n", ""), ErrIncompleteBody},
		{"trailer line without colon", true, replace(goodTrailer, "x-amz-checksum-crc32c:", "x-amz-checksum-crc32c "), ErrChunkEncoding},
		{"trailer checksum not base64", true, replace(goodTrailer, "sOO8/Q==", "sOO8/Q=!"), ErrChunkEncoding},
		{"trailer checksum wrong size", true, replace(goodTrailer, "sOO8/Q==", "sOO8/Q8A"), ErrChunkEncoding},
		{"trailer undeclared", true, replace(goodTrailer, "x-amz-checksum-crc32c:sOO8/Q==\r\n", "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-checksum-crc32:sOO8/Q==\r\n"), ErrChunkEncoding},
		{"line after trailer signature", true, replace(goodTrailer, docTrailerSig+"\r\n", docTrailerSig+"\r\nx-a:b\r\n"), ErrChunkEncoding},
		{"trailer too long", true, replace(goodTrailer, "\r\n\r\n", "\r\n"+strings.Repeat("x-a:b\r\n", 3000)), ErrChunkEncoding},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := docRequest
			if tc.trailer {
				req = docTrailerRequest
			}
			r := req(t, tc.body)
			if _, err := docVerifier(t).Verify(r); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			got, err := readAllErr(r.Body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read %d bytes, err = %v, want %v", len(got), err, tc.want)
			}
			if _, err2 := r.Body.Read(make([]byte, 10)); !errors.Is(err2, tc.want) {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}
}

// encodeChunked builds an aws-chunked body of data in chunks of size n.
// When key is non-nil each chunk is signed, chained from seed; trailer
// lines ("name:value") follow the final chunk, signed when key is non-nil.
func encodeChunked(data []byte, n int, key []byte, amzDate, credScope, seed string, trailer []string) []byte {
	var b bytes.Buffer
	prev := seed
	for off := 0; ; off += n {
		off = min(off, len(data))
		chunk := data[off:min(off+n, len(data))]
		b.WriteString(strconv.FormatInt(int64(len(chunk)), 16))
		if key != nil {
			prev = hex.EncodeToString(hmacSHA256(key, chunkStringToSign(amzDate, credScope, prev, hashHex(chunk))))
			b.WriteString(";chunk-signature=" + prev)
		}
		b.WriteString("\r\n")
		if len(chunk) == 0 {
			break
		}
		b.Write(chunk)
		b.WriteString("\r\n")
	}
	if trailer == nil {
		if key != nil {
			b.WriteString("\r\n")
		}
		return b.Bytes()
	}
	var canon strings.Builder
	for _, l := range trailer {
		b.WriteString(l + "\r\n")
		canon.WriteString(l + "\n")
	}
	if key != nil {
		sig := hmacSHA256(key, trailerStringToSign(amzDate, credScope, prev, hashHex([]byte(canon.String()))))
		b.WriteString("x-amz-trailer-signature:" + hex.EncodeToString(sig) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestChunkedDecodedLength drives the decoder directly with lengths that
// disagree with the body.
func TestChunkedDecodedLength(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	key := deriveKey("secret", "20260101", "r", "s3")
	seed := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		mode     chunkMode
		declared int64
		want     error
	}{
		{"exact signed", modeSigned, 10000, nil},
		{"exact unsigned", modeUnsignedTrailer, 10000, nil},
		{"declared longer signed", modeSigned, 10001, ErrIncompleteBody},
		{"declared shorter signed", modeSigned, 9999, ErrChunkEncoding},
		{"declared longer unsigned", modeUnsignedTrailer, 20000, ErrIncompleteBody},
		{"declared shorter unsigned", modeUnsignedTrailer, 5000, ErrChunkEncoding},
		{"declared zero", modeUnsignedTrailer, 0, ErrChunkEncoding},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			cfg := chunkConfig{mode: tc.mode, amzDate: "20260101T000000Z", scope: "20260101/r/s3/aws4_request", decodedLen: tc.declared}
			if tc.mode == modeSigned {
				cfg.key, cfg.seed = key, seed
				body = encodeChunked(data, 4096, key, cfg.amzDate, cfg.scope, seed, nil)
			} else {
				body = encodeChunked(data, 4096, nil, "", "", "", []string{"x-amz-checksum-crc32:AAAAAA=="})
			}
			got, err := readAllErr(newChunkedReader(bytes.NewReader(body), cfg))
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, data) {
				t.Errorf("decoded %d bytes", len(got))
			}
			if int64(len(got)) > tc.declared {
				t.Errorf("returned %d bytes, more than declared %d", len(got), tc.declared)
			}
		})
	}
}

// TestChunkedUnsignedTrailer decodes the STREAMING-UNSIGNED-PAYLOAD-TRAILER
// framing as botocore, aws-sdk-go-v2 and minio-go write it.
func TestChunkedUnsignedTrailer(t *testing.T) {
	data := []byte("hello, trailer world")
	tests := []struct {
		name     string
		body     string
		declared []string
		want     error
		trailer  string
	}{
		{"sdk", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\r\n\r\n", []string{"X-Amz-Checksum-Crc32"}, nil, "g2JKxA=="},
		{"minio-go", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\n\r\n\r\n", []string{"X-Amz-Checksum-Crc32"}, nil, "g2JKxA=="},
		{"two chunks", "a\r\nhello, tra\r\na\r\niler world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\r\n\r\n", nil, nil, "g2JKxA=="},
		{"no final crlf", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==", nil, nil, "g2JKxA=="},
		{"chunk extension ignored", "14;ext=1\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\r\n\r\n", nil, nil, "g2JKxA=="},
		{"sha256 trailer", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-sha256:" + strings.Repeat("A", 43) + "=\r\n\r\n", nil, nil, ""},
		{"missing declared", "14\r\nhello, trailer world\r\n0\r\n\r\n", []string{"X-Amz-Checksum-Crc32"}, ErrIncompleteBody, ""},
		{"wrong declared", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32c:g2JKxA==\r\n\r\n", []string{"X-Amz-Checksum-Crc32"}, ErrChunkEncoding, ""},
		{"malformed line", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32=g2JKxA==\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"empty name", "14\r\nhello, trailer world\r\n0\r\n:g2JKxA==\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"crc32 wrong size", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxAA=\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"signature in unsigned", "14\r\nhello, trailer world\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\r\nx-amz-trailer-signature:" + strings.Repeat("0", 64) + "\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"size too long", "00000000000000014\r\nhello, trailer world\r\n0\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"negative size", "-14\r\nhello, trailer world\r\n0\r\n\r\n", nil, ErrChunkEncoding, ""},
		{"truncated data", "14\r\nhello", nil, ErrIncompleteBody, ""},
		{"truncated after data", "14\r\nhello, trailer world", nil, ErrIncompleteBody, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trailer http.Header
			cfg := chunkConfig{mode: modeUnsignedTrailer, decodedLen: int64(len(data)), trailers: tc.declared,
				onTrailer: func(h http.Header) { trailer = h }}
			got, err := readAllErr(newChunkedReader(strings.NewReader(tc.body), cfg))
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if trailer != nil {
					t.Error("trailer reported on error")
				}
				return
			}
			if !bytes.Equal(got, data) {
				t.Errorf("decoded %q", got)
			}
			if tc.trailer != "" && trailer.Get("X-Amz-Checksum-Crc32") != tc.trailer {
				t.Errorf("trailer %v", trailer)
			}
		})
	}
}

// TestChunkedLargeBody streams a body much larger than any buffer through
// the decoder in small chunks.
func TestChunkedLargeBody(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 100000) // 3.6 MB
	key := deriveKey("secret", "20260101", "r", "s3")
	cfg := chunkConfig{mode: modeSignedTrailer, key: key, amzDate: "20260101T000000Z", scope: "20260101/r/s3/aws4_request",
		seed: strings.Repeat("cd", 32), decodedLen: int64(len(data))}
	body := encodeChunked(data, 64<<10, key, cfg.amzDate, cfg.scope, cfg.seed, []string{"x-amz-checksum-crc32c:AAAAAA=="})
	got, err := io.ReadAll(newChunkedReader(bytes.NewReader(body), cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("body changed")
	}
}
