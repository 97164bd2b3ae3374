package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Constants of the SigV4 algorithm.
const (
	// Algorithm is the value of X-Amz-Algorithm and the Authorization scheme.
	Algorithm = "AWS4-HMAC-SHA256"
	// UnsignedPayload is the x-amz-content-sha256 value of an unsigned body.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// StreamingPayload is the x-amz-content-sha256 value of an aws-chunked
	// body with a signature on each chunk.
	StreamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	// StreamingPayloadTrailer is StreamingPayload followed by signed
	// trailing headers.
	StreamingPayloadTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	// StreamingUnsignedTrailer is an aws-chunked body without chunk
	// signatures, followed by trailing headers (usually a checksum).
	StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	// EmptySHA256 is the hex SHA-256 of an empty payload.
	EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

	// TimeFormat is the ISO 8601 basic format of X-Amz-Date.
	TimeFormat = "20060102T150405Z"
	// DateFormat is the date format of the credential scope.
	DateFormat = "20060102"

	ecdsaPrefix     = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
	scopeTerminator = "aws4_request"
	chunkAlgorithm  = "AWS4-HMAC-SHA256-PAYLOAD"
	trailerAlgo     = "AWS4-HMAC-SHA256-TRAILER"
)

// isUnreserved reports whether c belongs to RFC 3986's unreserved set,
// which SigV4 never percent-encodes.
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

const upperHex = "0123456789ABCDEF"

// uriEncode percent-encodes every byte of s outside the unreserved set
// (keeping '/' when keepSlash), the way AWS's UriEncode does.
func uriEncode(s string, keepSlash bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// requestPath returns the path of r as the client sent it, still
// percent-encoded: from the request line when r came from a server, else
// from r.URL the way the HTTP client writes it.
func requestPath(r *http.Request) string {
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	// absolute-form (a proxy request): drop scheme and authority.
	if i := strings.Index(target, "://"); i >= 0 && !strings.HasPrefix(target, "/") {
		rest := target[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			target = rest[j:]
		} else {
			target = "/"
		}
	}
	if target == "" || target == "*" {
		return "/"
	}
	return target
}

// canonicalURIS3 is the canonical URI of an s3 request: the path as sent,
// with every escape kept (upper-cased) and any other byte outside the
// unreserved set percent-encoded. It never decodes, so "%2F" stays "%2F".
func canonicalURIS3(raw string) string {
	var b strings.Builder
	b.Grow(len(raw) + 8)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(raw[i+1 : i+3]))
			i += 2
		case isUnreserved(c) || c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// normalizePath removes empty, "." and ".." segments from an absolute path,
// keeping a trailing slash, as the AWS test suite expects.
func normalizePath(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	last := segs[len(segs)-1]
	trailing := last == "" || last == "." || last == ".."
	res := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		res += "/"
	}
	return res
}

// canonicalURIOther is the canonical URI for services other than s3: the
// path as sent, normalised, then URI-encoded (so escapes are encoded a
// second time, as AWS documents).
func canonicalURIOther(raw string) string {
	return uriEncode(normalizePath(raw), true)
}

// canonicalURI returns the canonical URI of the raw request path for service.
func canonicalURI(raw, service string) string {
	if service == "s3" {
		return canonicalURIS3(raw)
	}
	return canonicalURIOther(raw)
}

// uriCandidates lists the canonical URIs a client may have signed for the
// raw path, the rule of canonicalURI first. For s3 two more are tried when
// they differ:
//
//   - the path decoded and URI-encoded again with '/' kept, which is what
//     S3 itself computes: Amazon's ec2-ami-tools send a key's '/' as "%2F"
//     but sign it as '/';
//   - the path exactly as sent (a client that signed, say, a lower-case
//     escape).
//
// Each candidate decodes to the same object key as the path sent, so
// accepting any of them lets no one reach another object.
func uriCandidates(raw, service string) []string {
	first := canonicalURI(raw, service)
	uris := []string{first}
	if service != "s3" || strings.IndexByte(raw, '%') < 0 && raw == first {
		return uris
	}
	if dec, err := url.PathUnescape(raw); err == nil {
		if u := uriEncode(dec, true); u != first {
			uris = append(uris, u)
		}
	}
	if raw != first && raw != uris[len(uris)-1] {
		uris = append(uris, raw)
	}
	return uris
}

// queryUnescape decodes a query component ('+' is a space); a component
// that is not validly escaped is taken literally.
func queryUnescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// canonicalQuery returns the canonical query string of rawQuery: every
// parameter (except X-Amz-Signature when presigned) decoded, re-encoded with
// uriEncode, sorted by encoded name then value, joined with '&'.
func canonicalQuery(rawQuery string, presigned bool) string {
	if rawQuery == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = queryUnescape(k), queryUnescape(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		params = append(params, kv{uriEncode(k, false), uriEncode(v, false)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// trimHeaderValue trims a header value and collapses inner runs of
// whitespace (including folded line breaks) to one space.
func trimHeaderValue(v string) string {
	v = strings.TrimSpace(v)
	if !strings.ContainsAny(v, "\t\r\n") && !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// headerValues returns the values of the named (lower-case) header of r as
// the client sent them. Go moves some headers out of r.Header; they are
// restored here.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		h := r.Host
		if h == "" {
			h = r.URL.Host
		}
		return []string{h}
	}
	vs := r.Header.Values(name)
	if len(vs) > 0 {
		return vs
	}
	if vs := r.Header[name]; len(vs) > 0 { // a non-canonical key set by hand
		return vs
	}
	switch name {
	case "content-length":
		if r.ContentLength > 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
	}
	return nil
}

// canonicalHeaders returns the canonical headers block ("name:value\n" for
// each signed header, in the order given) and the SignedHeaders string.
func canonicalHeaders(r *http.Request, signed []string) (block, list string) {
	var b strings.Builder
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimHeaderValue(v))
		}
		b.WriteByte('\n')
	}
	return b.String(), strings.Join(signed, ";")
}

// canonicalRequest joins the parts of the canonical request.
func canonicalRequest(method, uri, query, headerBlock, signedHeaders, payloadHash string) string {
	return method + "\n" + uri + "\n" + query + "\n" + headerBlock + "\n" + signedHeaders + "\n" + payloadHash
}

// scope returns the credential scope "date/region/service/aws4_request".
func scope(date, region, service string) string {
	return date + "/" + region + "/" + service + "/" + scopeTerminator
}

// stringToSign returns the SigV4 string to sign for a canonical request.
func stringToSign(amzDate, credScope, canonReq string) string {
	return Algorithm + "\n" + amzDate + "\n" + credScope + "\n" + hashHex([]byte(canonReq))
}

// deriveKey derives the SigV4 signing key for a secret and scope.
func deriveKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, scopeTerminator)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chunkStringToSign is the string to sign of one aws-chunked chunk.
func chunkStringToSign(amzDate, credScope, prevSig, chunkHash string) string {
	return chunkAlgorithm + "\n" + amzDate + "\n" + credScope + "\n" + prevSig + "\n" + EmptySHA256 + "\n" + chunkHash
}

// trailerStringToSign is the string to sign of the trailing headers of a
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER body.
func trailerStringToSign(amzDate, credScope, prevSig, trailerHash string) string {
	return trailerAlgo + "\n" + amzDate + "\n" + credScope + "\n" + prevSig + "\n" + trailerHash
}

// parseAmzDate parses an X-Amz-Date value.
func parseAmzDate(s string) (time.Time, error) {
	return time.Parse(TimeFormat, s)
}
