package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a zero Verifier.
const (
	// DefaultMaxSkew is the clock skew allowed when MaxSkew is 0.
	DefaultMaxSkew = 15 * time.Minute
	// DefaultMaxBufferedBody is the limit used when MaxBufferedBody is 0.
	DefaultMaxBufferedBody = 1 << 20

	keyCacheSize = 256
)

// Credentials resolves secret keys. Implementations return an error
// wrapping ErrUnknownKey when the access key ID is not known.
type Credentials interface {
	SecretKey(ctx context.Context, accessKeyID string) (string, error)
}

// Verifier verifies SigV4-signed requests. The zero value of every field
// but Keys is usable. A Verifier is safe for concurrent use and must not be
// copied after first use (it caches derived signing keys).
type Verifier struct {
	Keys    Credentials
	Now     func() time.Time // nil means time.Now
	MaxSkew time.Duration    // 0 means DefaultMaxSkew
	// MaxBufferedBody bounds the body that is read into memory to be hashed
	// when a header-signed request of a service other than s3 carries no
	// x-amz-content-sha256. 0 means DefaultMaxBufferedBody.
	MaxBufferedBody int64

	cache keyCache
}

// Auth describes a verified request.
type Auth struct {
	AccessKeyID string
	// Region and Service come from the credential scope, whatever they are.
	Region, Service string
	Time            time.Time
	Presigned       bool
	// PayloadHash is the x-amz-content-sha256 header (or the
	// X-Amz-Content-Sha256 query parameter of a presigned request), "" if
	// absent.
	PayloadHash string
	// Trailer holds the trailing headers of an aws-chunked body (for example
	// X-Amz-Checksum-Crc32). It is filled once the body has been read to
	// io.EOF.
	Trailer http.Header
}

// IsSigned reports whether r carries any SigV4 signature: an Authorization
// header of an AWS4 scheme or an X-Amz-Algorithm query parameter.
func IsSigned(r *http.Request) bool {
	return hasAWS4Scheme(r.Header.Get("Authorization")) || IsPresigned(r)
}

// IsPresigned reports whether r uses the query (presigned) form, so that
// the API edge can tell AuthorizationQueryParametersError from
// AuthorizationHeaderMalformed.
func IsPresigned(r *http.Request) bool {
	_, q := requestTarget(r)
	return strings.Contains(q, "X-Amz-Algorithm=") && parseQuery(q).Has("X-Amz-Algorithm")
}

func hasAWS4Scheme(h string) bool {
	return strings.HasPrefix(strings.TrimSpace(h), "AWS4-")
}

// requestTarget returns the raw path and raw query of r as sent.
func requestTarget(r *http.Request) (path, query string) {
	if r.RequestURI != "" {
		if _, q, ok := strings.Cut(r.RequestURI, "?"); ok {
			query = q
		}
	} else if r.URL != nil {
		query = r.URL.RawQuery
	}
	return requestPath(r), query
}

// Verify verifies the SigV4 signature of r, in header or query form. On
// success it may replace r.Body with a reader that checks the payload as it
// is read (see the package comment) and, for aws-chunked bodies, sets
// r.ContentLength to x-amz-decoded-content-length and removes "aws-chunked"
// from Content-Encoding.
func (v *Verifier) Verify(r *http.Request) (*Auth, error) {
	authz := r.Header.Get("Authorization")
	header := hasAWS4Scheme(authz)
	query := IsPresigned(r)
	switch {
	case header && query:
		return nil, fmt.Errorf("%w: both an Authorization header and X-Amz-Algorithm query given", ErrMalformed)
	case header:
		return v.verifyHeader(r, authz)
	case query:
		return v.verifyPresigned(r)
	}
	return nil, fmt.Errorf("%w: request carries no sigv4 signature", ErrMalformed)
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

func (v *Verifier) maxBuffered() int64 {
	if v.MaxBufferedBody > 0 {
		return v.MaxBufferedBody
	}
	return DefaultMaxBufferedBody
}

func (v *Verifier) secretKey(ctx context.Context, accessKeyID string) (string, error) {
	secret, err := v.Keys.SecretKey(ctx, accessKeyID)
	if err != nil {
		return "", fmt.Errorf("access key %q: %w", accessKeyID, err)
	}
	return secret, nil
}

// headerTime returns the timestamp string used in the string to sign and
// the request time, from X-Amz-Date or else Date.
func headerTime(r *http.Request) (string, time.Time, error) {
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, err := parseAmzDate(d)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("%w: X-Amz-Date %q is not yyyymmddThhmmssZ", ErrMalformed, d)
		}
		return d, t, nil
	}
	if d := r.Header.Get("Date"); d != "" {
		t, err := parseHTTPDate(d)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("%w: Date %q is not an HTTP date", ErrMalformed, d)
		}
		t = t.UTC()
		return t.Format(TimeFormat), t, nil
	}
	return "", time.Time{}, fmt.Errorf("%w: missing X-Amz-Date or Date header", ErrMalformed)
}

// parseHTTPDate parses the date formats HTTP allows, and RFC 1123 with a
// numeric zone.
func parseHTTPDate(s string) (time.Time, error) {
	if t, err := http.ParseTime(s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unknown date format %q", s)
}

// payload describes how the body is covered by the signature.
type payload int

const (
	payloadUntouched payload = iota
	payloadHashed
	payloadChunked
)

// isSHA256Hex reports whether s is 64 hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func (v *Verifier) verifyHeader(r *http.Request, authz string) (*Auth, error) {
	a, err := parseAuthorization(authz)
	if err != nil {
		return nil, err
	}
	amzDate, t, err := headerTime(r)
	if err != nil {
		return nil, err
	}
	if amzDate[:8] != a.cred.date {
		return nil, fmt.Errorf("%w: credential date %s does not match request date %s", ErrMalformed, a.cred.date, amzDate)
	}
	ph := r.Header.Get("X-Amz-Content-Sha256")
	kind := payloadUntouched
	switch {
	case ph == "":
	case isSHA256Hex(ph):
		kind = payloadHashed
	case ph == UnsignedPayload:
	case ph == StreamingPayload || ph == StreamingPayloadTrailer || ph == StreamingUnsignedTrailer:
		kind = payloadChunked
	case strings.HasPrefix(ph, ecdsaPrefix):
		return nil, fmt.Errorf("%w: x-amz-content-sha256 %s (sigv4a streaming)", ErrUnsupported, ph)
	default:
		return nil, fmt.Errorf("%w: invalid x-amz-content-sha256 value %q", ErrContentSHA256, ph)
	}
	var decodedLen int64
	if kind == payloadChunked {
		if decodedLen, err = decodedLength(r); err != nil {
			return nil, err
		}
	}
	secret, err := v.secretKey(r.Context(), a.cred.accessKeyID)
	if err != nil {
		return nil, err
	}
	now := v.now()
	if d := now.Sub(t); d > v.maxSkew() || -d > v.maxSkew() {
		return nil, fmt.Errorf("%w: request time %s, server time %s", ErrSkewed, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	canonPayload := ph
	if ph == "" {
		if canonPayload, err = v.bufferBody(r, a.cred.service); err != nil {
			return nil, err
		}
	}
	key := v.signingKey(secret, a.cred)
	if !checkSignature(r, a, amzDate, key, []string{canonPayload}, false) {
		return nil, fmt.Errorf("%w: header signature for access key %q", ErrSignature, a.cred.accessKeyID)
	}
	auth := &Auth{
		AccessKeyID: a.cred.accessKeyID,
		Region:      a.cred.region,
		Service:     a.cred.service,
		Time:        t,
		PayloadHash: ph,
	}
	switch kind {
	case payloadHashed:
		if err := installHashReader(r, ph); err != nil {
			return nil, err
		}
	case payloadChunked:
		mode := modeSigned
		switch ph {
		case StreamingPayloadTrailer:
			mode = modeSignedTrailer
		case StreamingUnsignedTrailer:
			mode = modeUnsignedTrailer
		}
		dec := newChunkedReader(r.Body, chunkConfig{
			mode:       mode,
			key:        key,
			amzDate:    amzDate,
			scope:      a.cred.scope(),
			seed:       hex.EncodeToString(a.signature),
			decodedLen: decodedLen,
			trailers:   declaredTrailers(r.Header.Values("X-Amz-Trailer")),
			onTrailer:  func(h http.Header) { auth.Trailer = h },
		})
		r.Body = readCloser{dec, r.Body}
		r.ContentLength = decodedLen
		stripAWSChunked(r.Header)
	}
	return auth, nil
}

func (v *Verifier) verifyPresigned(r *http.Request) (*Auth, error) {
	_, rawQuery := requestTarget(r)
	p, err := parsePresigned(parseQuery(rawQuery))
	if err != nil {
		return nil, err
	}
	payloads := []string{p.payloadHash}
	hashed := false
	switch {
	case p.payloadHash == "":
		payloads = []string{UnsignedPayload}
		if r.ContentLength == 0 {
			// SDKs presigning for services other than s3 sign the hash of
			// the (empty) body.
			payloads = append(payloads, EmptySHA256)
		}
	case p.payloadHash == UnsignedPayload:
	case isSHA256Hex(p.payloadHash):
		hashed = true
	case strings.HasPrefix(p.payloadHash, "STREAMING-"):
		return nil, fmt.Errorf("%w: streaming payload %s with a presigned request", ErrUnsupported, p.payloadHash)
	default:
		return nil, fmt.Errorf("%w: invalid X-Amz-Content-Sha256 value %q", ErrContentSHA256, p.payloadHash)
	}
	secret, err := v.secretKey(r.Context(), p.cred.accessKeyID)
	if err != nil {
		return nil, err
	}
	now := v.now()
	if p.time.Sub(now) > v.maxSkew() {
		return nil, fmt.Errorf("%w: X-Amz-Date %s, server time %s", ErrNotYetValid, p.amzDate, now.UTC().Format(TimeFormat))
	}
	if now.After(p.time.Add(p.expires)) {
		return nil, fmt.Errorf("%w: at %s, X-Amz-Date %s plus X-Amz-Expires %d",
			ErrExpired, now.UTC().Format(TimeFormat), p.amzDate, int64(p.expires/time.Second))
	}
	key := v.signingKey(secret, p.cred)
	if !checkSignature(r, p.authorization, p.amzDate, key, payloads, true) {
		return nil, fmt.Errorf("%w: presigned signature for access key %q", ErrSignature, p.cred.accessKeyID)
	}
	if hashed {
		if err := installHashReader(r, p.payloadHash); err != nil {
			return nil, err
		}
	}
	return &Auth{
		AccessKeyID: p.cred.accessKeyID,
		Region:      p.cred.region,
		Service:     p.cred.service,
		Time:        p.time,
		Presigned:   true,
		PayloadHash: p.payloadHash,
	}, nil
}

// checkSignature computes the signature of r for each candidate canonical
// URI (see uriCandidates) and payload hash and compares it with the one
// sent, in constant time.
func checkSignature(r *http.Request, a authorization, amzDate string, key []byte, payloads []string, presigned bool) bool {
	rawPath, rawQuery := requestTarget(r)
	uris := uriCandidates(rawPath, a.cred.service)
	query := canonicalQuery(rawQuery, presigned)
	block, list := canonicalHeaders(r, a.signedHeaders)
	ok := false
	for _, uri := range uris {
		for _, p := range payloads {
			sig := signature(key, amzDate, a.cred, canonicalRequest(r.Method, uri, query, block, list, p))
			if hmac.Equal(sig, a.signature) {
				ok = true
			}
		}
	}
	return ok
}

// signature signs a canonical request.
func signature(key []byte, amzDate string, c credential, canonReq string) []byte {
	return hmacSHA256(key, stringToSign(amzDate, c.scope(), canonReq))
}

// bufferBody reads a body that was signed without x-amz-content-sha256 (at
// most MaxBufferedBody bytes), replaces r.Body with the bytes read and
// returns their hash.
func (v *Verifier) bufferBody(r *http.Request, service string) (string, error) {
	if service == "s3" {
		return "", fmt.Errorf("%w: required for s3", ErrMissingContentSHA256)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return EmptySHA256, nil
	}
	limit := v.maxBuffered()
	if r.ContentLength > limit {
		return "", fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMissingContentSHA256, r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return "", fmt.Errorf("%w: reading body: %w", ErrIncompleteBody, err)
	}
	if int64(len(body)) > limit {
		return "", fmt.Errorf("%w: body exceeds %d bytes", ErrMissingContentSHA256, limit)
	}
	if r.ContentLength > 0 && int64(len(body)) < r.ContentLength {
		return "", fmt.Errorf("%w: got %d of %d bytes", ErrIncompleteBody, len(body), r.ContentLength)
	}
	r.Body = readCloser{bytes.NewReader(body), r.Body}
	return hashHex(body), nil
}

// decodedLength returns x-amz-decoded-content-length.
func decodedLength(r *http.Request) (int64, error) {
	s := r.Header.Get("X-Amz-Decoded-Content-Length")
	if s == "" {
		return 0, fmt.Errorf("%w: required with aws-chunked payloads", ErrMissingDecodedLength)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: invalid value %q", ErrMissingDecodedLength, s)
	}
	return n, nil
}

// declaredTrailers splits the x-amz-trailer header values into canonical
// header names.
func declaredTrailers(values []string) []string {
	var names []string
	for _, v := range values {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	return names
}

// stripAWSChunked removes the aws-chunked coding from Content-Encoding: it
// describes the transfer, not the object.
func stripAWSChunked(h http.Header) {
	vs := h.Values("Content-Encoding")
	if len(vs) == 0 {
		return
	}
	var keep []string
	for _, v := range vs {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "aws-chunked") {
				keep = append(keep, c)
			}
		}
	}
	if len(keep) == 0 {
		h.Del("Content-Encoding")
		return
	}
	h.Set("Content-Encoding", strings.Join(keep, ","))
}

// readCloser reads from one reader and closes another (the original body).
type readCloser struct {
	io.Reader
	io.Closer
}

// signingKey returns the derived key for secret and scope, from the cache
// when possible.
func (v *Verifier) signingKey(secret string, c credential) []byte {
	return v.cache.get(secret, c.date, c.region, c.service)
}

// keyCache is a small bounded cache of derived signing keys.
type keyCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *keyCache) get(secret, date, region, service string) []byte {
	id := date + "/" + region + "/" + service + "\x00" + secret
	c.mu.Lock()
	k, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return k
	}
	k = deriveKey(secret, date, region, service)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]byte)
	}
	if len(c.m) >= keyCacheSize {
		for old := range c.m { // evict an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[id] = k
	c.mu.Unlock()
	return k
}
