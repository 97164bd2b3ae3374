package sigv4

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on presigned URLs.
const (
	// MaxExpires is the longest X-Amz-Expires AWS accepts (seven days).
	MaxExpires = 7 * 24 * time.Hour
)

// credential is a parsed Credential / X-Amz-Credential value.
type credential struct {
	accessKeyID, date, region, service string
}

func (c credential) scope() string { return scope(c.date, c.region, c.service) }

// parseCredential parses "AKID/20150830/us-east-1/service/aws4_request".
// Region and service may be anything non-empty (boto 2 sends "0" and "127"
// when the endpoint is 127.0.0.1).
func parseCredential(s string) (credential, error) {
	parts := strings.Split(s, "/")
	n := len(parts)
	if n < 5 {
		return credential{}, fmt.Errorf("%w: credential %q is not AKID/date/region/service/aws4_request", ErrMalformed, s)
	}
	c := credential{
		accessKeyID: strings.Join(parts[:n-4], "/"),
		date:        parts[n-4],
		region:      parts[n-3],
		service:     parts[n-2],
	}
	switch {
	case parts[n-1] != scopeTerminator:
		return credential{}, fmt.Errorf("%w: credential scope must end in %q, got %q", ErrMalformed, scopeTerminator, parts[n-1])
	case c.accessKeyID == "":
		return credential{}, fmt.Errorf("%w: empty access key id in credential", ErrMalformed)
	case c.region == "":
		return credential{}, fmt.Errorf("%w: empty region in credential scope", ErrMalformed)
	case c.service == "":
		return credential{}, fmt.Errorf("%w: empty service in credential scope", ErrMalformed)
	}
	if _, err := time.Parse(DateFormat, c.date); err != nil || len(c.date) != len(DateFormat) {
		return credential{}, fmt.Errorf("%w: credential scope date %q is not yyyymmdd", ErrMalformed, c.date)
	}
	return c, nil
}

// parseSignedHeaders parses "host;x-amz-date"; host must be present.
func parseSignedHeaders(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty SignedHeaders", ErrMalformed)
	}
	names := strings.Split(s, ";")
	host := false
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("%w: empty name in SignedHeaders %q", ErrMalformed, s)
		}
		n = strings.ToLower(n)
		names[i] = n
		if n == "host" {
			host = true
		}
	}
	if !host {
		return nil, fmt.Errorf("%w: SignedHeaders %q must include host", ErrMalformed, s)
	}
	return names, nil
}

// parseSignature parses 64 lower-case hex digits.
func parseSignature(s string) ([]byte, error) {
	if len(s) != 64 {
		return nil, fmt.Errorf("%w: signature must be 64 hex digits", ErrMalformed)
	}
	if strings.ContainsAny(s, "ABCDEF") {
		return nil, fmt.Errorf("%w: signature must be lower-case hex", ErrMalformed)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not hex", ErrMalformed)
	}
	return b, nil
}

// authorization holds the parsed parts common to both forms.
type authorization struct {
	cred          credential
	signedHeaders []string
	signature     []byte
}

// checkAlgorithm accepts AWS4-HMAC-SHA256 and reports SigV4A as unsupported.
func checkAlgorithm(alg string) error {
	switch {
	case alg == Algorithm:
		return nil
	case strings.HasPrefix(alg, "AWS4-ECDSA"):
		return fmt.Errorf("%w: algorithm %s (sigv4a)", ErrUnsupported, alg)
	default:
		return fmt.Errorf("%w: unknown algorithm %q", ErrMalformed, alg)
	}
}

// parseAuthorization parses an Authorization header value
// "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
// Fields may be separated by "," or ", ".
func parseAuthorization(h string) (authorization, error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if err := checkAlgorithm(alg); err != nil {
		return authorization{}, err
	}
	var a authorization
	var haveCred, haveSigned, haveSig bool
	for _, f := range strings.Split(rest, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return authorization{}, fmt.Errorf("%w: authorization field %q is not name=value", ErrMalformed, f)
		}
		var err error
		switch k {
		case "Credential":
			if haveCred {
				return authorization{}, fmt.Errorf("%w: repeated Credential", ErrMalformed)
			}
			haveCred = true
			a.cred, err = parseCredential(v)
		case "SignedHeaders":
			if haveSigned {
				return authorization{}, fmt.Errorf("%w: repeated SignedHeaders", ErrMalformed)
			}
			haveSigned = true
			a.signedHeaders, err = parseSignedHeaders(v)
		case "Signature":
			if haveSig {
				return authorization{}, fmt.Errorf("%w: repeated Signature", ErrMalformed)
			}
			haveSig = true
			a.signature, err = parseSignature(v)
		default:
			return authorization{}, fmt.Errorf("%w: unknown authorization field %q", ErrMalformed, k)
		}
		if err != nil {
			return authorization{}, err
		}
	}
	switch {
	case !haveCred:
		return authorization{}, fmt.Errorf("%w: missing Credential", ErrMalformed)
	case !haveSigned:
		return authorization{}, fmt.Errorf("%w: missing SignedHeaders", ErrMalformed)
	case !haveSig:
		return authorization{}, fmt.Errorf("%w: missing Signature", ErrMalformed)
	}
	return a, nil
}

// parseQuery splits a raw query the way canonicalQuery does, so that the
// values checked are the values signed.
func parseQuery(raw string) url.Values {
	q := url.Values{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k = queryUnescape(k)
		q[k] = append(q[k], queryUnescape(v))
	}
	return q
}

// presigned holds a parsed presigned query.
type presigned struct {
	authorization
	amzDate     string
	time        time.Time
	expires     time.Duration
	payloadHash string // X-Amz-Content-Sha256, "" if absent
}

// parsePresigned parses the X-Amz-* parameters of a presigned request.
func parsePresigned(q url.Values) (presigned, error) {
	get := func(name string) (string, error) {
		vs := q[name]
		switch len(vs) {
		case 0:
			return "", fmt.Errorf("%w: missing %s", ErrMalformed, name)
		case 1:
			return vs[0], nil
		default:
			return "", fmt.Errorf("%w: repeated %s", ErrMalformed, name)
		}
	}
	var p presigned
	alg, err := get("X-Amz-Algorithm")
	if err != nil {
		return p, err
	}
	if err := checkAlgorithm(alg); err != nil {
		return p, err
	}
	cred, err := get("X-Amz-Credential")
	if err != nil {
		return p, err
	}
	if p.cred, err = parseCredential(cred); err != nil {
		return p, err
	}
	if p.amzDate, err = get("X-Amz-Date"); err != nil {
		return p, err
	}
	if p.time, err = parseAmzDate(p.amzDate); err != nil {
		return p, fmt.Errorf("%w: X-Amz-Date %q is not yyyymmddThhmmssZ", ErrMalformed, p.amzDate)
	}
	if p.amzDate[:8] != p.cred.date {
		return p, fmt.Errorf("%w: credential date %s does not match X-Amz-Date %s", ErrMalformed, p.cred.date, p.amzDate)
	}
	exp, err := get("X-Amz-Expires")
	if err != nil {
		return p, err
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs < 1 || secs > int64(MaxExpires/time.Second) {
		return p, fmt.Errorf("%w: X-Amz-Expires %q must be an integer from 1 to %d", ErrMalformed, exp, int64(MaxExpires/time.Second))
	}
	p.expires = time.Duration(secs) * time.Second
	sh, err := get("X-Amz-SignedHeaders")
	if err != nil {
		return p, err
	}
	if p.signedHeaders, err = parseSignedHeaders(sh); err != nil {
		return p, err
	}
	sig, err := get("X-Amz-Signature")
	if err != nil {
		return p, err
	}
	if p.signature, err = parseSignature(sig); err != nil {
		return p, err
	}
	if vs := q["X-Amz-Content-Sha256"]; len(vs) > 0 {
		p.payloadHash = vs[0]
	}
	return p, nil
}
