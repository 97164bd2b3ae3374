package sigv4

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testKeyID  = "AKIDTEST"
	testSecret = "test/secret+key"
)

var testNow = time.Date(2026, 11, 21, 23, 33, 28, 0, time.UTC)

func testVerifier() *Verifier {
	return &Verifier{Keys: staticKeys{testKeyID: testSecret}, Now: fixedClock(testNow)}
}

// asServer turns a client request into what a server handler sees.
func asServer(t testing.TB, r *http.Request) *http.Request {
	t.Helper()
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			t.Fatal(err)
		}
	}
	headers := [][2]string{{"Host", r.Host}}
	if r.Host == "" {
		headers[0][1] = r.URL.Host
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			headers = append(headers, [2]string{k, v})
		}
	}
	if r.ContentLength > 0 && r.Header.Get("Content-Length") == "" {
		headers = append(headers, [2]string{"Content-Length", fmt.Sprint(r.ContentLength)})
	}
	return serverRequest(t, r.Method, r.URL.RequestURI(), headers, body)
}

// signedRequest signs a request with Sign and returns it as a server sees it.
func signedRequest(t testing.TB, method, url, service, body string, edit func(*http.Request)) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(r)
	}
	if err := Sign(r, testKeyID, testSecret, "local", service, "", testNow); err != nil {
		t.Fatal(err)
	}
	return asServer(t, r)
}

// setAuth rewrites the Authorization header with f.
func setAuth(f func(string) string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", f(r.Header.Get("Authorization"))) }
}

func TestSignVerifyRoundTrip(t *testing.T) {
	tests := []struct {
		name, method, url, service, body string
		header                           map[string]string
	}{
		{"ec2 post", "POST", "http://127.0.0.1:8773/", "ec2", "Action=DescribeInstances&Version=2015-10-01", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		{"internal json", "PUT", "http://clc:8773/internal/v1/instances/i-123", "cloud-internal", `{"state":"running"}`, nil},
		{"s3 get", "GET", "http://127.0.0.1:8776/bucket/key?versionId=3&list-type=2", "s3", "", nil},
		{"s3 key with escapes", "PUT", "http://127.0.0.1:8776/bucket/a%20b%2Fc+d~e%21", "s3", "data", map[string]string{"x-amz-meta-color": "  blue   green "}},
		{"s3 utf8 key", "PUT", "http://127.0.0.1:8776/bucket/%E1%88%B4", "s3", "data", nil},
		{"query with space and plus", "GET", "http://127.0.0.1:8776/bucket?prefix=a+b%2Bc&delimiter=%2F", "s3", "", nil},
		{"non-s3 path with space", "GET", "http://host/a%20b/./c/", "svc", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := signedRequest(t, tc.method, tc.url, tc.service, tc.body, func(r *http.Request) {
				for k, v := range tc.header {
					r.Header.Set(k, v)
				}
			})
			auth, err := testVerifier().Verify(r)
			if err != nil {
				t.Fatal(err)
			}
			if auth.Service != tc.service || auth.Region != "local" || !auth.Time.Equal(testNow) || auth.Presigned {
				t.Errorf("auth = %+v", auth)
			}
			b, err := io.ReadAll(r.Body)
			if err != nil || string(b) != tc.body {
				t.Errorf("body %q, %v", b, err)
			}
		})
	}
}

func TestPresignVerifyRoundTrip(t *testing.T) {
	tests := []struct {
		name, method, url, service string
	}{
		{"s3 get", "GET", "http://127.0.0.1:8776/bucket/key", "s3"},
		{"s3 get with query", "GET", "http://127.0.0.1:8776/bucket/a%2Fb?response-content-type=text%2Fplain&x=1+2", "s3"},
		{"s3 put", "PUT", "http://127.0.0.1:8776/bucket/key", "s3"},
		{"other service", "GET", "http://host:1/x?Action=Describe", "svc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.url, nil)
			r.RequestURI = ""
			if err := Presign(r, testKeyID, testSecret, "local", tc.service, testNow, time.Hour); err != nil {
				t.Fatal(err)
			}
			if !IsPresigned(asServer(t, r)) || !IsSigned(asServer(t, r)) {
				t.Fatal("not recognised as presigned")
			}
			for _, at := range []time.Duration{-14 * time.Minute, 0, time.Hour} {
				v := testVerifier()
				v.Now = fixedClock(testNow.Add(at))
				auth, err := v.Verify(asServer(t, r))
				if err != nil {
					t.Fatalf("at %s: %v", at, err)
				}
				if !auth.Presigned || auth.PayloadHash != "" {
					t.Errorf("auth = %+v", auth)
				}
			}
			// Every parameter is covered.
			q := r.URL.RawQuery
			for _, p := range strings.Split(q, "&") {
				k, _, _ := strings.Cut(p, "=")
				tampered := *r.URL
				tampered.RawQuery = strings.Replace(q, p, p+"0", 1)
				rr := r.Clone(context.Background())
				rr.URL = &tampered
				if _, err := testVerifier().Verify(asServer(t, rr)); err == nil {
					t.Errorf("parameter %s changed: verified", k)
				}
			}
		})
	}
}

func TestPresignArgs(t *testing.T) {
	for _, exp := range []time.Duration{0, -time.Second, 1500 * time.Millisecond, MaxExpires + time.Second} {
		r := httptest.NewRequest("GET", "http://h/b/k", nil)
		if err := Presign(r, testKeyID, testSecret, "r", "s3", testNow, exp); !errors.Is(err, ErrMalformed) {
			t.Errorf("expires %s: err = %v", exp, err)
		}
	}
	r := httptest.NewRequest("GET", "http://h/b/k", nil)
	if err := Presign(r, testKeyID, testSecret, "r", "s3", testNow, MaxExpires); err != nil {
		t.Errorf("seven days: %v", err)
	}
	if err := Sign(r, "", testSecret, "r", "s3", "", testNow); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty key id: %v", err)
	}
	if err := Sign(r, testKeyID, testSecret, "r/x", "s3", "", testNow); !errors.Is(err, ErrMalformed) {
		t.Errorf("region with slash: %v", err)
	}
}

// TestVerifyErrors covers each sentinel error with a request that is valid
// but for one thing.
func TestVerifyErrors(t *testing.T) {
	s3put := func(edit func(*http.Request)) func(t testing.TB) *http.Request {
		return func(t testing.TB) *http.Request {
			return signedRequest(t, "PUT", "http://127.0.0.1:8776/bucket/key", "s3", "payload", edit)
		}
	}
	after := func(f func(t testing.TB) *http.Request, edit func(*http.Request)) func(t testing.TB) *http.Request {
		return func(t testing.TB) *http.Request {
			r := f(t)
			edit(r)
			return r
		}
	}
	replaceAuth := func(old, new string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), old, new, 1))
		}
	}
	presigned := func(expires time.Duration, signAt time.Time) func(t testing.TB) *http.Request {
		return func(t testing.TB) *http.Request {
			r := httptest.NewRequest("GET", "http://127.0.0.1:8776/bucket/key", nil)
			r.RequestURI = ""
			if err := Presign(r, testKeyID, testSecret, "local", "s3", signAt, expires); err != nil {
				t.Fatal(err)
			}
			return asServer(t, r)
		}
	}
	replaceQuery := func(old, new string) func(*http.Request) {
		return func(r *http.Request) {
			r.RequestURI = strings.Replace(r.RequestURI, old, new, 1)
		}
	}
	base := s3put(nil)
	sig := func(r *http.Request) string {
		h := r.Header.Get("Authorization")
		return h[strings.LastIndex(h, "=")+1:]
	}
	tests := []struct {
		name  string
		req   func(t testing.TB) *http.Request
		clock time.Duration
		want  error
		body  bool // the error surfaces when the body is read
	}{
		{"not signed", after(base, func(r *http.Request) { r.Header.Del("Authorization") }), 0, ErrMalformed, false},
		{"sigv4a", after(base, replaceAuth("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")), 0, ErrUnsupported, false},
		{"unknown algorithm", after(base, replaceAuth("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")), 0, ErrMalformed, false},
		{"scope terminator", after(base, replaceAuth("/aws4_request", "/aws5_request")), 0, ErrMalformed, false},
		{"scope short", after(base, replaceAuth("/local/s3/aws4_request", "/s3/aws4_request")), 0, ErrMalformed, false},
		{"scope empty region", after(base, replaceAuth("/local/", "//")), 0, ErrMalformed, false},
		{"scope date format", after(base, replaceAuth("/20261121/", "/2026-11-21/")), 0, ErrMalformed, false},
		{"scope date not request date", after(base, replaceAuth("/20261121/", "/20261120/")), 0, ErrMalformed, false},
		{"missing credential", after(base, replaceAuth("Credential=", "Credentials=")), 0, ErrMalformed, false},
		{"missing signed headers", after(base, setAuth(func(h string) string {
			i, j := strings.Index(h, ", SignedHeaders="), strings.Index(h, ", Signature=")
			return h[:i] + h[j:]
		})), 0, ErrMalformed, false},
		{"empty signed headers", after(base, setAuth(func(h string) string {
			i, j := strings.Index(h, "SignedHeaders=")+len("SignedHeaders="), strings.Index(h, ", Signature=")
			return h[:i] + h[j:]
		})), 0, ErrMalformed, false},
		{"host not signed", after(base, replaceAuth("host;", "")), 0, ErrMalformed, false},
		{"missing signature", after(base, setAuth(func(h string) string { return h[:strings.Index(h, ", Signature=")] })), 0, ErrMalformed, false},
		{"signature not hex", after(base, setAuth(func(h string) string { return h[:len(h)-1] + "g" })), 0, ErrMalformed, false},
		{"signature short", after(base, setAuth(func(h string) string { return h[:len(h)-2] })), 0, ErrMalformed, false},
		{"repeated field", after(base, setAuth(func(h string) string { return h + ", Signature=" + strings.Repeat("0", 64) })), 0, ErrMalformed, false},
		{"field without value", after(base, setAuth(func(h string) string { return h + ", junk" })), 0, ErrMalformed, false},
		{"x-amz-date format", after(base, func(r *http.Request) { r.Header.Set("X-Amz-Date", "2026-11-21T23:33:28Z") }), 0, ErrMalformed, false},
		{"no date", after(base, func(r *http.Request) { r.Header.Del("X-Amz-Date") }), 0, ErrMalformed, false},
		{"both forms", after(base, replaceQuery("/bucket/key", "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256")), 0, ErrMalformed, false},
		{"unknown key", after(base, replaceAuth(testKeyID+"/", "AKIDOTHER/")), 0, ErrUnknownKey, false},
		{"skew ahead", base, 16 * time.Minute, ErrSkewed, false},
		{"skew behind", base, -16 * time.Minute, ErrSkewed, false},
		{"within skew", base, 14 * time.Minute, nil, false},
		{"wrong signature", after(base, func(r *http.Request) {
			b, _ := hex.DecodeString(sig(r))
			b[0] ^= 1
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), sig(r), hex.EncodeToString(b), 1))
		}), 0, ErrSignature, false},
		{"signed header changed", after(base, func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", EmptySHA256) }), 0, ErrSignature, false},
		{"invalid content sha", after(base, func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "nothex")
		}), 0, ErrContentSHA256, false},
		{"s3 without content sha", after(base, func(r *http.Request) {
			r.Header.Del("X-Amz-Content-Sha256")
			replaceAuth("x-amz-content-sha256;", "")(r)
		}), 0, ErrMissingContentSHA256, false},
		{"body changed", after(base, func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("pAyload")) }), 0, ErrContentSHA256, true},
		{"body short", after(base, func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("paylo")) }), 0, ErrIncompleteBody, true},
		{"body client gone", after(base, func(r *http.Request) {
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader("pay"), errReader{io.ErrUnexpectedEOF}))
		}), 0, ErrIncompleteBody, true},
		{"empty body bad hash", func(t testing.TB) *http.Request {
			r, _ := http.NewRequest("PUT", "http://127.0.0.1:8776/bucket/key", nil)
			if err := Sign(r, testKeyID, testSecret, "local", "s3", hashHex([]byte("payload")), testNow); err != nil {
				t.Fatal(err)
			}
			return asServer(t, r)
		}, 0, ErrContentSHA256, false},
		{"chunked without decoded length", func(t testing.TB) *http.Request {
			return streamingRequest(t, StreamingPayload, []byte("data"), func(r *http.Request) { r.Header.Del("X-Amz-Decoded-Content-Length") })
		}, 0, ErrMissingDecodedLength, false},
		{"chunked bad decoded length", func(t testing.TB) *http.Request {
			return streamingRequest(t, StreamingPayload, []byte("data"), func(r *http.Request) { r.Header.Set("X-Amz-Decoded-Content-Length", "-4") })
		}, 0, ErrMissingDecodedLength, false},
		{"chunked sigv4a", func(t testing.TB) *http.Request {
			return streamingRequest(t, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", []byte("data"), nil)
		}, 0, ErrUnsupported, false},
		{"presigned ok", presigned(time.Hour, testNow), 0, nil, false},
		{"presigned expired", presigned(time.Hour, testNow), time.Hour + time.Second, ErrExpired, false},
		{"presigned last second", presigned(time.Hour, testNow), time.Hour, nil, false},
		{"presigned not yet valid", presigned(time.Hour, testNow), -16 * time.Minute, ErrNotYetValid, false},
		{"presigned expires zero", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Expires=3600", "X-Amz-Expires=0")), 0, ErrMalformed, false},
		{"presigned expires too long", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Expires=3600", "X-Amz-Expires=604801")), 0, ErrMalformed, false},
		{"presigned expires max", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Expires=3600", "X-Amz-Expires=604800")), 0, ErrSignature, false},
		{"presigned expires not a number", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Expires=3600", "X-Amz-Expires=1h")), 0, ErrMalformed, false},
		{"presigned missing credential", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Credential=", "X-Amz-Credentials=")), 0, ErrMalformed, false},
		{"presigned missing signature", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Signature=", "X-Amz-Signatures=")), 0, ErrMalformed, false},
		{"presigned repeated date", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Date=", "X-Amz-Date=20261121T000000Z&X-Amz-Date=")), 0, ErrMalformed, false},
		{"presigned bad date", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Date=20261121T", "X-Amz-Date=20261121X")), 0, ErrMalformed, false},
		{"presigned host not signed", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date")), 0, ErrMalformed, false},
		{"presigned sigv4a", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256")), 0, ErrUnsupported, false},
		{"presigned streaming", after(presigned(time.Hour, testNow), replaceQuery("X-Amz-Algorithm=", "X-Amz-Content-Sha256="+StreamingPayload+"&X-Amz-Algorithm=")), 0, ErrUnsupported, false},
		{"presigned unknown key", after(presigned(time.Hour, testNow), replaceQuery(testKeyID+"%2F", "NOBODY%2F")), 0, ErrUnknownKey, false},
		{"presigned host changed", after(presigned(time.Hour, testNow), func(r *http.Request) { r.Host = "127.0.0.1:8777" }), 0, ErrSignature, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req(t)
			v := testVerifier()
			v.Now = fixedClock(testNow.Add(tc.clock))
			_, err := v.Verify(r)
			if tc.body {
				if err != nil {
					t.Fatalf("Verify: %v (want the error from the body)", err)
				}
				_, err = readAllErr(r.Body)
			}
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && strings.ToLower(err.Error()[:1]) != err.Error()[:1] {
				t.Errorf("error string %q is not lower case", err)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// streamingRequest signs a PUT whose body is aws-chunked in the given mode.
func streamingRequest(t testing.TB, mode string, data []byte, edit func(*http.Request)) *http.Request {
	t.Helper()
	r := httptest.NewRequest("PUT", "http://127.0.0.1:8776/bucket/key", nil)
	r.RequestURI = ""
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
	if mode != StreamingPayload {
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	}
	if err := Sign(r, testKeyID, testSecret, "local", "s3", mode, testNow); err != nil {
		t.Fatal(err)
	}
	h := r.Header.Get("Authorization")
	seed := h[strings.LastIndex(h, "=")+1:]
	key := deriveKey(testSecret, "20261121", "local", "s3")
	amzDate, credScope := testNow.Format(TimeFormat), "20261121/local/s3/aws4_request"
	var body []byte
	trailer := []string{"x-amz-checksum-crc32:AAAAAA=="}
	switch mode {
	case StreamingPayload:
		body = encodeChunked(data, 8192, key, amzDate, credScope, seed, nil)
	case StreamingPayloadTrailer:
		body = encodeChunked(data, 8192, key, amzDate, credScope, seed, trailer)
	default:
		body = encodeChunked(data, 8192, nil, "", "", "", trailer)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if edit != nil {
		edit(r)
	}
	return asServer(t, r)
}

func TestStreamingModes(t *testing.T) {
	data := bytes.Repeat([]byte("streaming body "), 5000)
	for _, mode := range []string{StreamingPayload, StreamingPayloadTrailer, StreamingUnsignedTrailer} {
		t.Run(mode, func(t *testing.T) {
			r := streamingRequest(t, mode, data, nil)
			auth, err := testVerifier().Verify(r)
			if err != nil {
				t.Fatal(err)
			}
			if auth.PayloadHash != mode || r.ContentLength != int64(len(data)) || r.Header.Get("Content-Encoding") != "" {
				t.Errorf("auth %+v, ContentLength %d, Content-Encoding %q", auth, r.ContentLength, r.Header.Get("Content-Encoding"))
			}
			got, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("body: %d bytes, %v", len(got), err)
			}
			if mode != StreamingPayload && auth.Trailer.Get("X-Amz-Checksum-Crc32") != "AAAAAA==" {
				t.Errorf("trailer %v", auth.Trailer)
			}
		})
	}
}

func TestStripAWSChunked(t *testing.T) {
	tests := []struct{ in, want string }{
		{"aws-chunked", ""},
		{"aws-chunked,gzip", "gzip"},
		{"gzip, aws-chunked", "gzip"},
		{"AWS-Chunked , br", "br"},
		{"gzip", "gzip"},
	}
	for _, tc := range tests {
		h := http.Header{"Content-Encoding": {tc.in}}
		stripAWSChunked(h)
		if got := h.Get("Content-Encoding"); got != tc.want {
			t.Errorf("%q: Content-Encoding = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDateHeader checks the header form dated by Date instead of
// X-Amz-Date.
func TestDateHeader(t *testing.T) {
	r := serverRequest(t, "GET", "/bucket/key", [][2]string{
		{"Host", "127.0.0.1:8776"},
		{"Date", testNow.Format(http.TimeFormat)},
		{"X-Amz-Content-Sha256", EmptySHA256},
	}, nil)
	cred := credential{testKeyID, "20261121", "local", "s3"}
	a := authorization{cred: cred, signedHeaders: []string{"date", "host", "x-amz-content-sha256"}}
	block, list := canonicalHeaders(r, a.signedHeaders)
	cr := canonicalRequest("GET", "/bucket/key", "", block, list, EmptySHA256)
	sig := signature(deriveKey(testSecret, cred.date, cred.region, cred.service), testNow.Format(TimeFormat), cred, cr)
	r.Header.Set("Authorization", Algorithm+" Credential="+testKeyID+"/"+cred.scope()+", SignedHeaders="+list+", Signature="+hex.EncodeToString(sig))
	if _, err := testVerifier().Verify(r); err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Date", testNow.Add(time.Second).Format(http.TimeFormat))
	if _, err := testVerifier().Verify(r); !errors.Is(err, ErrSignature) {
		t.Errorf("changed Date: %v", err)
	}
	r.Header.Set("Date", "yesterday")
	if _, err := testVerifier().Verify(r); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad Date: %v", err)
	}
}

// TestBufferedBody covers a header-signed request without
// x-amz-content-sha256 for a service other than s3 (boto 2, the AWS
// suite): the body is hashed up front, within MaxBufferedBody.
func TestBufferedBody(t *testing.T) {
	mk := func(body string) *http.Request {
		r := signedRequest(t, "POST", "http://127.0.0.1:8773/", "ec2", body, nil)
		r.Header.Del("X-Amz-Content-Sha256")
		// re-sign without the header: Sign always sets it, so sign by hand.
		a, _ := parseAuthorization(r.Header.Get("Authorization"))
		var names []string
		for _, n := range a.signedHeaders {
			if n != "x-amz-content-sha256" {
				names = append(names, n)
			}
		}
		block, list := canonicalHeaders(r, names)
		cr := canonicalRequest("POST", "/", "", block, list, hashHex([]byte(body)))
		sig := signature(deriveKey(testSecret, a.cred.date, a.cred.region, a.cred.service), testNow.Format(TimeFormat), a.cred, cr)
		r.Header.Set("Authorization", Algorithm+" Credential="+testKeyID+"/"+a.cred.scope()+", SignedHeaders="+list+", Signature="+hex.EncodeToString(sig))
		return r
	}
	body := "Action=DescribeInstances&Version=2014-10-01"
	r := mk(body)
	if _, err := testVerifier().Verify(r); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r.Body); err != nil || string(b) != body {
		t.Fatalf("body %q %v", b, err)
	}
	v := testVerifier()
	v.MaxBufferedBody = 10
	if _, err := v.Verify(mk(body)); !errors.Is(err, ErrMissingContentSHA256) {
		t.Errorf("over limit: %v", err)
	}
	r = mk(body)
	r.ContentLength = -1 // chunked transfer: length unknown until read
	r.Header.Del("Content-Length")
	if _, err := v.Verify(r); !errors.Is(err, ErrMissingContentSHA256) {
		t.Errorf("over limit, unknown length: %v", err)
	}
}

// TestKeyCacheBounded checks that the signing-key cache stays bounded and
// is safe for concurrent use.
func TestKeyCacheBounded(t *testing.T) {
	v := testVerifier()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				c := credential{testKeyID, "20261121", fmt.Sprintf("region-%d-%d", g, i), "s3"}
				if !bytes.Equal(v.signingKey(testSecret, c), deriveKey(testSecret, c.date, c.region, c.service)) {
					t.Error("wrong cached key")
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(v.cache.m); n > keyCacheSize {
		t.Errorf("cache holds %d keys, limit %d", n, keyCacheSize)
	}
}

func TestIsSigned(t *testing.T) {
	tests := []struct {
		auth, target string
		want         bool
	}{
		{"AWS4-HMAC-SHA256 Credential=x", "/", true},
		{"AWS4-ECDSA-P256-SHA256 Credential=x", "/", true},
		{"AWS AKID:sig", "/", false},
		{"", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x", true},
		{"", "/b/k?AWSAccessKeyId=x&Signature=y&Expires=1", false},
		{"", "/b/k?x=X-Amz-Algorithm=", false},
		{"", "/", false},
	}
	for _, tc := range tests {
		hs := [][2]string{{"Host", "h"}}
		if tc.auth != "" {
			hs = append(hs, [2]string{"Authorization", tc.auth})
		}
		if got := IsSigned(serverRequest(t, "GET", tc.target, hs, nil)); got != tc.want {
			t.Errorf("IsSigned(%q, %q) = %v", tc.auth, tc.target, got)
		}
	}
}

func TestCanonicalURI(t *testing.T) {
	tests := []struct{ raw, service, want string }{
		{"/bucket/prefix%2Fkey", "s3", "/bucket/prefix%2Fkey"},
		{"/bucket/prefix%2fkey", "s3", "/bucket/prefix%2Fkey"},
		{"/bucket/a b+c", "s3", "/bucket/a%20b%2Bc"},
		{"/bucket/100%", "s3", "/bucket/100%25"},
		{"/bucket/%zz", "s3", "/bucket/%25zz"},
		{"/bucket/./../x//", "s3", "/bucket/./../x//"},
		{"", "s3", "/"},
		{"/a%2Fb", "ec2", "/a%252Fb"},
		{"/a/./b/../c//d/", "ec2", "/a/c/d/"},
		{"/..", "ec2", "/"},
		{"", "ec2", "/"},
	}
	for _, tc := range tests {
		if got := canonicalURI(tc.raw, tc.service); got != tc.want {
			t.Errorf("canonicalURI(%q, %s) = %q, want %q", tc.raw, tc.service, got, tc.want)
		}
	}
	if got := uriCandidates("/bucket/a%2Fb", "s3"); len(got) != 2 || got[1] != "/bucket/a/b" {
		t.Errorf("uriCandidates = %q", got)
	}
	if got := uriCandidates("/bucket/key", "s3"); len(got) != 1 {
		t.Errorf("uriCandidates = %q", got)
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", ""},
		{"location", "location="},
		{"b=2&a=1&a=0", "a=0&a=1&b=2"},
		{"prefix=a+b&x=%2f&y=%zz", "prefix=a%20b&x=%2F&y=%25zz"},
		{"&&a=1&", "a=1"},
		{"k=v=w", "k=v%3Dw"},
	}
	for _, tc := range tests {
		if got := canonicalQuery(tc.raw, false); got != tc.want {
			t.Errorf("canonicalQuery(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
	if got := canonicalQuery("a=1&X-Amz-Signature=abc", true); got != "a=1" {
		t.Errorf("presigned query %q", got)
	}
}
