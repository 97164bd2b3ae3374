package sigv2

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Signature methods of the EC2 Query form.
const (
	HmacSHA256 = "HmacSHA256"
	HmacSHA1   = "HmacSHA1"
)

// timestampLayouts are the ISO 8601 forms clients send in Timestamp and
// Expires; a missing zone means UTC.
var timestampLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"}

// QueryVerifier verifies EC2 Query (SignatureVersion 2) requests.
type QueryVerifier struct {
	Keys    Credentials
	Now     func() time.Time // nil means time.Now
	MaxSkew time.Duration    // 0 means DefaultMaxSkew
}

// IsQuerySigned reports whether params carry an EC2 Query SigV2
// signature (SignatureVersion and Signature).
func IsQuerySigned(params url.Values) bool {
	return params.Has("SignatureVersion") && params.Has("Signature")
}

func parseTimestamp(s string) (time.Time, error) {
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 time: %q", s)
}

// canonicalQueryV2 sorts params by name (then value), RFC 3986-encodes
// names and values and joins them; Signature is left out.
func canonicalQueryV2(params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vs := append([]string(nil), params[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(encodeRFC3986(k))
			b.WriteByte('=')
			b.WriteString(encodeRFC3986(v))
		}
	}
	return b.String()
}

// encodeRFC3986 percent-encodes every byte outside the unreserved set.
func encodeRFC3986(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// stringToSignQuery joins the EC2 Query SigV2 string to sign.
func stringToSignQuery(method, host, path string, params url.Values) string {
	if path == "" {
		path = "/"
	}
	return strings.ToUpper(method) + "\n" + strings.ToLower(host) + "\n" + path + "\n" + canonicalQueryV2(params)
}

func macFor(method string) (func() hash.Hash, error) {
	switch method {
	case HmacSHA256:
		return sha256.New, nil
	case HmacSHA1:
		return sha1.New, nil
	}
	return nil, fmt.Errorf("%w: SignatureMethod %q", ErrUnsupported, method)
}

func signQuery(h func() hash.Hash, secret, sts string) []byte {
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(sts))
	return m.Sum(nil)
}

// hostCandidates lists the host as sent and, when it has a port, the host
// without it (clients differ on whether they sign the port).
func hostCandidates(host string) []string {
	out := []string{host}
	if h, _, err := net.SplitHostPort(host); err == nil && h != "" {
		out = append(out, h)
	}
	return out
}

// Verify checks an EC2 Query SigV2 request. method, host (the Host header,
// with its port as sent) and path come from the request; params from the
// query string (GET) or the form body (POST), decoded. A Timestamp must be
// within the allowed skew, an Expires must not have passed.
func (v *QueryVerifier) Verify(ctx context.Context, method, host, path string, params url.Values) (*Auth, error) {
	c := clock{v.Now, v.MaxSkew}
	one := func(name string) (string, error) {
		vs := params[name]
		switch {
		case len(vs) == 0 || vs[0] == "":
			return "", fmt.Errorf("%w: missing %s", ErrMalformed, name)
		case len(vs) > 1:
			return "", fmt.Errorf("%w: repeated %s", ErrMalformed, name)
		}
		return vs[0], nil
	}
	auth := &Auth{}
	var err error
	if auth.AccessKeyID, err = one("AWSAccessKeyId"); err != nil {
		return nil, err
	}
	sigText, err := one("Signature")
	if err != nil {
		return nil, err
	}
	if sv, err := one("SignatureVersion"); err != nil {
		return nil, err
	} else if sv != "2" {
		return nil, fmt.Errorf("%w: SignatureVersion %q", ErrUnsupported, sv)
	}
	sm, err := one("SignatureMethod")
	if err != nil {
		return nil, err
	}
	mac, err := macFor(sm)
	if err != nil {
		return nil, err
	}
	sig, ok := decodeSignature(sigText)
	if !ok {
		return nil, fmt.Errorf("%w: signature is not base64", ErrSignature)
	}
	ts, exp := params.Get("Timestamp"), params.Get("Expires")
	switch {
	case ts != "" && exp != "":
		return nil, fmt.Errorf("%w: both Timestamp and Expires given", ErrMalformed)
	case ts != "":
		if auth.Time, err = parseTimestamp(ts); err != nil {
			return nil, fmt.Errorf("%w: Timestamp: %w", ErrMalformed, err)
		}
	case exp != "":
		if auth.Time, err = parseTimestamp(exp); err != nil {
			return nil, fmt.Errorf("%w: Expires: %w", ErrMalformed, err)
		}
	default:
		return nil, fmt.Errorf("%w: missing Timestamp or Expires", ErrMalformed)
	}
	secret, err := secretKey(ctx, v.Keys, auth.AccessKeyID)
	if err != nil {
		return nil, err
	}
	if ts != "" {
		if err := c.checkSkew(auth.Time); err != nil {
			return nil, err
		}
	} else if now := c.time(); now.After(auth.Time) {
		return nil, fmt.Errorf("%w: expired at %s, server time %s", ErrExpired, exp, now.UTC().Format(time.RFC3339))
	}
	ok = false
	for _, h := range hostCandidates(host) {
		if hmac.Equal(signQuery(mac, secret, stringToSignQuery(method, h, path, params)), sig) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: query sigv2 signature for access key %q", ErrSignature, auth.AccessKeyID)
	}
	return auth, nil
}

// SignQuery adds AWSAccessKeyId, SignatureVersion, SignatureMethod
// (HmacSHA256), Timestamp and Signature to params, as the EC2 API tools do.
func SignQuery(method, host, path string, params url.Values, accessKeyID, secretKey string, t time.Time) error {
	if accessKeyID == "" || secretKey == "" {
		return fmt.Errorf("%w: invalid credentials", ErrMalformed)
	}
	params.Del("Signature")
	params.Set("AWSAccessKeyId", accessKeyID)
	params.Set("SignatureVersion", "2")
	params.Set("SignatureMethod", HmacSHA256)
	if !params.Has("Expires") {
		params.Set("Timestamp", t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	sig := signQuery(sha256.New, secretKey, stringToSignQuery(method, host, path, params))
	params.Set("Signature", base64.StdEncoding.EncodeToString(sig))
	return nil
}
