package sigv4

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseAuthorization feeds arbitrary Authorization headers to the
// parser and to Verify.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE5254E42B/20261121/0/127/aws4_request,SignedHeaders=host;x-amz-date,Signature=a8b2f442b346d98d889e311815e194b2a5d3179ed6bef57ff8ff05a8acc498f3",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f/aws4_request, SignedHeaders=;;host, Signature=",
		"AWS4-ECDSA-P256-SHA256 Credential=x",
		"AWS4-HMAC-SHA256 ,,,=,Credential=,SignedHeaders=host",
		"AWS4-HMAC-SHA256",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err == nil {
			if len(a.signature) != 32 || a.cred.accessKeyID == "" || a.cred.region == "" || a.cred.service == "" || len(a.cred.date) != 8 {
				t.Fatalf("accepted %q as %+v", h, a)
			}
			host := false
			for _, n := range a.signedHeaders {
				host = host || n == "host"
			}
			if !host {
				t.Fatalf("accepted %q without host", h)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupported", err)
		}
		r := serverRequest(t, "GET", "/bucket/key", [][2]string{
			{"Host", "h"}, {"Authorization", h}, {"X-Amz-Date", "20150830T123600Z"}, {"X-Amz-Content-Sha256", EmptySHA256},
		}, nil)
		if _, err := suiteVerifier(t).Verify(r); err == nil {
			t.Fatalf("verified %q", h)
		}
	})
}

// FuzzPresignedQuery feeds arbitrary query strings to the presigned parser
// and to Verify.
func FuzzPresignedQuery(f *testing.F) {
	for _, s := range []string{
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=3600&X-Amz-Signature=10eae3f14a260bd3911cc6d008d3c576d143b05b62f09782a7a4b37f52178e44",
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604801",
		"X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256",
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%zz&X-Amz-Date=&&=&",
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=STREAMING-UNSIGNED-PAYLOAD-TRAILER",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parsePresigned(parseQuery(q))
		if err == nil {
			if p.expires <= 0 || p.expires > MaxExpires || len(p.signature) != 32 || p.amzDate[:8] != p.cred.date {
				t.Fatalf("accepted %q as %+v", q, p)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupported", err)
		}
		if strings.ContainsAny(q, " #\x00\r\n") {
			return // not a request target
		}
		r := serverRequest(t, "GET", "/b/k?"+q, [][2]string{{"Host", "example.amazonaws.com"}}, nil)
		if IsPresigned(r) {
			_, _ = suiteVerifier(t).Verify(r)
		}
	})
}

// FuzzChunked decodes arbitrary aws-chunked bodies in each mode. The
// decoder must never panic, never return more bytes than declared, return
// exactly the declared length on success, and fail only with its sentinels.
func FuzzChunked(f *testing.F) {
	key := deriveKey("secret", "20260101", "r", "s3")
	const amzDate, credScope = "20260101T000000Z", "20260101/r/s3/aws4_request"
	seed := strings.Repeat("ab", 32)
	data := []byte("The quick brown fox jumps over the lazy dog")
	f.Add(encodeChunked(data, 16, key, amzDate, credScope, seed, nil), uint8(modeSigned), uint16(len(data)))
	f.Add(encodeChunked(data, 16, key, amzDate, credScope, seed, []string{"x-amz-checksum-crc32:AAAAAA=="}), uint8(modeSignedTrailer), uint16(len(data)))
	f.Add(encodeChunked(data, 7, nil, "", "", "", []string{"x-amz-checksum-crc32:AAAAAA==", "x-amz-checksum-sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAA="}), uint8(modeUnsignedTrailer), uint16(len(data)))
	f.Add([]byte("2a\r\n"+string(data)+"\r\n0\r\nx-amz-checksum-crc32:g2JKxA==\n\r\n\r\n"), uint8(modeUnsignedTrailer), uint16(len(data)))
	f.Add([]byte("0\r\n\r\n"), uint8(modeUnsignedTrailer), uint16(0))
	f.Add([]byte("fffffffffffffff\r\n"), uint8(modeUnsignedTrailer), uint16(10))
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, declared uint16) {
		cfg := chunkConfig{
			mode: chunkMode(mode % 3), key: key, amzDate: amzDate, scope: credScope, seed: seed,
			decodedLen: int64(declared), onTrailer: func(http.Header) {},
		}
		if mode&4 != 0 {
			cfg.trailers = []string{"X-Amz-Checksum-Crc32"}
		}
		out, err := io.ReadAll(newChunkedReader(bytes.NewReader(body), cfg))
		if int64(len(out)) > cfg.decodedLen {
			t.Fatalf("returned %d bytes, declared %d", len(out), cfg.decodedLen)
		}
		if err == nil && int64(len(out)) != cfg.decodedLen {
			t.Fatalf("success with %d bytes, declared %d", len(out), cfg.decodedLen)
		}
		if err != nil && !errors.Is(err, ErrChunkEncoding) && !errors.Is(err, ErrIncompleteBody) && !errors.Is(err, ErrSignature) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
