package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// unsignedHeaders are never signed by Sign and Presign: they are added or
// rewritten by the transport or by proxies.
var unsignedHeaders = map[string]bool{
	"authorization":       true,
	"user-agent":          true,
	"expect":              true,
	"transfer-encoding":   true,
	"connection":          true,
	"keep-alive":          true,
	"proxy-authorization": true,
	"proxy-connection":    true,
	"te":                  true,
	"trailer":             true,
	"upgrade":             true,
	"accept-encoding":     true,
	"x-amzn-trace-id":     true,
}

// headersToSign lists, sorted, host and every header of r that is not in
// unsignedHeaders; content-length too when the transport will send it.
func headersToSign(r *http.Request, withLength bool) []string {
	names := []string{"host"}
	for k := range r.Header {
		n := strings.ToLower(k)
		if !unsignedHeaders[n] && n != "host" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if withLength && r.ContentLength > 0 && !slices.Contains(names, "content-length") {
		names = append(names, "content-length")
	}
	sort.Strings(names)
	return names
}

// clientTarget returns the path and query r will be sent with.
func clientTarget(r *http.Request) (path, query string) {
	path = r.URL.EscapedPath()
	if r.URL.Opaque != "" {
		path, _, _ = strings.Cut(r.URL.RequestURI(), "?")
	}
	if path == "" {
		path = "/"
	}
	return path, r.URL.RawQuery
}

func checkSignArgs(accessKeyID, secretKey, region, service string) error {
	switch {
	case accessKeyID == "" || strings.Contains(accessKeyID, "/"):
		return fmt.Errorf("%w: invalid access key id %q", ErrMalformed, accessKeyID)
	case secretKey == "":
		return fmt.Errorf("%w: empty secret key", ErrMalformed)
	case region == "" || strings.Contains(region, "/"):
		return fmt.Errorf("%w: invalid region %q", ErrMalformed, region)
	case service == "" || strings.Contains(service, "/"):
		return fmt.Errorf("%w: invalid service %q", ErrMalformed, service)
	}
	return nil
}

// bodyHash returns the hex SHA-256 of r's body without consuming it.
func bodyHash(r *http.Request) (string, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return EmptySHA256, nil
	}
	if r.GetBody == nil {
		return "", fmt.Errorf("sigv4: payload hash needed: the body cannot be re-read (no GetBody)")
	}
	body, err := r.GetBody()
	if err != nil {
		return "", fmt.Errorf("sigv4: get body: %w", err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, body); err != nil {
		return "", fmt.Errorf("sigv4: hash body: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Sign signs r in the header form: it sets X-Amz-Date, X-Amz-Content-Sha256
// and Authorization, signing host and every header already set on r except
// hop-by-hop ones, User-Agent, Expect and Accept-Encoding. payloadHash is
// the hex SHA-256 of the body, UnsignedPayload, or "" to hash the body
// (through r.GetBody). r is a client request: its path and query are taken
// from r.URL.
func Sign(r *http.Request, accessKeyID, secretKey, region, service, payloadHash string, t time.Time) error {
	if err := checkSignArgs(accessKeyID, secretKey, region, service); err != nil {
		return err
	}
	if payloadHash == "" {
		var err error
		if payloadHash, err = bodyHash(r); err != nil {
			return err
		}
	}
	t = t.UTC()
	amzDate := t.Format(TimeFormat)
	r.Header.Del("Authorization")
	r.Header.Set("X-Amz-Date", amzDate)
	r.Header.Set("X-Amz-Content-Sha256", payloadHash)
	cred := credential{accessKeyID: accessKeyID, date: t.Format(DateFormat), region: region, service: service}
	path, query := clientTarget(r)
	block, list := canonicalHeaders(r, headersToSign(r, true))
	cr := canonicalRequest(r.Method, canonicalURI(path, service), canonicalQuery(query, false), block, list, payloadHash)
	sig := signature(deriveKey(secretKey, cred.date, region, service), amzDate, cred, cr)
	r.Header.Set("Authorization", Algorithm+" Credential="+accessKeyID+"/"+cred.scope()+
		", SignedHeaders="+list+", Signature="+hex.EncodeToString(sig))
	return nil
}

// Presign signs r in the query form, valid for expires (1 s to 7 days)
// from t: it rewrites r.URL.RawQuery with the X-Amz-* parameters and
// X-Amz-Signature. The payload is UNSIGNED-PAYLOAD. Headers already set on
// r (other than those Sign leaves out) are signed and must be sent along.
func Presign(r *http.Request, accessKeyID, secretKey, region, service string, t time.Time, expires time.Duration) error {
	if err := checkSignArgs(accessKeyID, secretKey, region, service); err != nil {
		return err
	}
	secs := int64(expires / time.Second)
	if expires%time.Second != 0 || secs < 1 || secs > int64(MaxExpires/time.Second) {
		return fmt.Errorf("%w: expiry %s must be whole seconds from 1s to %s", ErrMalformed, expires, MaxExpires)
	}
	t = t.UTC()
	amzDate := t.Format(TimeFormat)
	cred := credential{accessKeyID: accessKeyID, date: t.Format(DateFormat), region: region, service: service}
	signed := headersToSign(r, false)
	path, query := clientTarget(r)
	var params []string
	for _, part := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(part, "=")
		switch queryUnescape(k) {
		case "", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature":
			continue
		}
		params = append(params, part)
	}
	params = append(params,
		"X-Amz-Algorithm="+Algorithm,
		"X-Amz-Credential="+uriEncode(accessKeyID+"/"+cred.scope(), false),
		"X-Amz-Date="+amzDate,
		"X-Amz-Expires="+strconv.FormatInt(secs, 10),
		"X-Amz-SignedHeaders="+uriEncode(strings.Join(signed, ";"), false),
	)
	query = canonicalQuery(strings.Join(params, "&"), true)
	block, list := canonicalHeaders(r, signed)
	cr := canonicalRequest(r.Method, canonicalURI(path, service), query, block, list, UnsignedPayload)
	sig := signature(deriveKey(secretKey, cred.date, region, service), amzDate, cred, cr)
	r.URL.RawQuery = query + "&X-Amz-Signature=" + hex.EncodeToString(sig)
	return nil
}
