package sigv2

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// subresources are the query parameters S3 includes in the canonicalized
// resource (the AWS list, plus the ones botocore signs).
var subresources = map[string]bool{
	"accelerate": true, "acl": true, "analytics": true, "cors": true, "delete": true,
	"inventory": true, "lifecycle": true, "location": true, "logging": true, "metrics": true,
	"notification": true, "object-lock": true, "partNumber": true, "policy": true,
	"replication": true, "requestPayment": true, "restore": true, "select": true,
	"select-type": true, "tagging": true, "torrent": true, "uploadId": true, "uploads": true,
	"versionId": true, "versioning": true, "versions": true, "website": true,
	"response-cache-control": true, "response-content-disposition": true,
	"response-content-encoding": true, "response-content-language": true,
	"response-content-type": true, "response-expires": true,
}

// S3Verifier verifies S3 SigV2 requests, header and presigned form.
type S3Verifier struct {
	Keys    Credentials
	Now     func() time.Time // nil means time.Now
	MaxSkew time.Duration    // 0 means DefaultMaxSkew
}

// IsS3Signed reports whether r carries an S3 SigV2 signature: an
// Authorization header "AWS key:signature", or the AWSAccessKeyId,
// Signature and Expires query parameters (without the SignatureVersion of
// the EC2 Query form).
func IsS3Signed(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS ") {
		return true
	}
	q := rawQuery(r)
	if !strings.Contains(q, "Signature=") {
		return false
	}
	v := parseQuery(q)
	return v.Has("AWSAccessKeyId") && v.Has("Signature") && v.Has("Expires") && !v.Has("SignatureVersion")
}

// target returns the raw path and query of r as sent.
func target(r *http.Request) (path, query string) {
	t := r.RequestURI
	if t == "" {
		t = r.URL.RequestURI()
	}
	path, query, _ = strings.Cut(t, "?")
	if i := strings.Index(path, "://"); i >= 0 && !strings.HasPrefix(path, "/") { // absolute-form
		rest := path[i+3:]
		path = "/"
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			path = rest[j:]
		}
	}
	if path == "" {
		path = "/"
	}
	return path, query
}

func rawQuery(r *http.Request) string {
	_, q := target(r)
	return q
}

// parseQuery splits a raw query into decoded names and values.
func parseQuery(raw string) url.Values {
	v := url.Values{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		k = queryUnescape(k)
		v[k] = append(v[k], queryUnescape(val))
	}
	return v
}

// parseS3Authorization splits "AWS AKID:signature".
func parseS3Authorization(h string) (accessKeyID string, sig []byte, err error) {
	rest, ok := strings.CutPrefix(h, "AWS ")
	if !ok {
		return "", nil, fmt.Errorf("%w: authorization is not \"AWS key:signature\"", ErrMalformed)
	}
	rest = strings.TrimSpace(rest)
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return "", nil, fmt.Errorf("%w: authorization is not \"AWS key:signature\"", ErrMalformed)
	}
	sig, ok = decodeSignature(rest[i+1:])
	if !ok {
		return "", nil, fmt.Errorf("%w: signature is not base64", ErrSignature)
	}
	return rest[:i], sig, nil
}

// canonicalAmzHeaders returns "name:value\n" for each x-amz-* header of h,
// names lower-cased and sorted, values trimmed, repeated headers joined
// with commas.
func canonicalAmzHeaders(h http.Header) string {
	vals := map[string][]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "x-amz-") {
			continue
		}
		for _, v := range vs {
			vals[lk] = append(vals[lk], unfold(v))
		}
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals[n], ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// unfold trims a header value and replaces folded line breaks by a space.
func unfold(v string) string {
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\r\n") {
		f := strings.Fields(v)
		v = strings.Join(f, " ")
	}
	return v
}

// canonicalResource returns "/bucket" (virtual host) + the raw path +
// the sorted sub-resources, "?a&b=c", values decoded.
func canonicalResource(vhostBucket, rawPath, rawQuery string) string {
	var b strings.Builder
	if vhostBucket != "" {
		b.WriteByte('/')
		b.WriteString(vhostBucket)
	}
	b.WriteString(rawPath)
	type kv struct {
		k, v string
		hasV bool
	}
	var subs []kv
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, hasV := strings.Cut(part, "=")
		k = queryUnescape(k)
		if subresources[k] {
			subs = append(subs, kv{k, queryUnescape(v), hasV && v != ""})
		}
	}
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].k < subs[j].k })
	for i, s := range subs {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(s.k)
		if s.hasV {
			b.WriteByte('=')
			b.WriteString(s.v)
		}
	}
	return b.String()
}

// stringToSignS3 joins the S3 SigV2 string to sign.
func stringToSignS3(method, contentMD5, contentType, date, amzHeaders, resource string) string {
	return method + "\n" + contentMD5 + "\n" + contentType + "\n" + date + "\n" + amzHeaders + resource
}

func signS3(secret, sts string) []byte {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(sts))
	return m.Sum(nil)
}

// pathCandidates lists the paths a client may have signed: the raw path
// as sent, and the path decoded (some clients sign the key unencoded). Both
// name the same object. For a path-style request to a bucket itself
// ("/bucket"), botocore signs "/bucket/", the resource it would have for
// virtual-host style; that names the same bucket too.
func pathCandidates(raw string, pathStyle bool) []string {
	out := []string{raw}
	if pathStyle && len(raw) > 1 && strings.Count(raw, "/") == 1 {
		out = append(out, raw+"/")
	}
	if strings.IndexByte(raw, '%') >= 0 {
		if dec, err := url.PathUnescape(raw); err == nil && dec != raw {
			out = append(out, dec)
		}
	}
	return out
}

// Verify checks the S3 SigV2 signature of r. vhostBucket is the bucket
// name when the request used virtual-host addressing ("" for path style):
// the canonicalized resource is then "/"+vhostBucket+path. The path is
// taken as sent (r.RequestURI), so a prefix such as /services/Walrus is
// part of what is signed.
func (v *S3Verifier) Verify(r *http.Request, vhostBucket string) (*Auth, error) {
	c := clock{v.Now, v.MaxSkew}
	rawPath, rawQ := target(r)
	auth := &Auth{}
	var sig []byte
	var dateLine string
	if h := r.Header.Get("Authorization"); h != "" {
		var err error
		if auth.AccessKeyID, sig, err = parseS3Authorization(h); err != nil {
			return nil, err
		}
		d := r.Header.Get("X-Amz-Date")
		if d == "" {
			d = r.Header.Get("Date")
			dateLine = d
		}
		if d == "" {
			return nil, fmt.Errorf("%w: missing Date or x-amz-date header", ErrMalformed)
		}
		if auth.Time, err = parseHTTPDate(d); err != nil {
			return nil, fmt.Errorf("%w: date %q", ErrMalformed, d)
		}
	} else {
		q := parseQuery(rawQ)
		auth.AccessKeyID, auth.Presigned = q.Get("AWSAccessKeyId"), true
		exp := q.Get("Expires")
		if auth.AccessKeyID == "" || exp == "" || q.Get("Signature") == "" {
			return nil, fmt.Errorf("%w: presigned url needs AWSAccessKeyId, Expires and Signature", ErrMalformed)
		}
		secs, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: Expires %q is not unix seconds", ErrMalformed, exp)
		}
		auth.Time, dateLine = time.Unix(secs, 0).UTC(), exp
		var ok bool
		if sig, ok = decodeSignature(q.Get("Signature")); !ok {
			return nil, fmt.Errorf("%w: signature is not base64", ErrSignature)
		}
	}
	secret, err := secretKey(r.Context(), v.Keys, auth.AccessKeyID)
	if err != nil {
		return nil, err
	}
	if auth.Presigned {
		if now := c.time(); now.After(auth.Time) {
			return nil, fmt.Errorf("%w: expired at %s, server time %s", ErrExpired, auth.Time.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	} else if err := c.checkSkew(auth.Time); err != nil {
		return nil, err
	}
	amz := canonicalAmzHeaders(r.Header)
	md5, ctype := strings.TrimSpace(r.Header.Get("Content-Md5")), strings.TrimSpace(r.Header.Get("Content-Type"))
	ok := false
	for _, p := range pathCandidates(rawPath, vhostBucket == "") {
		sts := stringToSignS3(r.Method, md5, ctype, dateLine, amz, canonicalResource(vhostBucket, p, rawQ))
		if hmac.Equal(signS3(secret, sts), sig) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: s3 sigv2 signature for access key %q", ErrSignature, auth.AccessKeyID)
	}
	return auth, nil
}

// SignS3 signs r (path-style, header form) the way boto 2 does: it sets
// Date unless x-amz-date is present, then Authorization "AWS key:sig".
func SignS3(r *http.Request, accessKeyID, secretKey string, t time.Time) error {
	if accessKeyID == "" || strings.Contains(accessKeyID, ":") || secretKey == "" {
		return fmt.Errorf("%w: invalid credentials", ErrMalformed)
	}
	dateLine := ""
	if r.Header.Get("X-Amz-Date") == "" {
		dateLine = t.UTC().Format(http.TimeFormat)
		r.Header.Set("Date", dateLine)
	}
	path, query := clientTarget(r)
	sts := stringToSignS3(r.Method, strings.TrimSpace(r.Header.Get("Content-Md5")), strings.TrimSpace(r.Header.Get("Content-Type")),
		dateLine, canonicalAmzHeaders(r.Header), canonicalResource("", path, query))
	r.Header.Set("Authorization", "AWS "+accessKeyID+":"+base64.StdEncoding.EncodeToString(signS3(secretKey, sts)))
	return nil
}

// PresignS3 adds AWSAccessKeyId, Expires and Signature to r.URL (path
// style), valid until expires.
func PresignS3(r *http.Request, accessKeyID, secretKey string, expires time.Time) error {
	if accessKeyID == "" || secretKey == "" {
		return fmt.Errorf("%w: invalid credentials", ErrMalformed)
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	path, query := clientTarget(r)
	sts := stringToSignS3(r.Method, strings.TrimSpace(r.Header.Get("Content-Md5")), strings.TrimSpace(r.Header.Get("Content-Type")),
		exp, canonicalAmzHeaders(r.Header), canonicalResource("", path, query))
	extra := "AWSAccessKeyId=" + url.QueryEscape(accessKeyID) + "&Expires=" + exp +
		"&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(signS3(secretKey, sts)))
	if query != "" {
		extra = query + "&" + extra
	}
	r.URL.RawQuery = extra
	return nil
}

// clientTarget returns the path and query a client request is sent with.
func clientTarget(r *http.Request) (path, query string) {
	path, _, _ = strings.Cut(r.URL.RequestURI(), "?")
	if path == "" {
		path = "/"
	}
	return path, r.URL.RawQuery
}
